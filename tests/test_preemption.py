"""Which stream a speaker plays when several arrive (the pre-emption state machine)."""

from __future__ import annotations

import uuid

from devices.frames import Codec, Frame, FrameType, Priority
from devices.signing import Signer, Verifier
from firmware_sim.playlog import PlayLog
from firmware_sim.playout import Chunk
from firmware_sim.speaker import Speaker
from firmware_sim.spec import DeviceSpec
from loa.clock import SystemClock

TOPIC = "loa/v1/xa/audio/all"


def speaker() -> Speaker:
    spec = DeviceSpec(id="spk-1", commune="xa", hamlet="h1")
    return Speaker(
        spec,
        host="127.0.0.1",
        port=1,
        verifier=Verifier([Signer.generate().public]),
        clock=SystemClock(),
        log=PlayLog(),
    )


def start(sp: Speaker, prio: Priority, pts: int = 10**15) -> uuid.UUID:
    sid = uuid.uuid4()
    st = sp._stream_for(Frame(FrameType.START, sid, 0, pts, pts, b"{}", Codec.OPUS, prio), TOPIC)
    assert st is not None
    return sid


def test_higher_priority_waits_for_its_time_then_takes_over() -> None:
    sp = speaker()
    a = start(sp, Priority.NORMAL)
    sp.streams[a].buffer[1] = Chunk(1, 10**15, 2_000_000)
    c = start(sp, Priority.EMERGENCY, pts=10**15 + 500_000)
    assert sp.current is sp.streams[a] and sp.pending is sp.streams[c]
    assert sp.streams[c].takes_over_us == 10**15 + 500_000


def test_lower_priority_is_suppressed_against_what_is_about_to_play() -> None:
    sp = speaker()
    a = start(sp, Priority.NORMAL)
    sp.streams[a].buffer[1] = Chunk(1, 10**15, 2_000_000)
    start(sp, Priority.EMERGENCY)
    d = start(sp, Priority.PRIORITY)
    assert sp.streams[d].suppressed
    assert sp.pending is not sp.streams[d]


def test_an_alert_is_not_displaced_by_an_older_pending_bulletin() -> None:
    """A ended (nothing left), B became current, C (emergency) pending: C must win."""
    sp = speaker()
    a = start(sp, Priority.NORMAL)
    sp.streams[a].ended = True
    b = start(sp, Priority.NORMAL)
    assert sp.current is sp.streams[b] and sp.pending is None
    sp.streams[b].buffer[1] = Chunk(1, 10**15, 2_000_000)
    c = start(sp, Priority.EMERGENCY)
    assert sp.pending is sp.streams[c]
    late_normal = start(sp, Priority.NORMAL)
    assert sp.pending is sp.streams[c] and sp.streams[late_normal].suppressed


def test_a_displaced_pending_stream_is_finished_as_preempted() -> None:
    sp = speaker()
    a = start(sp, Priority.NORMAL)
    sp.streams[a].buffer[1] = Chunk(1, 10**15, 2_000_000)
    b = start(sp, Priority.PRIORITY)
    sp.streams[b].buffer[1] = Chunk(1, 10**15 + 1, 2_000_000)
    c = start(sp, Priority.EMERGENCY)
    assert sp.pending is sp.streams[c]
    assert sp.streams[b].preempted and not sp.streams[b].buffer  # reported on the next pass
    assert sp.streams[b].outcome().outcome == "preempted"
