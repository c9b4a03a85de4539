"""Waveform preview (temporary minimal version)."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure


def peaks(pcm: bytes, *, sample_width: int = 2, buckets: int = 200) -> list[float]:
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    if samples.size == 0:
        return []
    parts = np.array_split(np.abs(samples), min(buckets, samples.size))
    return [round(float(p.max()) / 32768, 3) for p in parts]


def png(
    values: list[float], *, width_px: int = 600, height_px: int = 80, color: str = "#0b6e4f"
) -> bytes:
    fig = Figure(figsize=(width_px / 100, height_px / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.axis("off")
    xs = np.arange(len(values)) if values else np.arange(2)
    ys = np.array(values) if values else np.zeros(2)
    ax.fill_between(xs, -ys, ys, color=color)
    ax.set_ylim(-1, 1)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", transparent=True)
    return buf.getvalue()
