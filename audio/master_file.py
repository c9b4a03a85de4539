""":func:`audio.master.prepare` for long uploads, on disk: nothing whole in memory.

The same steps (trim → measure → two-pass ``loudnorm`` → corrections → FLAC, Opus and
MP3 → the loudness of what speakers decode), each an ffmpeg process reading and writing
raw PCM files in a private work folder, and the checks Python makes (silence bounds,
peaks) read a block at a time. A 55-minute recording at 48 kHz is 317 MB of PCM: it
lives on disk, and the controller's memory stays flat. Blocking; run in a worker thread.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .encode import FileRendition, encode_file
from .loudness import (
    Loudness,
    adjust_file,
    measure_encoded_file,
    measure_file,
    normalise_file,
)
from .master import AIM_TOLERANCE_LU, MAX_CORRECTIONS, PCM_TOLERANCE_LU
from .settings import AudioSettings
from .trim import copy_range, sound_bounds_file
from .waveform import peaks_file


@dataclass(frozen=True)
class PreparedFiles:
    duration_ms: int
    trimmed_ms: int
    loudness_in: Loudness
    loudness_out: Loudness
    true_peak_dbtp: float
    master: FileRendition
    opus: FileRendition
    mp3: FileRendition
    peaks: list[float]


def prepare_file(raw: Path, settings: AudioSettings, work: Path) -> PreparedFiles:
    """A raw mono s16le file → renditions in ``work`` (the caller moves them, then
    removes ``work``). ``raw`` itself is left as it was."""
    rate = settings.sample_rate
    before = raw.stat().st_size
    settings = scaled_timeout(settings, before / (2 * rate))
    current = raw
    if settings.trim_silence:
        start, end = sound_bounds_file(
            raw,
            rate=rate,
            threshold_dbfs=settings.trim_threshold_dbfs,
            keep_ms=settings.trim_keep_ms,
        )
        if (start, end) != (0, before):
            current = work / "trimmed.raw"
            copy_range(raw, current, start, end)
    trimmed_ms = (before - current.stat().st_size) * 1000 // (2 * rate)
    loud_in = measure_file(current, settings)
    out = work / "normalised.raw"
    master = normalise_file(current, settings, out, before=loud_in)
    if current != raw:
        current.unlink()
    for _ in range(MAX_CORRECTIONS):
        error = settings.loudness_lufs - master.integrated_lufs
        if abs(error) <= PCM_TOLERANCE_LU:
            break
        master = _adjust_in_place(out, settings, error, work)
    opus, mp3, flac = _encode_all(out, settings, work)
    loud_out = _on_air(opus, out, settings)
    error = settings.loudness_lufs - loud_out.integrated_lufs
    if abs(error) > AIM_TOLERANCE_LU:
        master = _adjust_in_place(out, settings, error, work)
        opus, mp3, flac = _encode_all(out, settings, work)
        loud_out = _on_air(opus, out, settings)
    size = out.stat().st_size
    result = PreparedFiles(
        duration_ms=size * 1000 // (2 * rate),
        trimmed_ms=trimmed_ms,
        loudness_in=loud_in,
        loudness_out=loud_out,
        true_peak_dbtp=master.true_peak_dbtp,
        master=flac,
        opus=opus,
        mp3=mp3,
        peaks=peaks_file(out, buckets=200),
    )
    out.unlink()
    return result


#: ``audio.decode_timeout_s`` covers this much audio; longer items get proportionally more
#: (encoding an hour of Opus takes about a minute on a quiet 2-core machine).
TIMEOUT_COVERS_S = 300.0


def scaled_timeout(settings: AudioSettings, duration_s: float) -> AudioSettings:
    """The settings with ffmpeg's time limit scaled to the item's length: the limit is
    there to stop a hung or hostile decode, not an honest long recording on a busy box."""
    factor = max(1.0, duration_s / TIMEOUT_COVERS_S)
    if factor == 1.0:
        return settings
    return settings.model_copy(update={"decode_timeout_s": settings.decode_timeout_s * factor})


def _adjust_in_place(raw: Path, settings: AudioSettings, gain_db: float, work: Path) -> Loudness:
    tmp = work / "adjusted.raw"
    figures = adjust_file(raw, settings, gain_db, tmp)
    os.replace(tmp, raw)
    return figures


def _encode_all(
    raw: Path, settings: AudioSettings, work: Path
) -> tuple[FileRendition, FileRendition, FileRendition]:
    """Opus, MP3 and FLAC at once: three ffmpeg processes, so both cores work."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        opus = pool.submit(encode_file, "opus", raw, settings, work / "item.opus")
        mp3 = pool.submit(encode_file, "mp3", raw, settings, work / "item.mp3")
        flac = pool.submit(encode_file, "flac", raw, settings, work / "item.flac")
        return opus.result(), mp3.result(), flac.result()


def _on_air(opus: FileRendition, raw: Path, settings: AudioSettings) -> Loudness:
    if raw.stat().st_size < settings.sample_rate * 2:  # under a second: the PCM's figures
        return measure_file(raw, settings)
    return measure_encoded_file(opus.path, settings)
