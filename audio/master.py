"""One path for every item: trim → loudness → FLAC master → Opus and MP3 renditions.

The loudness that counts is the one speakers play: the Opus rendition is measured
after encoding, and if the encoder moved it by more than half a LU (low bitrates cut
high frequencies, which EBU R128's K-weighting counts) the item is normalised again,
aiming off by that much.

Uploads, spoken text, composed bulletins and generated tones all go through
:func:`prepare`, so everything on the air is equally loud and encoded the same way.
Blocking (ffmpeg subprocesses); callers run it in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from .encode import Rendition, encode_flac, encode_mp3, encode_opus
from .loudness import Loudness, measure, measure_encoded, normalise
from .settings import AudioSettings
from .trim import trim
from .waveform import peaks

#: How far the Opus rendition may measure from the target before it is made again.
AIM_TOLERANCE_LU = 0.5
MAX_CORRECTIONS = 2


@dataclass(frozen=True)
class Prepared:
    duration_ms: int
    trimmed_ms: int
    loudness_in: Loudness
    loudness_out: Loudness  # of the Opus rendition, as speakers decode it
    true_peak_dbtp: float  # of the normalised master (lossy renditions overshoot a little)
    master: Rendition
    opus: Rendition
    mp3: Rendition
    peaks: list[float]


def prepare(pcm: bytes, settings: AudioSettings, *, normalise_loudness: bool = True) -> Prepared:
    """Mono s16le PCM at ``settings.sample_rate`` → the stored forms of one item."""
    rate = settings.sample_rate
    before = len(pcm)
    if settings.trim_silence:
        pcm = trim(
            pcm,
            rate=rate,
            threshold_dbfs=settings.trim_threshold_dbfs,
            keep_ms=settings.trim_keep_ms,
        )
    trimmed_ms = (before - len(pcm)) * 1000 // (2 * rate)
    loud_in = measure(pcm, settings)
    if normalise_loudness:
        out, _, master = normalise(pcm, settings, before=loud_in)
    else:  # generated signals keep the level they were made at
        out, master = pcm, loud_in
    opus = encode_opus(out, settings)
    loud_out = measure_encoded(opus.data, settings)
    aim = 0.0
    for _ in range(MAX_CORRECTIONS if normalise_loudness else 0):
        error = settings.loudness_lufs - loud_out.integrated_lufs
        if abs(error) <= AIM_TOLERANCE_LU:
            break
        # What is on the air is what must be at the target: aim off by what was lost.
        aim += error
        out, _, master = normalise(pcm, settings, before=loud_in, aim_lu=aim)
        opus = encode_opus(out, settings)
        loud_out = measure_encoded(opus.data, settings)
    return Prepared(
        duration_ms=len(out) * 1000 // (2 * rate),
        trimmed_ms=trimmed_ms,
        loudness_in=loud_in,
        loudness_out=loud_out,
        true_peak_dbtp=master.true_peak_dbtp,
        master=encode_flac(out, settings),
        opus=opus,
        mp3=encode_mp3(out, settings, settings.mp3_bitrate_kbps),
        peaks=peaks(out, buckets=200),
    )
