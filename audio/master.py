"""One path for every item: trim → loudness → FLAC master → Opus and MP3 renditions.

The loudness that counts is the one speakers play: the Opus rendition is measured
after encoding, and if it misses the target by more than half a LU (``loudnorm``'s
dynamic mode undershoots on speech with high peaks; low bitrates cut high
frequencies, which EBU R128's K-weighting counts) a small gain correction with a peak
limiter is applied. The normalised PCM is corrected first (cheap: no encoding), then,
if the encoder itself moved the loudness, the rendition once more.

Uploads, spoken text, composed bulletins and generated tones all go through
:func:`prepare`, so everything on the air is equally loud and encoded the same way.
Blocking (ffmpeg subprocesses); callers run it in a worker thread.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .encode import Rendition, encode_flac, encode_mp3, encode_opus
from .loudness import MIN_MEASURE_S, Loudness, adjust, measure, measure_encoded, normalise
from .settings import AudioSettings
from .trim import trim
from .waveform import peaks

#: How far the Opus rendition may measure from the target before it is made again.
AIM_TOLERANCE_LU = 0.5
#: The same on the normalised PCM, before encoding, and how many tries it gets.
PCM_TOLERANCE_LU = 0.3
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


def prepare(
    pcm: bytes,
    settings: AudioSettings,
    *,
    normalise_loudness: bool = True,
    application: str = "voip",
) -> Prepared:
    """Mono s16le PCM at ``settings.sample_rate`` → the stored forms of one item
    (``application``: the Opus mode, see :func:`audio.encode.encode_opus`)."""
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
        # loudnorm's dynamic mode undershoots on speech with high peaks: correct on PCM.
        for _ in range(MAX_CORRECTIONS):
            error = settings.loudness_lufs - master.integrated_lufs
            if abs(error) <= PCM_TOLERANCE_LU:
                break
            out, master = adjust(out, settings, error)
    else:  # generated signals keep the level they were made at
        out, master = pcm, loud_in
    opus, mp3, flac = _encode_all(out, settings, application)
    loud_out = _on_air(opus, out, settings)
    error = settings.loudness_lufs - loud_out.integrated_lufs
    if normalise_loudness and abs(error) > AIM_TOLERANCE_LU:
        # What is on the air is what must be at the target: make up what the encoder lost.
        out, master = adjust(out, settings, error)
        opus, mp3, flac = _encode_all(out, settings, application)
        loud_out = _on_air(opus, out, settings)
    return Prepared(
        duration_ms=len(out) * 1000 // (2 * rate),
        trimmed_ms=trimmed_ms,
        loudness_in=loud_in,
        loudness_out=loud_out,
        true_peak_dbtp=master.true_peak_dbtp,
        master=flac,
        opus=opus,
        mp3=mp3,
        peaks=peaks(out, buckets=200),
    )


def _encode_all(
    pcm: bytes, settings: AudioSettings, application: str = "voip"
) -> tuple[Rendition, Rendition, Rendition]:
    """Opus, MP3 and FLAC at once: three ffmpeg processes, so both cores work."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        opus = pool.submit(encode_opus, pcm, settings, application)
        mp3 = pool.submit(encode_mp3, pcm, settings, settings.mp3_bitrate_kbps)
        flac = pool.submit(encode_flac, pcm, settings)
        return opus.result(), mp3.result(), flac.result()


def _on_air(opus: Rendition, pcm: bytes, settings: AudioSettings) -> Loudness:
    """The rendition's loudness; for a very short item, the PCM's (it cannot be gated)."""
    if len(pcm) < int(MIN_MEASURE_S * settings.sample_rate) * 2:
        return measure(pcm, settings)
    return measure_encoded(opus.data, settings)
