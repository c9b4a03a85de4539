"""EBU R128 loudness: measure with ``ebur128``, normalise with ``loudnorm`` (two passes).

Pass one measures the item (integrated loudness, true peak, loudness range and gate
threshold) with ffmpeg's ``ebur128`` filter, which is several times faster than a
``loudnorm`` measuring pass and reports the same quantities; pass two applies
``loudnorm`` with those measurements, linear when the target can be reached without
exceeding the true-peak ceiling, otherwise in the filter's dynamic mode. Both filters
print their figures on stderr, which is parsed here; the output is resampled back to
the internal rate (``loudnorm`` works at 192 kHz).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from loa.errors import AudioError

from . import ffmpeg as ff
from .encode import pcm_input
from .settings import AudioSettings

_JSON = re.compile(r"\{[^{}]*\"input_i\"[^{}]*\}", re.S)
_SUMMARY = re.compile(
    r"Summary:.*?I:\s*(?P<i>-?[\d.]+|-inf) LUFS.*?Threshold:\s*(?P<thr>-?[\d.]+|-inf) LUFS"
    r".*?LRA:\s*(?P<lra>-?[\d.]+) LU(?:.*?Peak:\s*(?P<tp>-?[\d.]+|-inf) dBFS)?",
    re.S,
)


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float
    true_peak_dbtp: float
    range_lu: float
    threshold_lufs: float
    offset_lu: float = 0.0


def _number(raw: object) -> float:
    value = float(str(raw))
    if math.isnan(value):
        raise ValueError("NaN")
    return value


def parse_report(stderr: str) -> tuple[Loudness, Loudness]:
    """The (input, output) figures of a ``loudnorm`` JSON report on ffmpeg's stderr."""
    found = _JSON.findall(stderr)
    if not found:
        raise AudioError("loudness measurement failed: ffmpeg printed no report", detail=stderr)
    try:
        r = json.loads(found[-1])
        before = Loudness(
            _number(r["input_i"]),
            _number(r["input_tp"]),
            _number(r["input_lra"]),
            _number(r["input_thresh"]),
            _number(r["target_offset"]),
        )
        after = Loudness(
            _number(r["output_i"]),
            _number(r["output_tp"]),
            _number(r["output_lra"]),
            _number(r["output_thresh"]),
        )
    except (KeyError, ValueError, json.JSONDecodeError) as exc:
        raise AudioError(
            "loudness measurement failed: unreadable report", detail=found[-1]
        ) from exc
    if math.isinf(before.integrated_lufs):
        raise AudioError("the recording is silent (no measurable loudness)")
    return before, after


def parse_summary(stderr: str) -> Loudness:
    """The figures of an ``ebur128`` summary on ffmpeg's stderr."""
    found = list(_SUMMARY.finditer(stderr))
    if not found:
        raise AudioError("loudness measurement failed: ffmpeg printed no report", detail=stderr)
    m = found[-1]
    integrated = float(m["i"])
    if math.isinf(integrated) or integrated <= -70.0:
        raise AudioError("the recording is silent (no measurable loudness)")
    return Loudness(
        integrated,
        float(m["tp"]) if m["tp"] else math.nan,
        float(m["lra"]),
        float(m["thr"]),
    )


def _ebur128(
    data: bytes | Path, settings: AudioSettings, *, pcm: bool, what: str, peak: bool = True
) -> Loudness:
    if pcm:
        source, piped = pcm_input(data, settings)
    elif isinstance(data, Path):
        source, piped = ffmpeg.input(str(data), protocol_whitelist="file"), None
    else:
        source, piped = ffmpeg.input("pipe:", protocol_whitelist="pipe"), data
    # framelog=verbose: the per-100 ms lines stay out of the log (an hour is 36,000 lines).
    graph = source.filter("ebur128", peak="true" if peak else "none", framelog="verbose").output(
        "-", format="null"
    )
    _, log = ff.run_with_log(
        graph,
        binary=ff.find_ffmpeg(settings.ffmpeg),
        data=piped,
        timeout=settings.decode_timeout_s,
        what=what,
        loglevel="info",
    )
    return parse_summary(log)


def _targets(settings: AudioSettings) -> dict[str, float]:
    return {
        "I": settings.loudness_lufs,
        "TP": settings.true_peak_dbtp,
        "LRA": settings.loudness_range_lu,
    }


def _run(
    pcm: bytes | Path,
    settings: AudioSettings,
    what: str,
    targets: dict[str, float] | None = None,
    out: Path | None = None,
    **options: object,
) -> tuple[bytes, str]:
    source, piped = pcm_input(pcm, settings)
    graph = source.filter(
        "loudnorm", print_format="json", **(targets or _targets(settings)), **options
    ).output(
        str(out) if out else "pipe:",
        format="s16le",
        acodec="pcm_s16le",
        ar=settings.sample_rate,
        ac=1,
    )
    if out:
        graph = graph.overwrite_output()
    return ff.run_with_log(
        graph,
        binary=ff.find_ffmpeg(settings.ffmpeg),
        data=piped,
        timeout=settings.decode_timeout_s,
        what=what,
        loglevel="info",
    )


#: EBU R128 gates in 400 ms blocks: anything shorter is measured looped to this length
#: (a signal repeated has the loudness of the signal).
MIN_MEASURE_S = 1.0


def measure(pcm: bytes, settings: AudioSettings) -> Loudness:
    """Integrated loudness, true peak, range and gate of mono s16le PCM (pass one)."""
    pcm = pcm[: len(pcm) - len(pcm) % 2]
    needed = int(MIN_MEASURE_S * settings.sample_rate) * 2
    if pcm and len(pcm) < needed:
        pcm = (pcm * (needed // len(pcm) + 1))[:needed]
    return _ebur128(pcm, settings, pcm=True, what="measuring loudness")


def measure_encoded(data: bytes, settings: AudioSettings) -> Loudness:
    """Loudness of an encoded rendition (Ogg Opus, MP3...) as a speaker will decode it."""
    return _ebur128(
        data, settings, pcm=False, what="measuring the rendition's loudness", peak=False
    )


def normalise(
    pcm: bytes, settings: AudioSettings, *, before: Loudness | None = None, aim_lu: float = 0.0
) -> tuple[bytes, Loudness, Loudness]:
    """Two-pass ``loudnorm``: returns (normalised PCM, input figures, output figures).

    ``aim_lu`` shifts the target, to correct for what a lossy encoder then takes away
    (a low-bitrate Opus drops high frequencies, which the K-weighting counts).
    """
    before = before or measure(pcm, settings)
    targets = _targets(settings)
    targets["I"] = min(-5.0, targets["I"] + aim_lu)
    out, _ = _run(
        pcm,
        settings,
        "normalising loudness",
        targets,
        measured_I=before.integrated_lufs,
        measured_TP=before.true_peak_dbtp,
        measured_LRA=before.range_lu,
        measured_thresh=before.threshold_lufs,
        offset=before.offset_lu,
        linear="true",
    )
    # Measured again rather than taken from loudnorm's own report, which cannot gate
    # items shorter than 400 ms.
    return out, before, measure(out, settings)


def adjust(pcm: bytes, settings: AudioSettings, gain_db: float) -> tuple[bytes, Loudness]:
    """A small gain correction with a peak limiter at the ceiling; returns PCM and its figures.

    Used after ``loudnorm`` when what comes out (or what the encoder keeps) misses the
    target by a fraction of a LU: far cheaper than another ``loudnorm`` pass.
    """
    ceiling = 10 ** (settings.true_peak_dbtp / 20)
    graph = (
        ffmpeg.input("pipe:", format="s16le", ar=settings.sample_rate, ac=1)
        .filter("volume", f"{gain_db:.2f}dB")
        .filter("alimiter", limit=f"{ceiling:.4f}", level="disabled", attack=5, release=50)
        .output("pipe:", format="s16le", acodec="pcm_s16le", ar=settings.sample_rate, ac=1)
    )
    out = ff.run(
        graph,
        binary=ff.find_ffmpeg(settings.ffmpeg),
        data=pcm,
        timeout=settings.decode_timeout_s,
        what="adjusting loudness",
    )
    return out, measure(out, settings)


# --- the same on raw PCM files (long uploads: nothing whole in memory) --------------------


def measure_file(raw: Path, settings: AudioSettings) -> Loudness:
    """:func:`measure` of a raw mono s16le file, read by ffmpeg (short ones in memory)."""
    if raw.stat().st_size < int(MIN_MEASURE_S * settings.sample_rate) * 2:
        return measure(raw.read_bytes(), settings)
    return _ebur128(raw, settings, pcm=True, what="measuring loudness")


def normalise_file(raw: Path, settings: AudioSettings, out: Path, *, before: Loudness) -> Loudness:
    """Two-pass ``loudnorm`` from file to file (pass one is ``before``); returns the
    output's figures, measured again."""
    _run(
        raw,
        settings,
        "normalising loudness",
        _targets(settings),
        out,
        measured_I=before.integrated_lufs,
        measured_TP=before.true_peak_dbtp,
        measured_LRA=before.range_lu,
        measured_thresh=before.threshold_lufs,
        offset=before.offset_lu,
        linear="true",
    )
    return measure_file(out, settings)


def adjust_file(raw: Path, settings: AudioSettings, gain_db: float, out: Path) -> Loudness:
    """:func:`adjust` from file to file."""
    ceiling = 10 ** (settings.true_peak_dbtp / 20)
    source, _ = pcm_input(raw, settings)
    graph = (
        source.filter("volume", f"{gain_db:.2f}dB")
        .filter("alimiter", limit=f"{ceiling:.4f}", level="disabled", attack=5, release=50)
        .output(str(out), format="s16le", acodec="pcm_s16le", ar=settings.sample_rate, ac=1)
        .overwrite_output()
    )
    ff.run(
        graph,
        binary=ff.find_ffmpeg(settings.ffmpeg),
        data=None,
        timeout=settings.decode_timeout_s,
        what="adjusting loudness",
    )
    return measure_file(out, settings)


def measure_encoded_file(path: Path, settings: AudioSettings) -> Loudness:
    """:func:`measure_encoded` of a rendition file."""
    return _ebur128(
        path, settings, pcm=False, what="measuring the rendition's loudness", peak=False
    )
