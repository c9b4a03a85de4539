"""Long uploads within bounded memory: the container is asked first, and the whole path
(decode, trim, loudness, encode) runs over files on disk, giving what the in-memory
path gives."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio.ingest import decode_file, decode_to_file, probe_file
from audio.master import prepare
from audio.master_file import prepare_file
from audio.probe import parse_probe
from audio.settings import AudioSettings
from audio.trim import sound_bounds, sound_bounds_file
from audio.waveform import peaks, peaks_file
from loa.errors import AudioError
from tests.conftest import ffmpeg_make
from tests.test_audio import sine, write

S = AudioSettings()

MP3_HEADER = """Input #0, mp3, from 'long.mp3':
  Metadata:
    encoder         : Lavf59.27.100
  Duration: 04:00:00.05, start: 0.025057, bitrate: 32 kb/s
  Stream #0:0: Audio: mp3, 44100 Hz, mono, fltp, 32 kb/s
At least one output file must be specified
"""
VIDEO_HEADER = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'clip.mp4':
  Duration: 00:00:01.00, start: 0.000000, bitrate: 40 kb/s
  Stream #0:0[0x1](und): Video: mpeg4 (Simple Profile) (mp4v / 0x7634706D), yuv420p, 64x64
"""


def test_the_container_header_is_read() -> None:
    p = parse_probe(MP3_HEADER)
    assert (p.opened, p.duration_s, p.audio_streams, p.other_streams) == (True, 14400.05, 1, 0)
    v = parse_probe(VIDEO_HEADER)
    assert (v.duration_s, v.audio_streams, v.other_streams) == (1.0, 0, 1)
    assert parse_probe("Duration: N/A\n").opened is False
    unknown = parse_probe("Input #0, aac, from 'x.aac':\n  Duration: N/A, bitrate: N/A\n")
    assert unknown.opened and unknown.duration_s is None


def test_a_too_long_file_is_refused_before_any_decoding(tmp_path: Path) -> None:
    src = ffmpeg_make(tmp_path, "long.mp3", *sine(30.0), "-c:a", "libmp3lame", "-b:a", "32k")
    limit = AudioSettings(max_duration_s=10.0)
    assert probe_file(src, S).duration_s == pytest.approx(30.0, abs=0.2)
    out = tmp_path / "decoded.raw"
    with pytest.raises(AudioError) as info:
        decode_to_file(src, limit, out)
    assert info.value.errors[0].code == "too_long"
    assert info.value.message == "the recording is longer than the 10 s limit"
    assert not out.exists(), "the decoder never ran"
    with pytest.raises(AudioError, match="10 s limit"):
        decode_file(src, limit)


def test_refusals_leave_no_decoded_file_behind_and_keep_their_reasons(tmp_path: Path) -> None:
    silent = ffmpeg_make(
        tmp_path, "silence.wav", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "2"
    )
    with pytest.raises(AudioError) as info:
        decode_to_file(silent, S, tmp_path / "a.raw")
    assert info.value.errors[0].code == "silent"
    junk = write(tmp_path, "song.mp3", b"not a recording\n" * 100)
    with pytest.raises(AudioError) as info:
        decode_to_file(junk, S, tmp_path / "b.raw")
    assert info.value.errors[0].code == "not_audio"


def test_on_disk_gives_what_in_memory_gives(tmp_path: Path) -> None:
    src = ffmpeg_make(
        tmp_path,
        "speech.wav",
        *("-f", "lavfi", "-i", "anoisesrc=color=pink:duration=6:seed=7"),
        *("-af", "tremolo=f=4:d=0.9,volume=-20dB,adelay=1000,apad=pad_dur=1", "-ac", "1"),
    )
    in_memory = decode_file(src, S)
    work = tmp_path / "work"
    work.mkdir()
    on_disk = decode_to_file(src, S, work / "decoded.raw")
    assert on_disk.duration_s == pytest.approx(in_memory.duration_s)
    assert on_disk.peak_dbfs == pytest.approx(in_memory.peak_dbfs, abs=0.01)
    assert on_disk.path.read_bytes() == in_memory.pcm
    a = prepare(in_memory.pcm, S)
    b = prepare_file(on_disk.path, S, work)
    assert (b.duration_ms, b.trimmed_ms) == (a.duration_ms, a.trimmed_ms)
    assert b.trimmed_ms > 500  # a second of leading silence went
    assert b.peaks == a.peaks
    assert b.loudness_in == a.loudness_in
    assert b.loudness_out.integrated_lufs == pytest.approx(S.loudness_lufs, abs=1.0)
    assert b.opus.path.read_bytes()[:4] == b"OggS" and b.master.path.read_bytes()[:4] == b"fLaC"
    assert b.opus.size == b.opus.path.stat().st_size
    assert sorted(os.listdir(work)) == ["decoded.raw", "item.flac", "item.mp3", "item.opus"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-32768, 32767), max_size=30_000),
    st.sampled_from([-50.0, -20.0, -6.0]),
)
def test_bounds_and_peaks_from_a_file_match_the_in_memory_ones(
    tmp_path_factory: pytest.TempPathFactory, samples: list[int], threshold: float
) -> None:
    pcm = np.asarray(samples, dtype="<i2").tobytes()
    path = tmp_path_factory.mktemp("pcm") / "x.raw"
    path.write_bytes(pcm)
    for rate in (8000, 48000):
        kw = {"rate": rate, "threshold_dbfs": threshold, "keep_ms": 150}
        want = sound_bounds(pcm, **kw)  # type: ignore[arg-type]
        for blocks in (1, 3, 512):  # windows per block read: the answer does not depend on it
            assert sound_bounds_file(path, block_windows=blocks, **kw) == want  # type: ignore[arg-type]
    assert peaks_file(path, buckets=200) == peaks(pcm, buckets=200)
    assert peaks_file(path, buckets=7) == peaks(pcm, buckets=7)
