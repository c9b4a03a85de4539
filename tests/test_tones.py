"""Generated chimes, test tone and sirens: lengths, levels, pitch, sweeps, no clicks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydub import AudioSegment

from audio import tones
from audio.tones import CHIME_HIGH, CHIME_LOW, SIREN_PATTERNS, attention_chime, siren

RATE = 48000


def samples(seg: AudioSegment) -> np.ndarray:
    return np.frombuffer(seg.raw_data, dtype="<i2").astype(np.float64) / 32768


def dominant(x: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


def pitch_track(x: np.ndarray, window_s: float = 0.02) -> np.ndarray:
    """Frequency per window from zero crossings (fine for one dominant tone)."""
    n = int(RATE * window_s)
    out = []
    for i in range(0, len(x) - n, n):
        w = x[i : i + n]
        crossings = np.count_nonzero(np.diff(np.signbit(w)))
        out.append(crossings / 2 / window_s)
    return np.array(out)


def test_test_tone_is_1khz_at_minus_12_dbfs() -> None:
    seg = tones.test_tone(2.0)
    assert len(seg.raw_data) // 2 == 2 * RATE
    assert seg.max_dBFS == pytest.approx(-12.0, abs=0.1)
    assert dominant(samples(seg)) == pytest.approx(1000.0, abs=2.0)


def test_attention_chime_goes_high_then_low_and_back_when_closing() -> None:
    x = samples(attention_chime())
    half = int(0.65 * RATE)
    assert dominant(x[:half]) == pytest.approx(CHIME_HIGH, abs=5)
    assert dominant(x[half : 2 * half]) == pytest.approx(CHIME_LOW, abs=5)
    y = samples(attention_chime(closing=True))
    assert dominant(y[:half]) == pytest.approx(CHIME_LOW, abs=5)
    assert dominant(y[half : 2 * half]) == pytest.approx(CHIME_HIGH, abs=5)
    assert attention_chime().max_dBFS == pytest.approx(-6.0, abs=0.1)


def test_wail_sweeps_600_to_1200_hz_every_four_seconds() -> None:
    track = pitch_track(samples(siren("wail", 8.0)))
    assert 550 < np.percentile(track, 2) < 700
    assert 1100 < np.percentile(track, 98) < 1300
    # the slowest rise: lowest near 0 s, 4 s and 8 s; highest near 2 s and 6 s
    per_s = int(1 / 0.02)
    assert abs(int(np.argmax(track[: 4 * per_s])) - 2 * per_s) <= 10


def test_yelp_sweeps_the_same_range_much_faster() -> None:
    x = samples(siren("yelp", 3.0))
    track = pitch_track(x, window_s=0.01)
    assert np.percentile(track, 5) > 550 and np.percentile(track, 95) < 1350
    highs = np.flatnonzero(np.diff((track > 1000).astype(int)) == 1)
    assert len(highs) >= 7  # about three sweeps a second (wail: one per four seconds)


def test_steady_is_one_tone_and_all_clear_is_different() -> None:
    assert dominant(samples(siren("steady", 2.0))) == pytest.approx(1000.0, abs=2)
    clear = samples(siren("all_clear", 3.0))
    assert dominant(clear) < 700


@pytest.mark.parametrize("pattern", SIREN_PATTERNS)
def test_sirens_have_no_clicks(pattern: str) -> None:
    x = samples(siren(pattern, 4.0))
    step = np.abs(np.diff(x))
    # A click is a step far larger than the signal's own steepest slopes.
    assert np.max(step) <= 1.3 * np.percentile(step, 99.5)
    assert siren(pattern, 1.0).max_dBFS == pytest.approx(-3.0, abs=0.1)


@pytest.mark.parametrize(
    ("pattern", "seconds", "message"),
    [
        ("whoop", 1.0, "unknown siren pattern 'whoop'; choose one of wail, yelp"),
        ("wail", 0.0, "more than 0"),
        ("wail", -1.0, "more than 0"),
        ("yelp", 601.0, "at most 600"),
    ],
)
def test_impossible_sirens_are_refused(pattern: str, seconds: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        siren(pattern, seconds)


@given(st.sampled_from(SIREN_PATTERNS), st.floats(0.05, 30.0), st.sampled_from([16000, 48000]))
@settings(max_examples=40, deadline=None)
def test_any_siren_has_its_exact_length_and_never_clips(
    pattern: str, seconds: float, rate: int
) -> None:
    seg = siren(pattern, seconds, rate)
    assert len(seg.raw_data) // 2 == round(seconds * rate)
    assert seg.frame_rate == rate and seg.channels == 1
    assert seg.max_dBFS <= 0.0
