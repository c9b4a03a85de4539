"""A broadcast's streams, one per codec ("legs"), planned as frames (pure).

Speakers that decode Opus get the Opus leg on the ``audio/…`` topics of the targeted
groups; speakers that only decode MP3 (as they announce in their presence) get an MP3
leg, with its own stream id, on the ``mp3/…`` topics of the groups they are in. Both
legs share one presentation timeline, so every speaker starts together.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from audio.mp3 import Mp3Stream
from audio.ogg import OpusStream
from audio.plan import plan_chunks
from devices.frames import Codec, Frame, FrameType, Priority, pack_packets
from devices.messages import StreamStart
from devices.topics import Group

#: LAME's encoder + decoder delay (576 + 529 samples): MP3 speakers drop this many
#: samples at the start, as Opus speakers drop ``pre_skip``, so both start in step.
MP3_ENCODER_DELAY = 1105


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


def opus_leg(
    stream: OpusStream,
    frame_ms: int,
    groups: list[Group],
    t: Timing,
    priority: Priority,
    broadcast: str,
    title: str,
) -> Leg:
    chunks = plan_chunks(
        len(stream.packets),
        frame_ms=frame_ms,
        chunk_ms=t.chunk_ms,
        start_us=t.start_us,
        first_chunk_ms=t.first_chunk_ms,
    )
    sid = uuid.uuid4()
    frames = tuple(
        Frame(
            FrameType.AUDIO,
            sid,
            i + 1,
            c.pts_us,
            0,
            pack_packets(stream.packets[c.first_packet : c.first_packet + c.packets]),
            Codec.OPUS,
            priority,
        )
        for i, c in enumerate(chunks)
    )
    end_us = chunks[-1].pts_us + chunks[-1].duration_us
    header = StreamStart(
        broadcast=broadcast,
        codec="opus",
        sample_rate=48000,
        channels=stream.channels,
        frame_ms=frame_ms,
        pre_skip=stream.pre_skip,
        chunk_ms=t.chunk_ms,
        chunks=len(frames),
        duration_ms=max(1, (end_us - t.start_us) // 1000),
        title=title[:200],
    )
    return Leg(
        "opus", sid, tuple(g.topic_for("opus") for g in groups), header, frames, t.start_us, end_us
    )


def mp3_leg(
    stream: Mp3Stream,
    groups: list[Group],
    t: Timing,
    priority: Priority,
    broadcast: str,
    title: str,
) -> Leg:
    spf, rate = stream.samples_per_frame, stream.sample_rate
    frame_ms = max(1, spf * 1000 // rate)
    chunks = plan_chunks(
        len(stream.frames),
        frame_ms=frame_ms,
        chunk_ms=max(t.chunk_ms, frame_ms),
        start_us=t.start_us,
        first_chunk_ms=max(t.first_chunk_ms, frame_ms),
    )
    sid = uuid.uuid4()
    frames = tuple(
        Frame(
            FrameType.AUDIO,
            sid,
            i + 1,
            t.start_us + c.first_packet * spf * 10**6 // rate,
            0,
            b"".join(stream.frames[c.first_packet : c.first_packet + c.packets]),
            Codec.MP3,
            priority,
        )
        for i, c in enumerate(chunks)
    )
    end_us = t.start_us + len(stream.frames) * spf * 10**6 // rate
    chunk_ms = chunks[1].packets * frame_ms if len(chunks) > 1 else chunks[0].packets * frame_ms
    header = StreamStart(
        broadcast=broadcast,
        codec="mp3",
        sample_rate=stream.sample_rate,
        channels=1,
        pre_skip=MP3_ENCODER_DELAY,
        frame_ms=frame_ms,
        chunk_ms=chunk_ms,
        chunks=len(frames),
        duration_ms=max(1, (end_us - t.start_us) // 1000),
        title=title[:200],
    )
    return Leg(
        "mp3", sid, tuple(g.topic_for("mp3") for g in groups), header, frames, t.start_us, end_us
    )
