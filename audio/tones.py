"""Generated audio: attention chimes, test tone and sirens (pure numpy, nothing downloaded).

* :func:`attention_chime` — the two-note public-address "ding-dong" (G5 then E♭5,
  struck-bell envelope with a few partials) before an announcement; ``closing=True``
  is the reverse ("dong-ding") after it.
* :func:`test_tone` — 1 kHz sine at −12 dBFS for checking a speaker line.
* :func:`siren` — alert patterns, phase-continuous so sweeps never click:
  ``wail`` (slow rise and fall 600–1 200 Hz, 4 s period), ``yelp`` (the same range
  swept 3 times a second), ``steady`` (a continuous 1 kHz tone, the "alert" signal of
  many national warning systems) and ``all_clear`` (a calm rising three-note motif on
  a lower steady tone, unmistakably different from the alarms).

Everything is mono 16-bit at the given rate, returned as pydub ``AudioSegment``.
"""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from pydub import AudioSegment

Samples = NDArray[np.float64]

SIREN_PATTERNS: tuple[str, ...] = ("wail", "yelp", "steady", "all_clear")
MAX_SECONDS = 600.0

CHIME_HIGH = 783.99  # G5
CHIME_LOW = 622.25  # E♭5


def _segment(x: Samples, rate: int) -> AudioSegment:
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes()
    return AudioSegment(data=pcm, sample_width=2, frame_rate=rate, channels=1)


def _fade(x: Samples, rate: int, ms: float) -> Samples:
    n = min(len(x) // 2, int(rate * ms / 1000))
    if n:
        ramp = np.linspace(0.0, 1.0, n)
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _level(x: Samples, dbfs: float) -> Samples:
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return x * (10 ** (dbfs / 20) / peak) if peak > 0 else x


def _count(seconds: float, rate: int) -> int:
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"a generated sound lasts more than 0 and at most {MAX_SECONDS:g} s")
    return max(1, round(seconds * rate))


def tone(
    seconds: float, freq: float = 440.0, *, rate: int = 48000, dbfs: float = -12.0
) -> AudioSegment:
    """A sine of ``freq`` Hz peaking at ``dbfs``, with 10 ms fades."""
    t = np.arange(_count(seconds, rate)) / rate
    x = np.sin(2 * np.pi * freq * t)
    return _segment(_fade(_level(x, dbfs), rate, 10), rate)


def test_tone(seconds: float = 5.0, rate: int = 48000) -> AudioSegment:
    """The 1 kHz line-check tone at −12 dBFS."""
    return tone(seconds, 1000.0, rate=rate, dbfs=-12.0)


def _bell(freq: float, seconds: float, rate: int) -> Samples:
    """A struck-bell note: fundamental plus inharmonic partials, exponential decay."""
    t = np.arange(int(seconds * rate)) / rate
    x = (
        np.sin(2 * np.pi * freq * t) * np.exp(-t * 3.0)
        + 0.35 * np.sin(2 * np.pi * freq * 2.0 * t) * np.exp(-t * 5.0)
        + 0.15 * np.sin(2 * np.pi * freq * 3.01 * t) * np.exp(-t * 8.0)
    )
    attack = min(len(x), int(rate * 0.005))
    x[:attack] *= np.linspace(0.0, 1.0, attack)
    return x


def attention_chime(rate: int = 48000, *, closing: bool = False) -> AudioSegment:
    """ "Ding-dong" before an announcement, or "dong-ding" after it (``closing``)."""
    first, second = (CHIME_LOW, CHIME_HIGH) if closing else (CHIME_HIGH, CHIME_LOW)
    note = 0.65
    x = np.zeros(int(rate * (note * 2 + 0.6)))
    a = _bell(first, note + 0.6, rate)
    b = _bell(second, note + 0.6, rate)
    start = int(note * rate)
    x[: len(a)] += a
    x[start : start + len(b)] += b[: len(x) - start]
    return _segment(_fade(_level(x, -6.0), rate, 20), rate)


def chime(rate: int = 48000) -> AudioSegment:
    """The opening attention chime (kept under its old name for callers)."""
    return attention_chime(rate)


def _sweep(freq: Samples, rate: int) -> Samples:
    """A phase-continuous tone following ``freq`` (Hz per sample), with odd harmonics."""
    phase = 2 * np.pi * np.cumsum(freq) / rate
    return np.sin(phase) + 0.25 * np.sin(3 * phase) + 0.1 * np.sin(5 * phase)


def siren(pattern: str, seconds: float, rate: int = 48000) -> AudioSegment:
    """An alert signal of ``seconds`` (see the module docstring for the patterns)."""
    if pattern not in SIREN_PATTERNS:
        raise ValueError(
            f"unknown siren pattern {pattern!r}; choose one of {', '.join(SIREN_PATTERNS)}"
        )
    n = _count(seconds, rate)
    t = np.arange(n) / rate
    low, high = 600.0, 1200.0
    if pattern == "wail":
        freq = low + (high - low) * (0.5 - 0.5 * np.cos(2 * np.pi * t / 4.0))
    elif pattern == "yelp":
        freq = low + (high - low) * (0.5 - 0.5 * np.cos(2 * np.pi * t / 0.33))
    elif pattern == "steady":
        freq = np.full(n, 1000.0)
    else:  # all_clear: a lower steady tone with a rising three-note motif every 3 s
        notes = np.array([440.0, 554.37, 659.25])
        step = ((t % 3.0) // 0.5).astype(int)
        freq = np.where(step < 3, notes[np.minimum(step, 2)], 440.0)
    x = _sweep(freq, rate)
    return _segment(_fade(_level(x, -3.0), rate, 20), rate)


def to_wav(segment: AudioSegment) -> bytes:
    buf = io.BytesIO()
    segment.export(buf, format="wav")
    return buf.getvalue()
