"""Loudness, trimming, the master pipeline, composition plans, live timeline, Ogg reader."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio.compose import PART_GAP_MS, Part, Step, plan, render
from audio.encode import encode_opus
from audio.ffmpeg import find_ffmpeg
from audio.ingest import decode_file
from audio.loudness import measure, normalise, parse_report
from audio.master import prepare
from audio.ogg import OggReader, opus_stream
from audio.settings import AudioSettings
from audio.trim import sound_bounds, trim
from broadcaster.broadcasts.live import LiveTimeline
from loa.errors import AudioError

RATE = 48000
S = AudioSettings()


def ebur128(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBFS) of a file, measured independently by ffmpeg."""
    out = subprocess.run(
        [
            find_ffmpeg(),
            "-hide_banner",
            "-nostdin",
            "-i",
            str(path),
            "-af",
            "ebur128=peak=true",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stderr
    summary = out[out.rindex("Summary:") :]
    lufs = float(summary.split("I:")[1].split("LUFS")[0])
    peak = float(summary.split("Peak:")[1].split("dBFS")[0])
    return lufs, peak


def speech_like(tmp: Path, seconds: float = 6.0, volume_db: float = -20.0) -> bytes:
    """Pink noise shaped into syllables: speech-like loudness without a TTS engine."""
    out = tmp / "speech.wav"
    subprocess.run(
        [
            find_ffmpeg(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"anoisesrc=color=pink:duration={seconds}:seed=7",
            "-af",
            f"tremolo=f=4:d=0.9,volume={volume_db}dB",
            "-ac",
            "1",
            "-ar",
            str(RATE),
            str(out),
        ],
        check=True,
        timeout=60,
    )
    return decode_file(out, S).pcm


@pytest.mark.parametrize("volume_db", [-35.0, -20.0, -6.0])
def test_normalise_reaches_the_target_within_one_lu(tmp_path: Path, volume_db: float) -> None:
    pcm = speech_like(tmp_path, volume_db=volume_db)
    out, before, after = normalise(pcm, S)
    assert abs(after.integrated_lufs - S.loudness_lufs) <= 1.0
    assert before.integrated_lufs == pytest.approx(measure(pcm, S).integrated_lufs, abs=0.01)
    wav = tmp_path / "out.wav"
    subprocess.run(
        [
            find_ffmpeg(),
            "-loglevel",
            "error",
            "-f",
            "s16le",
            "-ar",
            str(RATE),
            "-ac",
            "1",
            "-i",
            "-",
            str(wav),
        ],
        input=out,
        check=True,
        timeout=60,
    )
    lufs, _ = ebur128(wav)
    assert abs(lufs - S.loudness_lufs) <= 1.0


@pytest.mark.parametrize("volume_db", [-35.0, -20.0, -6.0])
def test_the_rendition_on_the_air_measures_at_the_target(tmp_path: Path, volume_db: float) -> None:
    """Measured independently on the Opus file speakers receive, after the lossy encoder."""
    p = prepare(speech_like(tmp_path, volume_db=volume_db), S)
    opus = tmp_path / "out.opus"
    opus.write_bytes(p.opus.data)
    lufs, _ = ebur128(opus)
    assert abs(lufs - S.loudness_lufs) <= 1.0
    assert p.loudness_out.integrated_lufs == pytest.approx(lufs, abs=0.2)
    assert p.loudness_in.integrated_lufs == pytest.approx(-18.6 + volume_db, abs=3)


def test_normalise_to_another_target(tmp_path: Path) -> None:
    quiet = S.model_copy(update={"loudness_lufs": -23.0})
    _, _, after = normalise(speech_like(tmp_path), quiet)
    assert abs(after.integrated_lufs + 23.0) <= 1.0


def test_measure_reports_input_loudness(tmp_path: Path) -> None:
    loud = measure(speech_like(tmp_path, volume_db=-10.0), S)
    quiet = measure(speech_like(tmp_path, volume_db=-30.0), S)
    assert loud.integrated_lufs - quiet.integrated_lufs == pytest.approx(20.0, abs=1.0)


def test_silence_has_no_loudness() -> None:
    with pytest.raises(AudioError, match="silent"):
        measure(bytes(RATE * 2 * 2), S)


@pytest.mark.parametrize(
    "stderr",
    ["", "no json here", '{"input_i" : "abc", "input_tp": "1"}', '{"input_i": "-20"}'],
)
def test_unreadable_loudness_report_is_an_audio_error(stderr: str) -> None:
    with pytest.raises(AudioError, match="loudness measurement failed"):
        parse_report(stderr)


def test_prepare_makes_master_renditions_and_waveform(tmp_path: Path) -> None:
    pcm = bytes(RATE) + speech_like(tmp_path, seconds=4.0) + bytes(RATE * 2)
    p = prepare(pcm, S)
    assert p.master.data.startswith(b"fLaC")
    assert p.opus.data.startswith(b"OggS")
    assert p.mp3.codec == "mp3"
    assert len({p.master.sha256, p.opus.sha256, p.mp3.sha256}) == 3
    # 0.5 s + 1 s of leading/trailing silence trimmed, 150 ms kept on each side.
    assert p.trimmed_ms == pytest.approx(1500 - 2 * S.trim_keep_ms, abs=30)
    assert p.duration_ms == pytest.approx(4000 + 2 * S.trim_keep_ms, abs=30)
    assert len(p.peaks) == 200 and max(p.peaks) > 0.2


def test_prepare_without_trimming_keeps_the_silence(tmp_path: Path) -> None:
    keep = S.model_copy(update={"trim_silence": False})
    pcm = bytes(RATE * 2) + speech_like(tmp_path, seconds=3.0)
    assert prepare(pcm, keep).duration_ms == pytest.approx(4000, abs=25)


# --- trimming (pure) --------------------------------------------------------------------


def _pcm(values: list[int]) -> bytes:
    import array

    return array.array("h", values).tobytes()


def test_trim_keeps_the_requested_margin() -> None:
    sound = _pcm([0] * 4800 + [20000] * 4800 + [0] * 9600)
    start, end = sound_bounds(sound, rate=RATE, threshold_dbfs=-50, keep_ms=50)
    assert start == (4800 - 2400) * 2
    assert end == (9600 + 2400) * 2


def test_trim_of_all_silence_keeps_everything() -> None:
    silence = bytes(9600)
    assert trim(silence, rate=RATE, threshold_dbfs=-50, keep_ms=100) == silence


@given(
    st.lists(st.integers(-32768, 32767), max_size=3000),
    st.integers(0, 500),
    st.floats(-90, -10),
)
@settings(max_examples=200, deadline=None)
def test_trim_bounds_are_sample_aligned_and_inside(
    values: list[int], keep: int, thr: float
) -> None:
    pcm = _pcm(values)
    start, end = sound_bounds(pcm, rate=8000, threshold_dbfs=thr, keep_ms=keep)
    assert 0 <= start <= end <= len(pcm)
    assert start % 2 == 0 and end % 2 == 0
    limit = 32768 * 10 ** (thr / 20)
    loud = [i for i, v in enumerate(values) if abs(v) >= limit]
    if loud:  # no loud sample is ever cut
        assert start <= loud[0] * 2 and end >= (loud[-1] + 1) * 2


# --- composition (pure plan, one render) ------------------------------------------------


def test_plan_reads_an_alert_three_times_between_chimes() -> None:
    steps = plan([Part("media", "m1"), Part("text", "Nước lên")], repeat=3)
    assert steps[0] == Step("chime", "open") and steps[-1] == Step("chime", "close")
    assert [s.ref for s in steps if s.kind == "media"] == ["m1"] * 3
    assert [s.ref for s in steps if s.kind == "text"] == ["Nước lên"] * 3
    assert Step("pause", ms=PART_GAP_MS) in steps


def test_plan_without_chimes_and_explicit_pause() -> None:
    steps = plan([Part("media", "a"), Part("pause", ms=2000), Part("media", "b")], chimes=False)
    assert steps == [Step("media", "a"), Step("pause", ms=2000), Step("media", "b")]


@pytest.mark.parametrize(
    ("parts", "repeat", "message"),
    [
        ([], 1, "at least one part"),
        ([Part("media", "a")], 0, "repeat"),
        ([Part("media", "a")], 11, "repeat"),
        ([Part("pause", ms=0)], 1, "pause"),
        ([Part("pause", ms=60_001)], 1, "pause"),
        ([Part("media", "a")] * 30, 10, "too long"),
    ],
)
def test_impossible_plans_are_refused(parts: list[Part], repeat: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan(parts, repeat=repeat)


@given(
    st.lists(
        st.one_of(
            st.builds(Part, st.just("media"), st.sampled_from(["a", "b"])),
            st.builds(Part, st.just("pause"), st.just(""), st.integers(1, 3000)),
        ),
        min_size=1,
        max_size=6,
    ),
    st.integers(1, 4),
    st.booleans(),
)
@settings(max_examples=100, deadline=None)
def test_render_length_is_the_sum_of_its_steps(
    parts: list[Part], repeat: int, chimes: bool
) -> None:
    sizes = {"a": 300, "b": 500, "open": 100, "close": 120}
    steps = plan(parts, repeat=repeat, chimes=chimes)
    pcm = render(steps, lambda s: bytes(sizes[s.ref]), rate=8000)
    expected = sum(sizes[s.ref] if s.kind != "pause" else 2 * (8000 * s.ms // 1000) for s in steps)
    assert len(pcm) == expected


# --- live timeline (pure) ---------------------------------------------------------------


def test_live_timeline_anchors_then_runs_contiguously() -> None:
    t = LiveTimeline(lead_us=800_000, frame_us=20_000)
    assert t.place(10, now_us=1_000_000) == 1_800_000
    assert t.place(10, now_us=1_200_000) == 2_000_000
    assert t.gaps == []


def test_live_timeline_jumps_forward_after_a_stall_and_records_the_gap() -> None:
    t = LiveTimeline(lead_us=800_000, frame_us=20_000)
    t.place(10, now_us=0)  # plays 0.8–1.0 s
    pts = t.place(10, now_us=3_000_000)  # the source was silent for 3 s
    assert pts == 3_800_000
    assert t.gaps == [(1_000_000, 2_800_000)]
    assert t.gap_us == 2_800_000


@given(st.lists(st.tuples(st.integers(1, 25), st.integers(0, 2_000_000)), max_size=50))
@settings(max_examples=200, deadline=None)
def test_live_timeline_never_late_never_overlapping(steps: list[tuple[int, int]]) -> None:
    t = LiveTimeline(lead_us=800_000, frame_us=20_000)
    now, last_end = 0, None
    for packets, advance in steps:
        now += advance
        pts = t.place(packets, now)
        assert pts >= now + 400_000  # at least half the lead to travel
        if last_end is not None:
            assert pts >= last_end  # contiguous or a forward gap, never overlapping
        last_end = pts + packets * 20_000
    assert t.gap_us == sum(g for _, g in t.gaps)


# --- incremental Ogg reader ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ogg_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    tmp = tmp_path_factory.mktemp("ogg")
    return encode_opus(speech_like(tmp, seconds=2.0), S).data


@given(st.lists(st.integers(1, 5000), max_size=40))
@settings(max_examples=60, deadline=None)
def test_ogg_reader_gives_the_same_packets_however_the_bytes_arrive(
    ogg_bytes: bytes, cuts: list[int]
) -> None:
    reader = OggReader()
    got: list[bytes] = []
    pos = 0
    for size in cuts:
        got += reader.feed(ogg_bytes[pos : pos + size])
        pos += size
    got += reader.feed(ogg_bytes[pos:])
    whole = opus_stream(ogg_bytes)
    assert got == whole.packets
    assert reader.pre_skip == whole.pre_skip


@pytest.mark.parametrize("data", [b"RIFF" + bytes(40), b"OggS\x01" + bytes(40)])
def test_ogg_reader_refuses_what_is_not_ogg(data: bytes) -> None:
    with pytest.raises(AudioError, match="not an Ogg stream"):
        OggReader().feed(data)


def test_ogg_reader_refuses_ogg_without_opus(tmp_path: Path) -> None:
    vorbis = tmp_path / "v.ogg"
    subprocess.run(
        [
            find_ffmpeg(),
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=d=0.5",
            "-c:a",
            "flac",
            "-f",
            "ogg",
            str(vorbis),
        ],
        check=True,
        timeout=60,
    )
    with pytest.raises(AudioError, match="does not hold Opus"):
        OggReader().feed(vorbis.read_bytes())


@pytest.mark.parametrize("seconds", [0.31, 0.5, 0.9])
def test_items_shorter_than_a_loudness_block_are_normalised_too(seconds: float) -> None:
    """EBU R128 gates in 400 ms blocks; a short beep is measured looped, not refused."""
    from audio.tones import tone

    keep = S.model_copy(update={"trim_silence": False})
    p = prepare(tone(seconds, 660.0, rate=RATE, dbfs=-30.0).raw_data, keep)
    assert p.duration_ms == pytest.approx(seconds * 1000, abs=2)
    assert p.loudness_out.integrated_lufs == pytest.approx(S.loudness_lufs, abs=1.0)
    assert p.loudness_in.integrated_lufs < -30
