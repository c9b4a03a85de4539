"""Chunk planning: codec packets → chunks with presentation times (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    index: int
    first_packet: int
    packets: int
    pts_us: int  # presentation time of the chunk's first sample (controller clock)
    duration_us: int


def plan_chunks(
    packet_count: int,
    *,
    frame_ms: int,
    chunk_ms: int,
    start_us: int,
    first_chunk_ms: int | None = None,
) -> list[Chunk]:
    """Group ``packet_count`` packets of ``frame_ms`` each into chunks of ``chunk_ms``.

    The first chunk may be smaller (``first_chunk_ms``) so that sound starts sooner.
    Chunks are contiguous, cover every packet once, and have strictly increasing times.
    """
    if packet_count < 0:
        raise ValueError("packet_count must be >= 0")
    if frame_ms <= 0 or chunk_ms < frame_ms:
        raise ValueError("chunk_ms must be at least one frame")
    if first_chunk_ms is not None and first_chunk_ms <= 0:
        raise ValueError(
            "first_chunk_ms must be positive (a shorter-than-a-frame one is one frame)"
        )
    per_chunk = chunk_ms // frame_ms
    first = max(1, (first_chunk_ms or chunk_ms) // frame_ms)
    chunks: list[Chunk] = []
    done = 0
    while done < packet_count:
        n = min(first if not chunks else per_chunk, packet_count - done)
        chunks.append(
            Chunk(
                index=len(chunks),
                first_packet=done,
                packets=n,
                pts_us=start_us + done * frame_ms * 1000,
                duration_us=n * frame_ms * 1000,
            )
        )
        done += n
    return chunks
