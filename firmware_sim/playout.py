"""A speaker's stream bookkeeping: buffer, order, lateness, pre-emption, outcome (pure).

No clock reads here: every time is passed in, on the controller's clock as the device
estimates it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from devices.frames import Codec, Frame, Priority, unpack_packets
from devices.messages import PlayReport, StreamStart

Outcome = Literal["played", "partial", "preempted", "missed", "refused"]


@dataclass
class Chunk:
    seq: int
    pts_us: int
    duration_us: int
    payload: bytes = b""  # kept only when the speaker records what it plays


@dataclass
class StreamState:
    id: uuid.UUID
    priority: Priority
    header: StreamStart | None = None
    buffer: dict[int, Chunk] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)
    expected: int | None = None  # total chunks, from START or END
    ended: bool = False
    end_pts_us: int | None = None
    played: int = 0
    late: int = 0
    last_played_seq: int = 0
    first_pts_us: int | None = None
    last_end_us: int | None = None
    preempted: bool = False
    suppressed: bool = False  # a higher-priority stream owned the speaker
    last_activity_us: int = 0
    takes_over_us: int | None = None  # pre-empting stream: when it starts to sound
    source: Literal["stream", "cache"] = "stream"
    item: str | None = None  # the cached item a prefetched play plays

    def outcome(self) -> PlayReport:
        total = self.expected if self.expected is not None else max(self.seen, default=0)
        missing = max(0, total - self.played - self.late)
        outcome: Outcome
        if self.preempted or (self.suppressed and self.played < total):
            outcome = "preempted"
        elif self.played >= total > 0:
            outcome = "played"
        elif self.played > 0:
            outcome = "partial"
        else:
            outcome = "missed"
        return PlayReport(
            stream=str(self.id),
            outcome=outcome,
            started_us=self.first_pts_us,
            ended_us=self.last_end_us,
            frames_played=self.played,
            frames_missing=missing,
            frames_late=self.late,
            reason="pre-empted by a higher-priority stream" if outcome == "preempted" else "",
            source=self.source,
        )


def chunk_of(frame: Frame, frame_ms: int, chunk_ms: int, packets: int | None = None) -> Chunk:
    """Opus: duration from the packet count (each ``frame_ms``); MP3: ``chunk_ms``."""
    if frame.codec is Codec.OPUS:
        count = len(unpack_packets(frame.payload)) if packets is None else packets
        duration_us = count * frame_ms * 1000
    elif packets:  # MP3 with its MPEG frames counted
        duration_us = packets * frame_ms * 1000
    else:
        duration_us = chunk_ms * 1000
    return Chunk(frame.seq, frame.pts_us, duration_us)


class Arrival:
    """What happened to an arriving audio frame."""

    BUFFERED = "buffered"
    DUPLICATE = "duplicate"
    LATE = "late"
    SUPPRESSED = "suppressed"


def accept_audio(st: StreamState, chunk: Chunk, now_us: int, tolerance_us: int) -> str:
    """Put a chunk in the buffer unless it is a duplicate, late, or out of order."""
    if chunk.seq in st.seen:
        return Arrival.DUPLICATE
    st.seen.add(chunk.seq)
    st.last_activity_us = now_us
    if st.suppressed:
        return Arrival.SUPPRESSED
    if chunk.seq <= st.last_played_seq or now_us > chunk.pts_us + tolerance_us:
        st.late += 1
        return Arrival.LATE
    st.buffer[chunk.seq] = chunk
    return Arrival.BUFFERED


def should_preempt(current: StreamState | None, incoming: Priority) -> bool:
    """A new stream takes the speaker if it is at least as urgent as what is playing."""
    return (
        current is None or (current.ended and not current.buffer) or (incoming >= current.priority)
    )


def finished(st: StreamState, now_us: int, idle_timeout_us: int) -> bool:
    """True when the stream has nothing more to play."""
    if st.buffer:
        return False
    if st.ended:
        return st.end_pts_us is None or now_us >= st.end_pts_us
    return now_us - st.last_activity_us > idle_timeout_us
