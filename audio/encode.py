"""Encode PCM once: a FLAC master, Opus mono for the air, MP3 for speakers without Opus.

Short items are encoded from PCM in memory (:class:`Rendition`); long uploads from a
raw PCM file on disk into a file (:class:`FileRendition`), so a recording never has to
fit in memory.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import ffmpeg

from . import ffmpeg as ff
from .settings import AudioSettings

#: Read size when hashing or scanning files.
BLOCK = 1 << 20


@dataclass(frozen=True)
class Rendition:
    codec: str
    data: bytes  # container bytes as stored (Ogg Opus / MP3)
    sha256: str
    bitrate_kbps: int

    @property
    def size(self) -> int:
        return len(self.data)

    def save(self, dest: Path) -> None:
        dest.write_bytes(self.data)


@dataclass(frozen=True)
class FileRendition:
    """A rendition already on disk (a long upload); :meth:`save` moves it into place."""

    codec: str
    path: Path
    sha256: str
    bitrate_kbps: int
    size: int

    def save(self, dest: Path) -> None:
        os.replace(self.path, dest)


class Stored(Protocol):
    @property
    def codec(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def bitrate_kbps(self) -> int: ...
    @property
    def size(self) -> int: ...
    def save(self, dest: Path) -> None: ...


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def pcm_input(src: bytes | Path, settings: AudioSettings) -> tuple[Any, bytes | None]:
    """An ffmpeg input of mono s16le PCM: piped bytes, or a raw file read by ffmpeg."""
    if isinstance(src, Path):
        node = ffmpeg.input(
            str(src), format="s16le", ar=settings.sample_rate, ac=1, protocol_whitelist="file"
        )
        return node, None
    return ffmpeg.input("pipe:", format="s16le", ar=settings.sample_rate, ac=1), src


def _opus(settings: AudioSettings, application: str = "voip") -> dict[str, Any]:
    return {
        "format": "ogg",
        "acodec": "libopus",
        "audio_bitrate": f"{settings.opus_bitrate_kbps}k",
        "application": application,
        "vbr": "constrained",  # keep tonal audio (chimes, sirens) near the bitrate budget
        "frame_duration": settings.opus_frame_ms,
        "ac": 1,
        **({"cutoff": settings.opus_cutoff_hz} if settings.opus_cutoff_hz else {}),
        "map_metadata": -1,
    }


def _mp3(bitrate_kbps: int) -> dict[str, Any]:
    return {"format": "mp3", "acodec": "libmp3lame", "audio_bitrate": f"{bitrate_kbps}k", "ac": 1}


_FLAC = {"format": "flac", "acodec": "flac", "compression_level": 5, "ac": 1, "map_metadata": -1}


def _encode(
    src: bytes | Path, settings: AudioSettings, out: str, options: dict[str, Any], what: str
) -> bytes:
    node, data = pcm_input(src, settings)
    graph = node.output(out, **options)
    if out != "pipe:":
        graph = graph.overwrite_output()
    return ff.run(
        graph,
        binary=ff.find_ffmpeg(settings.ffmpeg),
        data=data,
        timeout=settings.decode_timeout_s,
        what=what,
    )


def encode_opus(pcm: bytes, settings: AudioSettings, application: str = "voip") -> Rendition:
    """Mono s16le PCM at ``settings.sample_rate`` → Ogg Opus, speech-tuned.

    ``application="lowdelay"`` (CELT only) for loud tonal audio such as sirens: libopus's
    voip and audio modes overshoot a loud frequency sweep by up to 10 dB (clipping), so
    alerts are encoded with it."""
    data = _encode(pcm, settings, "pipe:", _opus(settings, application), "encoding Opus")
    return Rendition("opus", data, hashlib.sha256(data).hexdigest(), settings.opus_bitrate_kbps)


def encode_mp3(pcm: bytes, settings: AudioSettings, bitrate_kbps: int = 32) -> Rendition:
    data = _encode(pcm, settings, "pipe:", _mp3(bitrate_kbps), "encoding MP3")
    return Rendition("mp3", data, hashlib.sha256(data).hexdigest(), bitrate_kbps)


def encode_flac(pcm: bytes, settings: AudioSettings) -> Rendition:
    """The lossless master every rendition can be made again from."""
    data = _encode(pcm, settings, "pipe:", _FLAC, "encoding the FLAC master")
    return Rendition("flac", data, hashlib.sha256(data).hexdigest(), 0)


def encode_file(codec: str, raw: Path, settings: AudioSettings, out: Path) -> FileRendition:
    """A raw PCM file → a rendition file (``opus``, ``mp3`` or ``flac``), never in memory."""
    options, bitrate, what = {
        "opus": (_opus(settings), settings.opus_bitrate_kbps, "encoding Opus"),
        "mp3": (_mp3(settings.mp3_bitrate_kbps), settings.mp3_bitrate_kbps, "encoding MP3"),
        "flac": (_FLAC, 0, "encoding the FLAC master"),
    }[codec]
    _encode(raw, settings, str(out), options, what)
    return FileRendition(codec, out, sha256_file(out), bitrate, out.stat().st_size)
