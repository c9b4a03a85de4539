"""Decode an untrusted file into PCM under limits, and refuse what is not audio.

The container is asked first (:mod:`audio.probe`): a file longer than the limit is
refused before a second of it is decoded. Long uploads are decoded to a raw PCM file
on disk (:func:`decode_to_file`) and checked block by block, so memory stays bounded
whatever the length; short items (speech, tones) may still be decoded into memory.

Only local files and pipes may be read (``-protocol_whitelist file,pipe``) and only
audio container demuxers may open them (``-format_whitelist``), so a crafted playlist,
concat list or URL inside an upload cannot make ffmpeg read anything else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np
from pydub import AudioSegment

from loa.errors import AudioError, FieldError

from . import ffmpeg as ff
from .encode import BLOCK
from .probe import Probe, parse_probe
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


def _check_size(path: Path, settings: AudioSettings) -> None:
    size = path.stat().st_size
    if size == 0:
        raise _refuse("the file is empty (0 bytes)", "empty")
    if size > settings.max_upload_bytes:
        raise _refuse(
            f"the file is {size} bytes; the limit is {settings.max_upload_bytes}", "too_large"
        )


def probe_file(path: Path, settings: AudioSettings) -> Probe:
    """Ask the container (no decoding); refuse a recording longer than the limit now."""
    try:
        text = ff.inspect(
            ff.find_ffmpeg(settings.ffmpeg),
            str(path),
            options=["-protocol_whitelist", PROTOCOLS, "-format_whitelist", DEMUXERS],
            timeout=settings.decode_timeout_s,
        )
    except AudioError as exc:
        raise _explain(exc, True) from exc
    found = parse_probe(text)
    # A container's duration may include a little encoder padding: a second of slack.
    if found.duration_s is not None and found.duration_s > settings.max_duration_s + 1.0:
        raise _refuse(
            f"the recording is longer than the {settings.max_duration_s:g} s limit", "too_long"
        )
    return found


def _decode_graph(path: Path, settings: AudioSettings, out: str) -> ffmpeg.nodes.OutputStream:
    graph = ffmpeg.input(str(path), protocol_whitelist=PROTOCOLS, format_whitelist=DEMUXERS).output(
        out,
        format="s16le",
        acodec="pcm_s16le",
        ac=1,
        ar=settings.sample_rate,
        t=f"{settings.max_duration_s + 1:.3f}",
        map="0:a:0",
        vn=None,
    )
    return graph.overwrite_output() if out != "pipe:" else graph


def _run_decode(path: Path, settings: AudioSettings, out: str) -> bytes:
    try:
        return ff.run(
            _decode_graph(path, settings, out),
            binary=ff.find_ffmpeg(settings.ffmpeg),
            data=None,
            timeout=settings.decode_timeout_s,
            what="decoding the upload",
        )
    except AudioError as exc:
        with path.open("rb") as fh:
            head = fh.read(16)
        raise _explain(exc, looks_like_audio(head)) from exc


def decode_file(path: Path, settings: AudioSettings) -> Decoded:
    """Decode ``path`` to mono 16-bit PCM in memory; raise AudioError with a clear reason."""
    _check_size(path, settings)
    probe_file(path, settings)
    return check_pcm(_run_decode(path, settings, "pipe:"), settings)


@dataclass(frozen=True)
class DecodedFile:
    """A decoded upload as a raw mono s16le file at ``settings.sample_rate``."""

    path: Path
    duration_s: float
    peak_dbfs: float


def decode_to_file(path: Path, settings: AudioSettings, out: Path) -> DecodedFile:
    """Decode ``path`` into the raw PCM file ``out`` and check it block by block.

    The caller owns ``out`` (and deletes it, refused or not).
    """
    _check_size(path, settings)
    found = probe_file(path, settings)
    if found.duration_s:  # the time limit scales with the length the container states
        factor = max(1.0, found.duration_s / 300.0)
        limit = settings.decode_timeout_s * factor
        settings = settings.model_copy(update={"decode_timeout_s": limit})
    _run_decode(path, settings, str(out))
    size = out.stat().st_size
    _check_length(size // 2 / settings.sample_rate, settings)
    peak = 0
    with out.open("rb") as fh:
        while block := fh.read(BLOCK):
            samples = np.frombuffer(block[: len(block) - len(block) % 2], dtype="<i2")
            if samples.size:
                peak = max(peak, int(np.abs(samples.astype(np.int32)).max()))
    peak_dbfs = 20 * math.log10(peak / 32768) if peak else -math.inf
    if math.isinf(peak_dbfs) or peak_dbfs < settings.silence_dbfs:
        raise _refuse("the recording is silent", "silent")
    return DecodedFile(out, size // 2 / settings.sample_rate, peak_dbfs)


def _check_length(duration: float, settings: AudioSettings) -> None:
    if duration > settings.max_duration_s:
        raise _refuse(
            f"the recording is longer than the {settings.max_duration_s:g} s limit", "too_long"
        )
    if duration < max(settings.min_duration_s, 0.02):
        raise _refuse(f"the recording is empty or too short ({duration:.2f} s)", "too_short")


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
    _check_length(duration, settings)
    segment = AudioSegment(data=pcm, sample_width=2, frame_rate=rate, channels=1)
    peak = segment.max_dBFS
    if math.isinf(peak) or peak < settings.silence_dbfs:
        raise _refuse("the recording is silent", "silent")
    return Decoded(segment=segment, duration_s=duration, peak_dbfs=float(peak))
