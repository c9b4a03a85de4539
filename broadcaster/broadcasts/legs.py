"""A broadcast's streams, one per codec ("legs"), planned as frames (pure).

Speakers that decode Opus get the Opus leg on the ``audio/…`` topics of the targeted
groups; speakers that only decode MP3 (as they announce in their presence) get an MP3
leg, with its own stream id, on the ``mp3/…`` topics of the groups they are in. Both
legs share one presentation timeline, so every speaker starts together.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from audio.mp3 import Mp3Stream
from audio.ogg import OpusStream
from audio.plan import plan_chunks
from devices.frames import Codec, Frame, FrameType, Priority, pack_packets
from devices.messages import CodecName, StreamEnd, StreamStart, dump
from devices.topics import Group

#: LAME's encoder + decoder delay (576 + 529 samples): MP3 speakers drop this many
#: samples at the start, as Opus speakers drop ``pre_skip``.
MP3_ENCODER_DELAY = 1105

StopReason = Literal["complete", "stopped", "preempted", "cancelled"]


def mp3_alignment_us(opus_pre_skip: int, mp3_rate: int) -> int:
    """How far the MP3 leg's timeline sits from the Opus leg's so both legs' first
    programme sample sounds at the same moment (protocol v1.1: a frame's presentation
    time is when its first *decoded* sample sounds; the first ``pre_skip`` decoded
    samples of a stream are muted, not skipped)."""
    return opus_pre_skip * 10**6 // 48000 - MP3_ENCODER_DELAY * 10**6 // mp3_rate


@dataclass(frozen=True)
class Leg:
    codec: str
    stream_id: uuid.UUID
    topics: tuple[str, ...]
    header: StreamStart
    frames: tuple[Frame, ...]  # AUDIO frames; sent time is stamped when sent
    start_us: int
    end_us: int


@dataclass(frozen=True)
class Timing:
    start_us: int
    chunk_ms: int
    first_chunk_ms: int


@dataclass(frozen=True)
class Audio:
    """What a leg's START announces about its codec."""

    codec: CodecName
    sample_rate: int
    channels: int
    frame_ms: int
    pre_skip: int
    chunk_ms: int


def _leg(
    audio: Audio,
    chunks: list[tuple[int, bytes]],
    end_us: int,
    groups: list[Group],
    t: Timing,
    priority: Priority,
    broadcast: str,
    title: str,
    volume: int | None = None,
) -> Leg:
    """Assemble a leg from (presentation time, payload) chunks."""
    sid = uuid.uuid4()
    codec = Codec.OPUS if audio.codec == "opus" else Codec.MP3
    frames = tuple(
        Frame(FrameType.AUDIO, sid, i + 1, pts, 0, payload, codec, priority)
        for i, (pts, payload) in enumerate(chunks)
    )
    header = StreamStart(
        broadcast=broadcast,
        codec=audio.codec,
        sample_rate=audio.sample_rate,
        channels=audio.channels,
        frame_ms=audio.frame_ms,
        pre_skip=audio.pre_skip,
        chunk_ms=audio.chunk_ms,
        chunks=len(frames),
        duration_ms=max(1, (end_us - t.start_us) // 1000),
        title=title[:200],
        volume=volume,
    )
    emergency = priority is Priority.EMERGENCY
    topics = tuple(g.topic_for(audio.codec, emergency=emergency) for g in groups)
    return Leg(audio.codec, sid, topics, header, frames, t.start_us, end_us)


def opus_leg(
    stream: OpusStream,
    frame_ms: int,
    groups: list[Group],
    t: Timing,
    priority: Priority,
    broadcast: str,
    title: str,
    volume: int | None = None,
) -> Leg:
    plan = plan_chunks(
        len(stream.packets),
        frame_ms=frame_ms,
        chunk_ms=t.chunk_ms,
        start_us=t.start_us,
        first_chunk_ms=t.first_chunk_ms,
    )
    chunks = [
        (c.pts_us, pack_packets(stream.packets[c.first_packet : c.first_packet + c.packets]))
        for c in plan
    ]
    end_us = plan[-1].pts_us + plan[-1].duration_us
    audio = Audio("opus", 48000, stream.channels, frame_ms, stream.pre_skip, t.chunk_ms)
    return _leg(audio, chunks, end_us, groups, t, priority, broadcast, title, volume)


def mp3_leg(
    stream: Mp3Stream,
    groups: list[Group],
    t: Timing,
    priority: Priority,
    broadcast: str,
    title: str,
    volume: int | None = None,
    align_us: int = 0,
) -> Leg:
    """The MP3 leg; ``align_us`` moves its timeline so that its first programme sample
    (after the encoder delay) sounds with the Opus leg's (after ``pre_skip``)."""
    if align_us:
        t = Timing(t.start_us + align_us, t.chunk_ms, t.first_chunk_ms)
    spf, rate = stream.samples_per_frame, stream.sample_rate
    frame_ms = max(1, spf * 1000 // rate)
    plan = plan_chunks(
        len(stream.frames),
        frame_ms=frame_ms,
        chunk_ms=max(t.chunk_ms, frame_ms),
        start_us=t.start_us,
        first_chunk_ms=max(t.first_chunk_ms, frame_ms),
    )
    chunks = [
        (
            t.start_us + c.first_packet * spf * 10**6 // rate,
            b"".join(stream.frames[c.first_packet : c.first_packet + c.packets]),
        )
        for c in plan
    ]
    end_us = t.start_us + len(stream.frames) * spf * 10**6 // rate
    chunk_ms = (plan[1] if len(plan) > 1 else plan[0]).packets * frame_ms
    audio = Audio("mp3", rate, 1, frame_ms, MP3_ENCODER_DELAY, chunk_ms)
    return _leg(audio, chunks, end_us, groups, t, priority, broadcast, title, volume)


def end_frame(
    leg: Leg, priority: Priority, reason: StopReason, sent: int, at_us: int | None, now_us: int
) -> Frame:
    """END: sequence N+1 (N = AUDIO frames announced); ``chunks`` = N, except for a
    pre-empted stream: the ``sent`` frames actually sent. Presentation time = where the
    stream stops (its end, or the cut at ``at_us``, else now)."""
    return Frame(
        FrameType.END,
        leg.stream_id,
        len(leg.frames) + 1,
        leg.end_us if reason == "complete" else (at_us or now_us),
        now_us,
        dump(StreamEnd(chunks=sent, reason=reason)),
        Codec.NONE,
        priority,
    )
