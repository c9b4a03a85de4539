"""The audio path with the real ffmpeg and espeak-ng: decode untrusted files, refuse
what is not usable audio (with a reason a person understands), encode for the air,
speak Vietnamese text, and generate chimes."""

from __future__ import annotations

import hashlib
import math
import os
import random
import shutil
import subprocess
import unicodedata
from functools import cache
from pathlib import Path

import pytest

from audio.encode import encode_mp3, encode_opus
from audio.ffmpeg import find_ffmpeg
from audio.ingest import DEMUXERS, Decoded, decode_file
from audio.ogg import opus_stream
from audio.settings import AudioSettings
from audio.tones import chime, to_wav, tone
from audio.tts import EspeakEngine
from loa.errors import AudioError, ToolMissing
from tests.conftest import ffmpeg_make, wav

DEFAULT = AudioSettings()
#: lavfi's sine source has amplitude 1/8: a peak of 20*log10(1/8) dBFS.
SINE_PEAK_DBFS = 20 * math.log10(1 / 8)
NOT_AUDIO_MESSAGE = (
    "this is not an audio file Loa can read (mp3, m4a/aac, ogg/opus, wav, amr, flac, webm...)"
)
VI_SENTENCE = "Thông báo khẩn: nước sông Hậu dâng cao, bà con ấp 3 di chuyển đến nơi an toàn."


def sine(seconds: float = 3.0, freq: float = 440.0, rate: int = 48000) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency={freq:g}:duration={seconds:g}:sample_rate={rate}"]


@cache
def has_encoder(name: str) -> bool:
    out = subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-encoders"], capture_output=True, check=True, timeout=30
    ).stdout.decode()
    return any(line.split()[1:2] == [name] for line in out.splitlines() if line.strip())


def refusal(path: Path, settings: AudioSettings = DEFAULT) -> AudioError:
    with pytest.raises(AudioError) as info:
        decode_file(path, settings)
    exc = info.value
    assert exc.status == 422
    assert len(exc.errors) == 1
    assert exc.errors[0].field == "file"
    assert exc.errors[0].message == exc.message == str(exc)
    return exc


def assert_pcm_shape(got: Decoded, rate: int) -> None:
    seg = got.segment
    assert (seg.channels, seg.sample_width, seg.frame_rate) == (1, 2, rate)
    assert len(got.pcm) % 2 == 0
    assert got.duration_s == pytest.approx(len(got.pcm) / 2 / rate)


def write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


# --- accepted formats ---------------------------------------------------------------


def test_generated_wav_decodes(tmp_path: Path) -> None:
    got = decode_file(write(tmp_path, "bulletin.wav", wav(2.0)), DEFAULT)
    assert_pcm_shape(got, DEFAULT.sample_rate)
    # the 1.9 s attention chime (peak -6 dBFS), then the 2 s tone (-12 dBFS)
    assert got.duration_s == pytest.approx(1.9 + 2.0, abs=0.01)
    assert got.peak_dbfs == pytest.approx(-6.0, abs=0.2)


FORMATS = [
    pytest.param(
        "voice.mp3", [*sine(), "-ac", "1", "-c:a", "libmp3lame", "-b:a", "64k"], False, id="mp3"
    ),
    pytest.param(
        "voice-note.ogg",
        [*sine(), "-ar", "16000", "-ac", "1", "-c:a", "libopus", "-b:a", "16k"],
        False,
        id="ogg-opus-voice-note",
    ),
    pytest.param(
        "phone.m4a",
        [*sine(rate=44100), "-ac", "1", "-c:a", "aac", "-b:a", "64k"],
        False,
        id="m4a-aac",
    ),
    pytest.param(
        "phone.amr",
        [*sine(), "-ar", "8000", "-ac", "1", "-c:a", "libopencore_amrnb", "-b:a", "12.2k"],
        False,
        id="amr-nb",
        marks=pytest.mark.skipif(
            not has_encoder("libopencore_amrnb"),
            reason="this ffmpeg has no libopencore_amrnb encoder to make an AMR-NB file",
        ),
    ),
    pytest.param(
        "phone.3gp",
        [*sine(), "-ar", "16000", "-ac", "1", "-c:a", "aac", "-b:a", "32k"],
        False,
        id="3gp-aac",
    ),
    pytest.param(
        "browser.webm",
        [*sine(), "-ar", "48000", "-ac", "1", "-c:a", "libopus", "-b:a", "32k"],
        False,
        id="webm-opus",
    ),
    pytest.param("studio.flac", [*sine(rate=44100), "-c:a", "flac"], True, id="flac"),
]


@pytest.mark.parametrize(("name", "args", "lossless"), FORMATS)
def test_decode_accepts_common_formats(
    tmp_path: Path, name: str, args: list[str], lossless: bool
) -> None:
    got = decode_file(ffmpeg_make(tmp_path, name, *args), DEFAULT)
    assert_pcm_shape(got, DEFAULT.sample_rate)
    assert got.duration_s == pytest.approx(3.0, abs=0.1)
    if lossless:
        assert got.peak_dbfs == pytest.approx(SINE_PEAK_DBFS, abs=0.3)
    else:
        assert -24.0 < got.peak_dbfs < -10.0


@pytest.mark.parametrize("rate", [48000, 16000, 8000])
def test_stereo_44k1_comes_out_mono_at_the_configured_rate(tmp_path: Path, rate: int) -> None:
    src = ffmpeg_make(tmp_path, "stereo.wav", *sine(rate=44100), "-ac", "2")
    settings = AudioSettings(sample_rate=rate)
    got = decode_file(src, settings)
    assert_pcm_shape(got, rate)
    assert got.duration_s == pytest.approx(3.0, abs=0.1)
    assert len(got.pcm) == pytest.approx(3.0 * rate * 2, abs=0.1 * rate * 2)
    assert -24.0 < got.peak_dbfs < -10.0


def test_quiet_but_audible_file_is_accepted(tmp_path: Path) -> None:
    src = ffmpeg_make(tmp_path, "quiet.wav", "-f", "lavfi", "-i", "sine=duration=2,volume=-30dB")
    got = decode_file(src, DEFAULT)
    assert got.peak_dbfs == pytest.approx(SINE_PEAK_DBFS - 30, abs=0.5)


def test_min_duration_zero_accepts_a_very_short_file(tmp_path: Path) -> None:
    src = ffmpeg_make(tmp_path, "blip.wav", *sine(0.05))
    got = decode_file(src, AudioSettings(min_duration_s=0.0))
    assert got.duration_s == pytest.approx(0.05, abs=0.005)


# --- refusals before ffmpeg runs ------------------------------------------------------

#: A binary that does not exist: any attempt to run ffmpeg raises ToolMissing instead.
NO_FFMPEG = "no-such-ffmpeg-binary-for-loa-tests"


def test_empty_file_is_refused_without_running_ffmpeg(tmp_path: Path) -> None:
    exc = refusal(write(tmp_path, "empty.mp3", b""), AudioSettings(ffmpeg=NO_FFMPEG))
    assert exc.errors[0].code == "empty"
    assert exc.message == "the file is empty (0 bytes)"
    assert exc.detail == ""


def test_file_over_the_upload_limit_is_refused_without_running_ffmpeg(tmp_path: Path) -> None:
    path = write(tmp_path, "big.wav", wav(1.0))
    size = path.stat().st_size
    exc = refusal(path, AudioSettings(ffmpeg=NO_FFMPEG, max_upload_bytes=size - 1))
    assert exc.errors[0].code == "too_large"
    assert exc.message == f"the file is {size} bytes; the limit is {size - 1}"
    assert exc.detail == ""
    # exactly at the limit is fine
    assert decode_file(path, AudioSettings(max_upload_bytes=size)).duration_s > 2.0


def test_missing_ffmpeg_is_reported_as_a_missing_tool(tmp_path: Path) -> None:
    with pytest.raises(ToolMissing, match=NO_FFMPEG):
        decode_file(write(tmp_path, "ok.wav", wav(1.0)), AudioSettings(ffmpeg=NO_FFMPEG))


# --- refusals by ffmpeg ---------------------------------------------------------------


def test_random_bytes_are_not_audio(tmp_path: Path) -> None:
    path = write(tmp_path, "upload", random.Random(7).randbytes(20_000))
    exc = refusal(path)
    assert exc.errors[0].code == "not_audio"
    assert exc.message == NOT_AUDIO_MESSAGE
    assert "Invalid data found when processing input" in exc.detail


def test_text_without_extension_is_not_audio(tmp_path: Path) -> None:
    path = write(tmp_path, "upload", b"Loa meeting notes, not a recording.\n" * 40)
    exc = refusal(path)
    assert exc.errors[0].code == "not_audio"
    assert "Invalid data found when processing input" in exc.detail


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"Loa meeting notes, not a recording.\n" * 40, id="text"),
        pytest.param(random.Random(7).randbytes(20_000), id="random-bytes"),
    ],
)
def test_non_audio_renamed_mp3_is_not_audio(tmp_path: Path, data: bytes) -> None:
    exc = refusal(write(tmp_path, "song.mp3", data))
    assert exc.detail  # ffmpeg ran and its stderr is kept
    assert exc.errors[0].code == "not_audio"


@pytest.mark.parametrize("name", ["photo.png", "photo.jpg"])
def test_image_is_not_audio(tmp_path: Path, name: str) -> None:
    path = ffmpeg_make(tmp_path, name, "-f", "lavfi", "-i", "testsrc=size=64x64", "-frames:v", "1")
    exc = refusal(path)
    assert exc.errors[0].code == "not_audio"
    assert exc.message == NOT_AUDIO_MESSAGE
    assert "Format not on whitelist" in exc.detail


def test_video_without_audio_track_is_refused(tmp_path: Path) -> None:
    path = ffmpeg_make(
        tmp_path,
        "clip.mp4",
        *("-f", "lavfi", "-i", "testsrc=size=64x64:duration=1", "-an", "-c:v", "mpeg4"),
    )
    exc = refusal(path)
    assert exc.errors[0].code == "no_audio"
    assert exc.message == "the file has no audio track"
    assert "matches no streams" in exc.detail


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("full.mp3", [*sine(), "-c:a", "libmp3lame", "-b:a", "64k"]),
        ("full.m4a", [*sine(), "-c:a", "aac", "-b:a", "64k"]),
    ],
)
def test_truncated_file_is_refused(tmp_path: Path, name: str, args: list[str]) -> None:
    full = ffmpeg_make(tmp_path, name, *args)
    assert decode_file(full, DEFAULT).duration_s == pytest.approx(3.0, abs=0.1)
    cut = write(tmp_path, "cut" + full.suffix, full.read_bytes()[:300])
    exc = refusal(cut)
    assert exc.errors[0].code in {"damaged", "not_audio"}
    assert str(cut) in exc.detail  # ffmpeg's own error line names the input


@pytest.mark.parametrize(
    "source", ["anullsrc=r=48000:cl=mono", "sine=frequency=440,volume=-70dB"], ids=["zero", "-88dB"]
)
def test_silent_file_is_refused(tmp_path: Path, source: str) -> None:
    path = ffmpeg_make(tmp_path, "silence.wav", "-f", "lavfi", "-i", source, "-t", "2")
    exc = refusal(path)
    assert exc.errors[0].code == "silent"
    assert exc.message == "the recording is silent"


def test_file_longer_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = ffmpeg_make(tmp_path, "long.wav", *sine(5.0))
    exc = refusal(path, AudioSettings(max_duration_s=2.0))
    assert exc.errors[0].code == "too_long"
    assert exc.message == "the recording is longer than the 2 s limit"
    # the same file is fine under a limit it fits in
    assert decode_file(path, AudioSettings(max_duration_s=6.0)).duration_s == pytest.approx(5.0)


def test_too_short_file_is_refused(tmp_path: Path) -> None:
    exc = refusal(ffmpeg_make(tmp_path, "blip.wav", *sine(0.05)))
    assert exc.errors[0].code == "too_short"
    assert exc.message == "the recording is empty or too short (0.05 s)"


def test_decode_timeout_stops_ffmpeg(tmp_path: Path) -> None:
    # No ffmpeg can start, decode and exit within 1 ms, so this cannot be flaky.
    exc = refusal(write(tmp_path, "ok.wav", wav(1.0)), AudioSettings(decode_timeout_s=0.001))
    assert exc.errors[0].code == "timeout"
    assert "too long" in exc.message
    assert isinstance(exc.__cause__, AudioError)
    assert "took longer than 0.001 s" in exc.__cause__.message


# --- playlists and concat lists must not reach other files --------------------------


def hls(target: str) -> str:
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:3.0,\n{target}\n#EXT-X-ENDLIST\n"


def ffconcat(target: str) -> str:
    return f"ffconcat version 1.0\nfile {target}\n"


LISTS = [
    pytest.param(hls, "list.m3u8", "hls", id="hls-m3u8"),
    pytest.param(hls, "list.mp3", "hls", id="hls-named-mp3"),
    pytest.param(ffconcat, "list.ffconcat", "concat", id="ffconcat"),
    pytest.param(ffconcat, "list.wav", "concat", id="ffconcat-named-wav"),
]


def test_playlists_are_refused_by_the_whitelist_not_by_chance(tmp_path: Path) -> None:
    """Control: without Loa's whitelists ffmpeg does follow these lists to a local file."""
    assert "hls" not in DEMUXERS.split(",")
    assert "concat" not in DEMUXERS.split(",")
    write(tmp_path, "seg.mp3", ffmpeg_make(tmp_path, "src.mp3", *sine()).read_bytes())
    for name, text in (("ctl.m3u8", hls("seg.mp3")), ("ctl.ffconcat", ffconcat("seg.mp3"))):
        (tmp_path / name).write_text(text)
        cmd = [find_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(tmp_path / name)]
        proc = subprocess.run(
            [*cmd, "-f", "null", "-"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr.decode()


@pytest.mark.parametrize(("make", "name", "demuxer"), LISTS)
def test_playlist_pointing_at_audio_is_refused(
    tmp_path: Path, make: object, name: str, demuxer: str
) -> None:
    assert callable(make)
    ffmpeg_make(tmp_path, "seg.mp3", *sine())
    path = tmp_path / name
    path.write_text(make("seg.mp3"))
    exc = refusal(path)
    assert exc.errors[0].code == "not_audio"
    assert f"[{demuxer} @" in exc.detail
    assert "Format not on whitelist" in exc.detail


@pytest.mark.parametrize(("make", "name", "demuxer"), LISTS)
def test_playlist_never_opens_the_referenced_file(
    tmp_path: Path, make: object, name: str, demuxer: str
) -> None:
    """The referenced file is a FIFO with no writer: opening it would block until the
    decode timeout, so a quick not_audio refusal proves it was never opened."""
    assert callable(make)
    os.mkfifo(tmp_path / "seg.mp3")
    path = tmp_path / name
    path.write_text(make("seg.mp3"))
    exc = refusal(path, AudioSettings(decode_timeout_s=15))
    assert exc.errors[0].code == "not_audio"
    assert f"[{demuxer} @" in exc.detail
    assert "seg.mp3" not in exc.detail


def test_ffconcat_of_etc_passwd_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.ffconcat"
    path.write_text("ffconcat version 1.0\nfile /etc/passwd\n")
    exc = refusal(path)
    assert exc.errors[0].code == "not_audio"
    assert "[concat @" in exc.detail
    assert "Format not on whitelist" in exc.detail
    assert "/etc/passwd" not in exc.detail
    assert "root:" not in exc.detail


# --- encoding for the air -------------------------------------------------------------


@pytest.fixture(scope="module")
def tone_pcm() -> bytes:
    data: bytes = tone(3.0, rate=DEFAULT.sample_rate).raw_data
    assert len(data) == 3 * DEFAULT.sample_rate * 2
    return data


def payload_kbps(packets: list[bytes], seconds: float = 3.0) -> float:
    return sum(map(len, packets)) * 8 / seconds / 1000


@pytest.mark.parametrize("frame_ms", [20, 60])
def test_encode_opus_packets_match_frame_duration(tone_pcm: bytes, frame_ms: int) -> None:
    settings = AudioSettings(opus_frame_ms=frame_ms)
    rendition = encode_opus(tone_pcm, settings)
    assert rendition.codec == "opus"
    assert rendition.bitrate_kbps == 24
    assert rendition.data.startswith(b"OggS")
    stream = opus_stream(rendition.data)
    assert abs(len(stream.packets) - 3000 / frame_ms) <= 2
    assert stream.pre_skip > 0
    assert stream.channels == 1
    assert stream.input_rate == settings.sample_rate
    assert all(stream.packets)


def test_encode_opus_sha256_is_of_the_stored_bytes(tone_pcm: bytes) -> None:
    rendition = encode_opus(tone_pcm, DEFAULT)
    assert rendition.sha256 == hashlib.sha256(rendition.data).hexdigest()


def test_encode_opus_bitrate_setting_changes_size(tone_pcm: bytes) -> None:
    low = opus_stream(encode_opus(tone_pcm, AudioSettings(opus_bitrate_kbps=16)).data)
    high = opus_stream(encode_opus(tone_pcm, AudioSettings(opus_bitrate_kbps=32)).data)
    assert sum(map(len, low.packets)) < sum(map(len, high.packets))
    assert payload_kbps(low.packets) == pytest.approx(16, rel=0.25)


def test_encode_opus_bitrate_on_noise_is_near_the_setting(tmp_path: Path) -> None:
    src = ffmpeg_make(
        tmp_path, "noise.wav", "-f", "lavfi", "-i", "anoisesrc=d=3:c=pink:a=0.25:r=48000:s=1"
    )
    stream = opus_stream(encode_opus(decode_file(src, DEFAULT).pcm, DEFAULT).data)
    assert 16 <= payload_kbps(stream.packets) <= 32


def test_encode_opus_tone_stays_near_the_bitrate_setting() -> None:
    pcm = tone(3.0, 1000.0, rate=DEFAULT.sample_rate).raw_data
    stream = opus_stream(encode_opus(pcm, DEFAULT).data)
    assert 16 <= payload_kbps(stream.packets) <= 32


def test_encode_opus_round_trips_through_decode(tmp_path: Path, tone_pcm: bytes) -> None:
    path = write(tmp_path, "air.opus", encode_opus(tone_pcm, DEFAULT).data)
    got = decode_file(path, DEFAULT)
    assert got.duration_s == pytest.approx(3.0, abs=0.03)
    assert got.peak_dbfs == pytest.approx(-12.0, abs=1.5)


def test_encode_mp3_gives_mp3_bytes(tmp_path: Path, tone_pcm: bytes) -> None:
    rendition = encode_mp3(tone_pcm, DEFAULT)
    data = rendition.data
    assert rendition.codec == "mp3"
    assert rendition.bitrate_kbps == 32
    assert rendition.sha256 == hashlib.sha256(data).hexdigest()
    assert data[:3] == b"ID3" or (data[0] == 0xFF and data[1] & 0xE0 == 0xE0)
    got = decode_file(write(tmp_path, "old-speaker.mp3", data), DEFAULT)
    assert got.duration_s == pytest.approx(3.0, abs=0.1)


# --- text to speech -------------------------------------------------------------------


@pytest.fixture(scope="module")
def espeak() -> EspeakEngine:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    return EspeakEngine("vi")


def spoken(engine: EspeakEngine, text: str, tmp: Path, name: str) -> Decoded:
    data = engine.synthesize(text)
    assert data.startswith(b"RIFF")
    assert data[8:12] == b"WAVE"
    return decode_file(write(tmp, name, data), DEFAULT)


def test_tts_speaks_vietnamese(espeak: EspeakEngine, tmp_path: Path) -> None:
    got = spoken(espeak, VI_SENTENCE, tmp_path, "nfc.wav")
    assert 2.0 < got.duration_s < 20.0
    assert got.peak_dbfs > -30.0


def test_tts_nfd_text_sounds_like_nfc(espeak: EspeakEngine, tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", VI_SENTENCE)
    assert nfd != VI_SENTENCE
    a = spoken(espeak, VI_SENTENCE, tmp_path, "nfc.wav")
    b = spoken(espeak, nfd, tmp_path, "nfd.wav")
    assert b.duration_s == pytest.approx(a.duration_s, rel=0.05)


@pytest.mark.parametrize("text", ["", "   ", "\n\t \u00a0 "], ids=["empty", "spaces", "mixed"])
def test_tts_refuses_empty_text(espeak: EspeakEngine, text: str) -> None:
    with pytest.raises(AudioError, match="no text to speak"):
        espeak.synthesize(text)


def test_tts_missing_binary_is_a_missing_tool() -> None:
    with pytest.raises(ToolMissing, match="espeak-ng"):
        EspeakEngine("vi", binary="no-such-espeak-binary-for-loa-tests")


# --- generated tones ------------------------------------------------------------------


def test_tone_length_rate_and_level() -> None:
    seg = tone(1.5)
    assert len(seg) == 1500
    assert (seg.channels, seg.frame_rate, seg.sample_width) == (1, 48000, 2)
    assert seg.max_dBFS == pytest.approx(-12.0, abs=0.1)
    assert tone(0.5, 300.0, rate=16000, dbfs=-20.0).max_dBFS == pytest.approx(-20.0, abs=0.1)
    assert len(tone(0.5, rate=16000)) == 500


def test_chime_length() -> None:
    assert len(chime()) == 1900
    assert chime().frame_rate == 48000
    low = chime(rate=16000)
    assert len(low) == 1900
    assert low.frame_rate == 16000


@pytest.mark.parametrize("rate", [48000, 16000])
def test_to_wav_decodes_through_decode_file(tmp_path: Path, rate: int) -> None:
    data = to_wav(chime(rate) + tone(1.0, rate=rate))
    assert data.startswith(b"RIFF")
    got = decode_file(write(tmp_path, "bulletin.wav", data), DEFAULT)
    assert_pcm_shape(got, DEFAULT.sample_rate)
    assert got.duration_s == pytest.approx(2.9, abs=0.01)
    assert got.peak_dbfs == pytest.approx(-6.0, abs=0.3)
