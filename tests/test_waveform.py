"""Waveform previews: peaks per bucket and a PNG of the requested size."""

from __future__ import annotations

import array
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio.waveform import peaks, png


def pcm(values: list[int]) -> bytes:
    return array.array("h", values).tobytes()


def test_silence_is_flat() -> None:
    assert peaks(bytes(48000), buckets=10) == [0.0] * 10


def test_full_scale_square_is_one() -> None:
    assert peaks(pcm([32767, -32768] * 1000), buckets=4) == [1.0] * 4


def test_loud_then_quiet() -> None:
    values = peaks(pcm([16384] * 1000 + [0] * 1000), buckets=10)
    assert values[:5] == [0.5] * 5 and values[5:] == [0.0] * 5


def test_fewer_samples_than_buckets_and_empty() -> None:
    assert peaks(pcm([100, -200, 300]), buckets=200) == pytest.approx(
        [0.003, 0.006, 0.009], abs=0.001
    )
    assert peaks(b"") == [] and peaks(b"\x01") == []


@given(st.binary(max_size=5000), st.integers(1, 300))
@settings(max_examples=200)
def test_peaks_are_bounded(data: bytes, buckets: int) -> None:
    values = peaks(data, buckets=buckets)
    assert len(values) <= buckets
    assert all(0.0 <= v <= 1.0 for v in values)


def size_of(image: bytes) -> tuple[int, int]:
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", image[16:24])
    return width, height


@pytest.mark.parametrize("values", [[0.1, 0.9, 0.4] * 50, [], [0.0], [1.0] * 500])
def test_png_has_the_requested_size(values: list[float]) -> None:
    assert size_of(png(values)) == (600, 80)
    assert size_of(png(values, width_px=360, height_px=48)) == (360, 48)
