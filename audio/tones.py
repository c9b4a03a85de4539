"""Generated audio: test tones and chimes (pure Python, no ffmpeg needed)."""

from __future__ import annotations

import io

from pydub import AudioSegment
from pydub.generators import Sine


def tone(
    seconds: float, freq: float = 440.0, *, rate: int = 48000, dbfs: float = -12.0
) -> AudioSegment:
    seg: AudioSegment = Sine(freq, sample_rate=rate, bit_depth=16).to_audio_segment(
        duration=seconds * 1000
    )
    return seg.set_channels(1).apply_gain(dbfs - seg.max_dBFS).fade_in(10).fade_out(10)


def chime(rate: int = 48000) -> AudioSegment:
    """The three-note "ding-dong-ding" that opens a bulletin."""
    notes = [tone(0.35, f, rate=rate) for f in (660.0, 523.25, 784.0)]
    gap = AudioSegment.silent(duration=60, frame_rate=rate)
    out = AudioSegment.empty()
    for n in notes:
        out += n + gap
    return out


def to_wav(segment: AudioSegment) -> bytes:
    buf = io.BytesIO()
    segment.export(buf, format="wav")
    return buf.getvalue()


def attention_chime(rate: int = 48000, *, closing: bool = False) -> AudioSegment:
    notes = (622.0, 784.0) if closing else (784.0, 622.0)
    return tone(0.6, notes[0], rate=rate) + tone(0.6, notes[1], rate=rate)


def test_tone(seconds: float = 5.0, rate: int = 48000) -> AudioSegment:
    return tone(seconds, 1000.0, rate=rate)


SIREN_PATTERNS = ("wail", "yelp", "steady", "all_clear")


def siren(pattern: str, seconds: float, rate: int = 48000) -> AudioSegment:
    return tone(seconds, 900.0, rate=rate, dbfs=-3.0)
