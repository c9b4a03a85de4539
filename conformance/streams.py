"""Frames the kit sends, built as plain values (pure: no clock reads, no I/O).

Header values follow docs/protocol.md, *Header values by frame type*.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from devices.frames import Codec, Frame, FrameType, Priority
from devices.items import pack_item, sha256_hex, slices
from devices.messages import (
    MANIFEST_CONTEXT,
    FirmwareOffer,
    ItemOffer,
    PlayItem,
    StreamEnd,
    StreamStart,
    dump,
    manifest_bytes,
)
from devices.signing import Signer

from . import tone


@dataclass(frozen=True)
class Stream:
    """A whole stream: its id, its frames in order, its start and end (kit µs)."""

    id: uuid.UUID
    frames: list[Frame]
    start_us: int
    end_us: int
    chunks: int


def stream(
    *,
    start_us: int,
    sent_us: int,
    chunks: int,
    priority: Priority = Priority.NORMAL,
    packets: int = len(tone.PACKETS),
    title: str = "Loa conformance",
    end_reason: str = "complete",
    end: bool = True,
    sid: uuid.UUID | None = None,
) -> Stream:
    """START, ``chunks`` AUDIO frames of ``packets`` × 20 ms beeps back to back, END."""
    sid = sid or uuid.uuid4()
    chunk_us = packets * tone.FRAME_MS * 1000
    head = StreamStart(
        broadcast=str(uuid.uuid4()),
        codec="opus",
        sample_rate=48000,
        channels=1,
        frame_ms=tone.FRAME_MS,
        pre_skip=tone.PRE_SKIP,
        chunk_ms=packets * tone.FRAME_MS,
        chunks=chunks,
        duration_ms=chunks * packets * tone.FRAME_MS,
        title=title,
    )
    frames = [Frame(FrameType.START, sid, 0, start_us, sent_us, dump(head), Codec.OPUS, priority)]
    payload = tone.payload(packets)
    for i in range(chunks):
        pts = start_us + i * chunk_us
        frames.append(
            Frame(FrameType.AUDIO, sid, i + 1, pts, sent_us, payload, Codec.OPUS, priority)
        )
    end_us = start_us + chunks * chunk_us
    if end:
        body = dump(StreamEnd(chunks=chunks, reason=end_reason))  # type: ignore[arg-type]
        frames.append(
            Frame(FrameType.END, sid, chunks + 1, end_us, sent_us, body, priority=priority)
        )
    return Stream(sid, frames, start_us, end_us, chunks)


def preempted_end(s: Stream, at_us: int, sent_us: int, priority: Priority) -> Frame:
    """The END a controller sends for a stream a newer one took over (v1.1)."""
    body = dump(StreamEnd(chunks=s.chunks, reason="preempted"))
    return Frame(FrameType.END, s.id, s.chunks + 1, at_us, sent_us, body, priority=priority)


@dataclass(frozen=True)
class Item:
    id: uuid.UUID
    offer: Frame
    data: list[Frame]
    sha256: str
    chunks: int


def item(*, sent_us: int, chunks: int, wrong_hash: bool = False) -> Item:
    """An item of ``chunks`` beeps (ITEM + ITEM_DATA), optionally offered with a wrong hash."""
    iid = uuid.uuid4()
    raw = pack_item([tone.BEEP] * chunks)
    digest = sha256_hex(raw + b"x") if wrong_hash else sha256_hex(raw)
    parts = slices(raw)
    offer = ItemOffer(
        item=str(iid),
        sha256=digest,
        size=len(raw),
        slices=len(parts),
        codec="opus",
        sample_rate=48000,
        channels=1,
        frame_ms=tone.FRAME_MS,
        pre_skip=tone.PRE_SKIP,
        chunks=chunks,
        duration_ms=chunks * tone.BEEP_MS,
        title="Loa conformance",
    )
    first = Frame(FrameType.ITEM, iid, 0, sent_us, sent_us, dump(offer), Codec.OPUS)
    data = [
        Frame(FrameType.ITEM_DATA, iid, i, sent_us, sent_us, part, Codec.OPUS)
        for i, part in enumerate(parts, start=1)
    ]
    return Item(iid, first, data, digest, chunks)


def play(it: Item, *, at_us: int, sent_us: int) -> tuple[uuid.UUID, Frame]:
    """A PLAY for a cached item at ``at_us`` (its own stream id, sequence 1)."""
    pid = uuid.uuid4()
    body = PlayItem(broadcast=str(uuid.uuid4()), item=str(it.id), sha256=it.sha256, at_us=at_us)
    return pid, Frame(FrameType.PLAY, pid, 1, at_us, sent_us, dump(body), Codec.OPUS)


def firmware_bad_hash(signer: Signer, *, sent_us: int) -> tuple[uuid.UUID, list[Frame]]:
    """A FIRMWARE offer whose signed manifest names a SHA-256 the image does not have."""
    rollout = uuid.uuid4()
    image = b"loa conformance: not a firmware image\n" * 64
    claimed = sha256_hex(image + b"tampered")
    version = "conformance-0"
    sig = signer.sign(MANIFEST_CONTEXT + manifest_bytes(version, claimed, len(image)))
    parts = slices(image)
    offer = FirmwareOffer(
        rollout=str(rollout),
        version=version,
        sha256=claimed,
        size=len(image),
        slices=len(parts),
        key_id=signer.key_id.hex(),
        manifest_sig=sig.hex(),
    )
    frames = [Frame(FrameType.FIRMWARE, rollout, 0, sent_us, sent_us, dump(offer))]
    frames += [
        Frame(FrameType.FIRMWARE_DATA, rollout, i, sent_us, sent_us, part)
        for i, part in enumerate(parts, start=1)
    ]
    return rollout, frames
