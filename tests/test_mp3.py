"""The MPEG Layer III splitter and the MP3 leg: exact frames, exact times."""

from __future__ import annotations

import uuid

import pytest

from audio.encode import encode_mp3
from audio.mp3 import frame_header, mp3_frames
from audio.settings import AudioSettings
from audio.tones import tone
from broadcaster.broadcasts.legs import MP3_ENCODER_DELAY, Timing, mp3_leg
from devices.frames import Priority
from devices.topics import Group, GroupKind
from loa.errors import AudioError


@pytest.mark.parametrize(("rate", "spf"), [(48000, 1152), (24000, 576), (16000, 576), (8000, 576)])
def test_frames_cover_the_audio_for_mpeg1_2_and_25(rate: int, spf: int) -> None:
    settings = AudioSettings(sample_rate=rate)
    data = encode_mp3(tone(2.0, 440.0, rate=rate).raw_data, settings, 32).data
    stream = mp3_frames(data)
    assert (stream.sample_rate, stream.samples_per_frame) == (rate, spf)
    seconds = len(stream.frames) * spf / rate
    assert 2.0 <= seconds <= 2.0 + 3 * spf / rate  # encoder padding only
    assert all(f[0] == 0xFF for f in stream.frames)
    assert sum(map(len, stream.frames)) <= len(data)


def test_tags_and_trailers_are_skipped() -> None:
    data = encode_mp3(tone(1.0, 440.0).raw_data, AudioSettings(), 48).data
    plain = mp3_frames(data).frames
    id3v2 = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10)
    assert mp3_frames(id3v2 + data).frames == plain
    assert mp3_frames(data + b"TAG" + bytes(125)).frames == plain
    assert mp3_frames(data + b"APETAGEX" + bytes(24)).frames == plain
    assert mp3_frames(data + plain[0][:10]).frames == plain  # a truncated last frame


@pytest.mark.parametrize("junk", [b"", b"hello world", bytes(500), b"\xff\xfb" + bytes(2)])
def test_garbage_is_refused(junk: bytes) -> None:
    with pytest.raises(AudioError):
        mp3_frames(junk)


def test_header_arithmetic() -> None:
    # MPEG-1 Layer III, 128 kb/s, 44.1 kHz, padding: 144*128000/44100 + 1 = 418
    assert frame_header(bytes([0xFF, 0xFB, 0x92, 0x00])) == (418, 44100, 1152)
    with pytest.raises(AudioError, match="Layer III"):
        frame_header(bytes([0xFF, 0xFD, 0x90, 0x00]))  # Layer II
    with pytest.raises(AudioError, match="invalid bitrate"):
        frame_header(bytes([0xFF, 0xFB, 0xF0, 0x00]))


def test_mp3_leg_shares_the_opus_timeline() -> None:
    data = encode_mp3(tone(5.0, 440.0).raw_data, AudioSettings(), 48).data
    stream = mp3_frames(data)
    start = 1_767_232_800_000_000
    leg = mp3_leg(
        stream,
        [Group("xa", GroupKind.HAMLET, "ap-1")],
        Timing(start, 2000, 200),
        Priority.NORMAL,
        str(uuid.uuid4()),
        "t",
    )
    assert leg.topics == ("loa/v1/xa/mp3/hamlet/ap-1",)
    assert leg.frames[0].pts_us == start and leg.start_us == start
    assert leg.header.pre_skip == MP3_ENCODER_DELAY and leg.header.codec == "mp3"
    n = 0
    for f in leg.frames:  # each frame starts exactly where its MPEG frames say
        assert f.pts_us == start + n * 1152 * 10**6 // 48000
        n += len(mp3_frames(f.payload).frames)
    assert n == len(stream.frames)
    assert leg.end_us == start + n * 1152 * 10**6 // 48000
