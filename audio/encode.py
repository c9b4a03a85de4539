"""Encode PCM once: a FLAC master, Opus mono for the air, MP3 for speakers without Opus."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import ffmpeg

from . import ffmpeg as ff
from .settings import AudioSettings


@dataclass(frozen=True)
class Rendition:
    codec: str
    data: bytes  # container bytes as stored (Ogg Opus / MP3)
    sha256: str
    bitrate_kbps: int


def encode_opus(pcm: bytes, settings: AudioSettings, application: str = "voip") -> Rendition:
    """Mono s16le PCM at ``settings.sample_rate`` → Ogg Opus, speech-tuned.

    ``application="lowdelay"`` (CELT only) for loud tonal audio such as sirens: libopus's
    voip and audio modes overshoot a loud frequency sweep by up to 10 dB (clipping), so
    alerts are encoded with it."""
    graph = ffmpeg.input("pipe:", format="s16le", ar=settings.sample_rate, ac=1).output(
        "pipe:",
        format="ogg",
        acodec="libopus",
        audio_bitrate=f"{settings.opus_bitrate_kbps}k",
        application=application,
        vbr="constrained",  # keep tonal audio (chimes, sirens) near the bitrate budget
        frame_duration=settings.opus_frame_ms,
        ac=1,
        **({"cutoff": settings.opus_cutoff_hz} if settings.opus_cutoff_hz else {}),
        map_metadata=-1,
    )
    data = ff.run(
        graph,
        binary=ff.find_ffmpeg(settings.ffmpeg),
        data=pcm,
        timeout=settings.decode_timeout_s,
        what="encoding Opus",
    )
    return Rendition("opus", data, hashlib.sha256(data).hexdigest(), settings.opus_bitrate_kbps)


def encode_mp3(pcm: bytes, settings: AudioSettings, bitrate_kbps: int = 32) -> Rendition:
    graph = ffmpeg.input("pipe:", format="s16le", ar=settings.sample_rate, ac=1).output(
        "pipe:", format="mp3", acodec="libmp3lame", audio_bitrate=f"{bitrate_kbps}k", ac=1
    )
    data = ff.run(
        graph,
        binary=ff.find_ffmpeg(settings.ffmpeg),
        data=pcm,
        timeout=settings.decode_timeout_s,
        what="encoding MP3",
    )
    return Rendition("mp3", data, hashlib.sha256(data).hexdigest(), bitrate_kbps)


def encode_flac(pcm: bytes, settings: AudioSettings) -> Rendition:
    """The lossless master every rendition can be made again from."""
    graph = ffmpeg.input("pipe:", format="s16le", ar=settings.sample_rate, ac=1).output(
        "pipe:", format="flac", acodec="flac", compression_level=5, ac=1, map_metadata=-1
    )
    data = ff.run(
        graph,
        binary=ff.find_ffmpeg(settings.ffmpeg),
        data=pcm,
        timeout=settings.decode_timeout_s,
        what="encoding the FLAC master",
    )
    return Rendition("flac", data, hashlib.sha256(data).hexdigest(), 0)
