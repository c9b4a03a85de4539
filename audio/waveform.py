"""Waveform previews for the web UI: a small peaks array and a PNG (matplotlib, Agg).

The PNG is drawn on a ``matplotlib.figure.Figure`` directly (not pyplot), which keeps
no global state and is safe in the worker threads the server renders it from.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def peaks(pcm: bytes, *, sample_width: int = 2, buckets: int = 200) -> list[float]:
    """Mono signed little-endian PCM → up to ``buckets`` peak values in [0, 1]."""
    if sample_width != 2:
        raise ValueError("only 16-bit PCM is supported")
    usable = len(pcm) - len(pcm) % 2
    samples = np.abs(np.frombuffer(pcm[:usable], dtype="<i2").astype(np.int32))
    if samples.size == 0 or buckets < 1:
        return []
    parts = np.array_split(samples, min(buckets, samples.size))
    return [round(min(1.0, float(p.max()) / 32768), 3) for p in parts]


def png(
    values: list[float], *, width_px: int = 600, height_px: int = 80, color: str = "#0b6e4f"
) -> bytes:
    """A mirrored waveform, no axes, transparent background, exactly ``width_px``×``height_px``."""
    dpi = 100
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    ys = np.clip(np.asarray(values if values else [0.0, 0.0], dtype=float), 0.0, 1.0)
    xs = np.arange(len(ys))
    ax.fill_between(xs, -ys, ys, color=color, linewidth=0)
    ax.axhline(0.0, color=color, linewidth=0.5)
    ax.set_xlim(0, max(1, len(ys) - 1))
    ax.set_ylim(-1.05, 1.05)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, transparent=True)
    return buf.getvalue()


def peaks_file(path: Path, *, buckets: int = 200) -> list[float]:
    """:func:`peaks` of a raw mono s16le file, one bucket read at a time (same answer)."""
    n = path.stat().st_size // 2
    if n == 0 or buckets < 1:
        return []
    k = min(buckets, n)
    size, extra = divmod(n, k)  # as numpy.array_split: the first ``extra`` are one longer
    out = []
    with path.open("rb") as fh:
        for i in range(k):
            count = size + (1 if i < extra else 0)
            samples = np.abs(np.frombuffer(fh.read(count * 2), dtype="<i2").astype(np.int32))
            out.append(round(min(1.0, float(samples.max()) / 32768), 3) if samples.size else 0.0)
    return out
