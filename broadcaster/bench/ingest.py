"""``loa bench ingest``: the memory an upload costs, measured in a process of its own.

A 55-minute recording (Vietnamese speech from espeak-ng, looped, as a 64 kb/s MP3 a
phone or a district office would send) is added to a fresh library by
:meth:`Library.add_file`, exactly as an upload is, in a child Python process that has
imported the controller. The child resets its peak-RSS mark after start-up
(``/proc/self/clear_refs``), so the peak is what the ingest added to a running
controller's baseline, and reports its RSS once the item is stored (memory returns).
A four-hour file is refused the same way, timed: the container's header refuses it
before anything is decoded. ffmpeg's own processes are reported separately.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from audio.settings import AudioSettings

from .audio import _ffmpeg, speech_file
from .report import Figure, Report

LONG_S = 55 * 60.0
REFUSED_S = 4 * 3600.0


def _status(field: str) -> float:
    """A ``/proc/self/status`` figure (kB) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(source: str, workdir: str) -> None:
    """Run in the measured process: ingest ``source`` once, print one JSON line."""
    import gc
    import resource

    import anyio

    from broadcaster.library.service import Library
    from broadcaster.store.store import Store
    from loa.clock import SystemClock
    from loa.errors import AudioError

    work = Path(workdir)
    store = Store(work / "loa.db")
    library = Library(store, AudioSettings(), work / "media", SystemClock())
    gc.collect()
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
    t0 = time.perf_counter()
    outcome = "stored"
    try:
        anyio.run(
            lambda: library.add_file(Path(source), commune_id=None, title="bench", filename="x")
        )
    except AudioError as exc:
        outcome = exc.errors[0].code if exc.errors else exc.message
    elapsed = time.perf_counter() - t0
    peak = _status("VmHWM")
    gc.collect()
    after = _status("VmRSS")
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    store.close()
    leftovers = [p.name for p in (work / "media").iterdir() if p.name.startswith(".")]
    print(
        json.dumps(
            {
                "outcome": outcome,
                "seconds": elapsed,
                "rss_before_mb": before,
                "peak_rss_mb": peak,
                "rss_after_mb": after,
                "ffmpeg_peak_rss_mb": kids,
                "leftovers": leftovers,
            }
        )
    )


def measure(source: Path, work: Path) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from broadcaster.bench.ingest import child; child(*sys.argv[1:3])",
            str(source),
            str(work),
        ],
        capture_output=True,
        check=True,
        timeout=3600,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def loop_to(base: Path, seconds: float, out: Path) -> Path:
    """``base`` repeated (MP3 frames copied, no re-encoding) to ``seconds``."""
    loops = int(seconds // 60) + 2
    _ffmpeg("-stream_loop", str(loops), "-i", str(base), "-c", "copy", "-t", f"{seconds}", str(out))
    return out


def run(work: Path, *, trials: int, progress: Any = None) -> Report:
    settings = AudioSettings()
    speech = speech_file(work, 60.0, settings)  # one minute of speech, 128 kb/s
    base = work / "base64.mp3"
    _ffmpeg("-i", str(speech), "-ac", "1", "-c:a", "libmp3lame", "-b:a", "64k", str(base))
    base16 = work / "base16.mp3"
    _ffmpeg(
        "-i",
        str(speech),
        "-ac",
        "1",
        "-ar",
        "16000",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "16k",
        str(base16),
    )
    long = loop_to(base, LONG_S, work / "long-55min.mp3")
    huge = loop_to(base16, REFUSED_S, work / "huge-4h.mp3")
    runs, refusals = [], []
    for i in range(trials):
        runs.append(measure(long, work / f"t{i}"))
        refusals.append(measure(huge, work / f"r{i}"))
        if progress:
            progress()
    for r in runs:
        if r["outcome"] != "stored" or r["leftovers"]:
            raise RuntimeError(f"the 55-minute ingest did not complete cleanly: {r}")
    for r in refusals:
        if r["outcome"] != "too_long":
            raise RuntimeError(f"the 4-hour file was not refused as too long: {r}")

    def fig(key: str, label: str, rows: list[dict[str, Any]], field: str, unit: str) -> Figure:
        values = [round(r[field], 1) for r in rows]
        return Figure(key, label, sorted(values)[len(values) // 2], unit, values)

    return Report(
        name="ingest",
        title="Uploads within bounded memory",
        command=f"loa bench ingest --trials {trials}",
        figures=[
            fig(
                "ingest_peak_rss_mb_55min",
                "peak RSS while a 55-minute upload is ingested",
                runs,
                "peak_rss_mb",
                "MB",
            ),
            fig(
                "ingest_rss_before_mb",
                "RSS of the process before the upload",
                runs,
                "rss_before_mb",
                "MB",
            ),
            fig(
                "ingest_rss_after_mb_55min",
                "RSS once the item is stored",
                runs,
                "rss_after_mb",
                "MB",
            ),
            fig(
                "ingest_ffmpeg_peak_rss_mb_55min",
                "largest ffmpeg process (its own memory)",
                runs,
                "ffmpeg_peak_rss_mb",
                "MB",
            ),
            fig("ingest_s_55min", "time to ingest 55 minutes", runs, "seconds", "s"),
            fig("ingest_refuse_4h_s", "time to refuse a 4-hour file", refusals, "seconds", "s"),
            fig(
                "ingest_refuse_4h_peak_rss_mb",
                "peak RSS while refusing it",
                refusals,
                "peak_rss_mb",
                "MB",
            ),
        ],
        notes=[
            f"55 min of espeak-ng Vietnamese speech (a 60 s sample looped) as a 64 kb/s MP3 "
            f"({long.stat().st_size / 1e6:.1f} MB); decoded at 48 kHz it is "
            f"{LONG_S * 96_000 / 1e6:.0f} MB of PCM, which stays on disk: decode, trim, "
            "ebur128, loudnorm, corrections and the three encoders read and write files.",
            "Each trial is a fresh Python process that has imported the controller and opened "
            "a store; its peak-RSS mark is reset after start-up, so the peak includes that "
            "baseline (reported above) plus what the ingest added.",
            f"The 4-hour file is 16 kb/s MP3 ({huge.stat().st_size / 1e6:.1f} MB, under the "
            "upload size limit): refused from the container's header (`too_long`) before decoding.",
        ],
    )
