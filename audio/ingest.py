"""Decode an untrusted file into PCM under limits, and refuse what is not audio.

Only local files and pipes may be read (``-protocol_whitelist file,pipe``) and only
audio container demuxers may open them (``-format_whitelist``), so a crafted playlist,
concat list or URL inside an upload cannot make ffmpeg read anything else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
from pydub import AudioSegment

from loa.errors import AudioError, FieldError

from . import ffmpeg as ff
from .settings import AudioSettings
from .sniff import looks_like_audio

#: Demuxers allowed to open an upload: containers phones, messengers and studios use.
DEMUXERS = (
    "wav,w64,mp3,ogg,flac,aac,amr,amrnb,amrwb,mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,caf,aiff,"
    "au,mpeg,asf,wv,ape,tta,opus"
)
PROTOCOLS = "file,pipe"


@dataclass(frozen=True)
class Decoded:
    segment: AudioSegment  # mono, 16-bit, settings.sample_rate
    duration_s: float
    peak_dbfs: float

    @property
    def pcm(self) -> bytes:
        data: bytes = self.segment.raw_data
        return data


def _refuse(message: str, code: str, detail: str = "") -> AudioError:
    return AudioError(message, detail=detail, errors=[FieldError("file", message, code)])


def decode_file(path: Path, settings: AudioSettings) -> Decoded:
    """Decode ``path`` to mono 16-bit PCM; raise AudioError with a clear reason."""
    size = path.stat().st_size
    if size == 0:
        raise _refuse("the file is empty (0 bytes)", "empty")
    if size > settings.max_upload_bytes:
        raise _refuse(
            f"the file is {size} bytes; the limit is {settings.max_upload_bytes}", "too_large"
        )
    rate = settings.sample_rate
    graph = ffmpeg.input(str(path), protocol_whitelist=PROTOCOLS, format_whitelist=DEMUXERS).output(
        "pipe:",
        format="s16le",
        acodec="pcm_s16le",
        ac=1,
        ar=rate,
        t=f"{settings.max_duration_s + 1:.3f}",
        map="0:a:0",
        vn=None,
    )
    try:
        pcm = ff.run(
            graph,
            binary=ff.find_ffmpeg(settings.ffmpeg),
            data=None,
            timeout=settings.decode_timeout_s,
            what="decoding the upload",
        )
    except AudioError as exc:
        with path.open("rb") as fh:
            head = fh.read(16)
        raise _explain(exc, looks_like_audio(head)) from exc
    return check_pcm(pcm, settings)


def _explain(exc: AudioError, recognised: bool) -> AudioError:
    """Turn ffmpeg's failure into a reason a person understands."""
    d = exc.detail.lower()
    if "took longer" in exc.message:
        return _refuse("decoding took too long; the file may be damaged", "timeout", exc.detail)
    if "matches no streams" in d or "does not contain any stream" in d:
        return _refuse("the file has no audio track", "no_audio", exc.detail)
    if recognised and "not on whitelist" not in d:
        return _refuse("the audio file is damaged or truncated", "damaged", exc.detail)
    return _refuse(
        "this is not an audio file Loa can read (mp3, m4a/aac, ogg/opus, wav, amr, flac, webm...)",
        "not_audio",
        exc.detail,
    )


def check_pcm(pcm: bytes, settings: AudioSettings) -> Decoded:
    """Apply duration and silence limits to decoded mono s16le PCM."""
    rate = settings.sample_rate
    pcm = pcm[: len(pcm) - len(pcm) % 2]
    duration = len(pcm) / 2 / rate
    if duration > settings.max_duration_s:
        raise _refuse(
            f"the recording is longer than the {settings.max_duration_s:g} s limit", "too_long"
        )
    if duration < max(settings.min_duration_s, 0.02):
        raise _refuse(f"the recording is empty or too short ({duration:.2f} s)", "too_short")
    segment = AudioSegment(data=pcm, sample_width=2, frame_rate=rate, channels=1)
    peak = segment.max_dBFS
    if math.isinf(peak) or peak < settings.silence_dbfs:
        raise _refuse("the recording is silent", "silent")
    return Decoded(segment=segment, duration_s=duration, peak_dbfs=float(peak))
