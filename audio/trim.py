"""Leading and trailing silence, found on mono 16-bit PCM (pure)."""

from __future__ import annotations

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
