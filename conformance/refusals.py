"""The refusal rows: forged, moved, old and replayed frames and commands must be
refused — nothing played, nothing acknowledged, no message at all about them
(docs/protocol.md, *Verifying a frame*)."""

from __future__ import annotations

import uuid
from typing import Protocol

from devices.signing import Signer
from devices.topics import DeviceTopic

from . import streams
from .kit import Kit, Timing
from .report import describe


class Session(Protocol):
    """What the refusal rows need of a session (session.Session is one)."""

    kit: Kit
    t: Timing
    other: str
    first_stream: uuid.UUID
    tone_id: uuid.UUID
    tone_bytes: bytes

    def row(self, rid: str, passed: bool, detail: str = "") -> None: ...

    def audio(self, device: str | None = None, *, emergency: bool = False) -> str: ...


#: The last byte of a frame's sent time (header offset 40, 8 bytes).
SENT_LAST = 47


async def check_refusals(session: Session, replay: list[bytes]) -> None:
    """Forged, moved, old and replayed frames and commands: none may be played or
    acknowledged ok. One short stream at a time, so none can pre-empt another."""
    k = session.kit
    stranger = Signer.generate()
    cmd_topic = k.topic(DeviceTopic.CMD)
    accepted: dict[str, list[str]] = {"forged": [], "moved": [], "old": [], "replayed": []}
    watch: list[tuple[str, str, uuid.UUID]] = []  # (row, what, stream)
    cmds: list[tuple[str, str, uuid.UUID]] = []

    async def bad_stream(row: str, what: str, *, sent_delta_us: int = 0, mode: str) -> None:
        now = k.now()
        s = streams.stream(
            start_us=now + 400_000, sent_us=now + sent_delta_us, chunks=1, packets=10
        )
        topic = session.audio()
        for f in s.frames:
            if mode == "stranger":
                data = k.sign(f, topic, stranger)
            elif mode == "altered":
                raw = bytearray(k.sign(f, topic))
                raw[SENT_LAST] ^= 0x01  # sent time 1 µs off: still a well-formed frame
                data = bytes(raw)
            elif mode == "moved":
                data = k.sign(f, session.audio(session.other))
            else:
                data = k.sign(f, topic)
            await k.publish_raw(topic, data)
        watch.append((row, what, s.id))
        await k.clock.sleep(0.7)  # it would have played by then: none overlap

    async def bad_command(row: str, what: str, mode: str) -> None:
        now = k.now()
        if mode == "old":
            cid, f = k.command_frame("test_tone", sent_us=now - 60_000_000, expires_s=3600)
        else:
            cid, f = k.command_frame("test_tone")
        if mode == "stranger":
            data = k.sign(f, cmd_topic, stranger)
        elif mode == "moved":
            data = k.sign(f, k.topic(DeviceTopic.CMD, session.other))
        else:
            data = k.sign(f, cmd_topic)
        await k.publish_raw(cmd_topic, data)
        cmds.append((row, what, cid))

    await bad_command("forged", "command signed by an unknown key", "stranger")
    await bad_command("moved", "command signed for another device", "moved")
    await bad_command("old", "command sent 60 s ago", "old")
    await k.publish_raw(cmd_topic, session.tone_bytes)  # the test_tone command again
    await bad_stream("forged", "stream signed by an unknown key", mode="stranger")
    await bad_stream("forged", "stream with altered bytes", mode="altered")
    await bad_stream("moved", "stream signed for another device's topic", mode="moved")
    await bad_stream("old", "stream sent 60 s ago", sent_delta_us=-60_000_000, mode="ok")
    for data in replay:  # the first stream, completed: its frames again, as they were
        await k.publish_raw(session.audio(), data)
    await k.clock.sleep(session.t.quiet_s)
    for row, what, sid in watch:
        if k.facts.reports(sid):
            accepted[row].append(f"{what}: {describe(k.facts.reports(sid)[0])}")
    for row, what, cid in cmds:
        if any(a.ok for a in k.facts.acks(cid)):
            accepted[row].append(f"{what}: acknowledged ok")
    if len(k.facts.reports(session.first_stream)) > 1:
        accepted["replayed"].append("completed stream sent again: reported again")
    if sum(a.ok for a in k.facts.acks(session.tone_id)) > 1:
        accepted["replayed"].append("test_tone command sent again: acknowledged ok again")
    for row, found in accepted.items():
        session.row(row, not found, "; ".join(found) or "refused (nothing played or acknowledged)")
