"""Leading and trailing silence, found on mono 16-bit PCM (pure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def sound_bounds(
    pcm: bytes, *, rate: int, threshold_dbfs: float, keep_ms: int, window_ms: int = 10
) -> tuple[int, int]:
    """Byte offsets (start, end) of the part worth keeping.

    A window counts as sound when its peak reaches ``threshold_dbfs``; ``keep_ms`` of
    silence is kept on either side so words are not clipped. All-silent input keeps
    everything (refusing silence is the decoder's job, not the trimmer's).
    """
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
    n = samples.size
    if n == 0:
        return 0, 0
    window = max(1, rate * window_ms // 1000)
    limit = 32768.0 * 10 ** (threshold_dbfs / 20)
    windows = -(-n // window)
    padded = np.zeros(windows * window, dtype=np.int32)
    padded[:n] = np.abs(samples.astype(np.int32))
    loud = np.flatnonzero(padded.reshape(windows, window).max(axis=1) >= limit)
    if loud.size == 0:
        return 0, n * 2
    keep = rate * keep_ms // 1000
    first = max(0, int(loud[0]) * window - keep)
    last = min(n, (int(loud[-1]) + 1) * window + keep)
    return first * 2, last * 2


def trim(pcm: bytes, *, rate: int, threshold_dbfs: float, keep_ms: int) -> bytes:
    start, end = sound_bounds(pcm, rate=rate, threshold_dbfs=threshold_dbfs, keep_ms=keep_ms)
    return pcm[start:end]


def sound_bounds_file(
    path: Path,
    *,
    rate: int,
    threshold_dbfs: float,
    keep_ms: int,
    window_ms: int = 10,
    block_windows: int = 512,
) -> tuple[int, int]:
    """:func:`sound_bounds` of a raw PCM file, read a block at a time (same answer)."""
    window = max(1, rate * window_ms // 1000)
    limit = 32768.0 * 10 ** (threshold_dbfs / 20)
    step = window * 2 * block_windows  # whole windows per block
    first = last = -1
    n = 0
    with path.open("rb") as fh:
        index = 0  # window number of the block's first window
        while block := fh.read(step):
            samples = np.frombuffer(block[: len(block) - len(block) % 2], dtype="<i2")
            n += samples.size
            windows = -(-samples.size // window)
            padded = np.zeros(windows * window, dtype=np.int32)
            padded[: samples.size] = np.abs(samples.astype(np.int32))
            loud = np.flatnonzero(padded.reshape(windows, window).max(axis=1) >= limit)
            if loud.size:
                if first < 0:
                    first = index + int(loud[0])
                last = index + int(loud[-1])
            index += windows
    if n == 0:
        return 0, 0
    if first < 0:
        return 0, n * 2
    keep = rate * keep_ms // 1000
    return max(0, first * window - keep) * 2, min(n, (last + 1) * window + keep) * 2


def copy_range(src: Path, dest: Path, start: int, end: int, block: int = 1 << 20) -> None:
    """Bytes ``[start, end)`` of ``src`` into ``dest``, a block at a time."""
    with src.open("rb") as fin, dest.open("wb") as fout:
        fin.seek(start)
        left = end - start
        while left > 0:
            data = fin.read(min(block, left))
            if not data:
                break
            fout.write(data)
            left -= len(data)
