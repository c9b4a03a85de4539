"""``loa bench sync``: how far apart do speakers in one commune start the same audio?"""

from __future__ import annotations

import random
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from firmware_sim.playlog import read_log
from firmware_sim.spec import DeviceSpec

from .report import Figure, Report, percentile
from .setup import (
    COMMUNE,
    broadcast_and_wait,
    deployment,
    start_sims,
    upload_tone,
    wait_online,
)

#: Bytes on the air per clock-sync exchange: request (~60 B JSON + MQTT) and the signed
#: TIME frame answer (116 B header and signature + ~90 B JSON + MQTT), both ways.
EXCHANGE_BYTES = 350


def fleet(devices: int, seed: int = 7) -> list[DeviceSpec]:
    """±500 ms offsets, ±100 ppm drift, 5–50 ms one-way network delay per message."""
    rng = random.Random(seed)  # noqa: S311 - fault injection, not crypto
    return [
        DeviceSpec(
            id=f"sync-{i:04d}",
            commune=COMMUNE,
            hamlet=f"h{i % 5}",
            offset_s=rng.uniform(-0.5, 0.5),
            drift_ppm=rng.uniform(-100, 100),
            delay_ms=5.0,
            jitter_ms=45.0,
        )
        for i in range(devices)
    ]


#: What the simulator actually did: the true time it handed a chunk over, after its sleep.
HANDED = "handed_true_us"
#: The model: the true time of the sample-exact local target a real DAC would play at.
MODEL = "true_play_us"


def play_times(
    events: list[dict[str, Any]], streams: set[str], field: str = HANDED
) -> dict[tuple[str, int], list[int]]:
    """(stream, seq) → the true times each speaker handed that chunk over (µs); logs from
    before ``handed_true_us`` existed give the model's time."""
    times: dict[tuple[str, int], list[int]] = defaultdict(list)
    for e in events:
        if e.get("event") == "play" and e["stream"] in streams:
            times[(e["stream"], e["seq"])].append(e.get(field, e[MODEL]))
    return times


def chunk_spreads(
    events: list[dict[str, Any]], streams: set[str], field: str = HANDED
) -> dict[str, list[float]]:
    """Per stream: for each chunk, max − min of the true play times across speakers (ms)."""
    out: dict[str, list[float]] = defaultdict(list)
    for (stream, _), ts in sorted(play_times(events, streams, field).items()):
        if len(ts) > 1:
            out[stream].append((max(ts) - min(ts)) / 1000)
    return out


def handover_late_ms(events: list[dict[str, Any]], streams: set[str]) -> list[float]:
    """Per chunk and speaker: the true hand-over time minus the modelled DAC time (ms),
    i.e. how late the simulator's sleep woke."""
    return [
        (e[HANDED] - e[MODEL]) / 1000
        for e in events
        if e.get("event") == "play" and e["stream"] in streams and HANDED in e
    ]


def deviations(events: list[dict[str, Any]], streams: set[str]) -> list[float]:
    """Each speaker's play time minus the median of all speakers for that chunk (ms)."""
    out: list[float] = []
    for ts in play_times(events, streams).values():
        mid = statistics.median(ts)
        out += [(t - mid) / 1000 for t in ts]
    return out


def run(
    workdir: Path,
    *,
    devices: int = 50,
    trials: int = 3,
    seconds: float = 20.0,
    settle_s: float = 300.0,
    sync_interval_s: float = 0.5,
    processes: int = 2,
    progress: Any = None,
) -> tuple[Report, list[float]]:
    specs = fleet(devices)
    ids = [(s.id, s.hamlet) for s in specs]
    with deployment(workdir, ids, stream={"lead_ms": 1500, "report_grace_s": 2.0}) as d:
        sims = start_sims(  # the plain interval, without the faster start after boot
            d, specs, processes, workdir, ("--sync-interval", str(sync_interval_s), "--settle", "0")
        )
        try:
            wait_online(d, devices, 60)
            media = upload_tone(d, seconds)
            time.sleep(settle_s)  # let every speaker sync a few rounds and see its drift
            streams = []
            for _ in range(trials):
                b = broadcast_and_wait(d, media["id"], 60)
                streams.append(b["stream_id"])
                if progress is not None:
                    progress()
        finally:
            for s in sims:
                s.stop()
        events = [e for s in sims for e in read_log(s.log_path)]
    per_stream = chunk_spreads(events, set(streams))
    model = chunk_spreads(events, set(streams), MODEL)
    model_all = [x for s in streams for x in model.get(s, [])]
    all_spreads = [x for s in streams for x in per_stream.get(s, [])]
    starts = [per_stream[s][0] for s in streams if per_stream.get(s)]
    late = sum(1 for e in events if e.get("event") == "report" and e["frames_late"])
    p99s = [percentile(per_stream[s], 99) for s in streams if per_stream.get(s)]
    devs = deviations(events, set(streams))
    played = len(
        {e["device"] for e in events if e.get("event") == "play" and e["stream"] in set(streams)}
    )
    per_day = 86_400 / sync_interval_s * EXCHANGE_BYTES / 1e6
    report = Report(
        name="sync",
        title="Speakers in step (clock sync over MQTT)",
        command=f"loa bench sync --devices {devices} --trials {trials} --settle {settle_s:g} "
        f"--sync-interval {sync_interval_s:g}",
        figures=[
            Figure("devices", "simulated speakers that played", played, ""),
            Figure(
                "p50_spread_ms",
                "median spread of the true hand-over times per chunk",
                percentile(all_spreads, 50),
                "ms",
                [percentile(per_stream[s], 50) for s in streams if per_stream.get(s)],
            ),
            Figure(
                "p99_spread_ms", "p99 spread per chunk", percentile(all_spreads, 99), "ms", p99s
            ),
            Figure(
                "max_spread_ms",
                "largest spread",
                max(all_spreads, default=0.0),
                "ms",
                [max(per_stream[s]) for s in streams if per_stream.get(s)],
            ),
            Figure(
                "p99_spread_model_ms",
                "p99 spread of the modelled DAC times (no simulator wake-up jitter)",
                percentile(model_all, 99),
                "ms",
            ),
            Figure(
                "p99_abs_skew_ms",
                "p99 of abs(speaker − median of speakers), per chunk",
                percentile([abs(x) for x in devs], 99),
                "ms",
            ),
            Figure(
                "sync_mb_per_day", "clock-sync traffic per speaker", round(per_day, 1), "MB/day"
            ),
            Figure(
                "start_spread_ms",
                "spread of the first chunk (start)",
                percentile(starts, 50),
                "ms",
                starts,
            ),
        ],
        notes=[
            "Each speaker has a true clock offset uniform in ±500 ms, drift in ±100 ppm, and "
            "5–50 ms one-way delay per message (uniform jitter) in both directions.",
            f"{trials} broadcasts of a {seconds:g} s bulletin to all {devices} speakers, "
            f"{processes} simulator processes; spread = max − min over speakers of the true "
            "time each simulated speaker actually handed the chunk over (read from the "
            "simulator's true clock after its sleep, so Python's wake-up jitter is counted); "
            "p99_spread_model_ms is the same for the modelled DAC time (the local target "
            "converted to true time), which leaves that jitter out.",
            f"{len(all_spreads)} chunks measured (so the p99 spread is close to the largest); "
            f"reports with late frames: {late}.",
            f"Speakers exchanged clock-sync messages every {sync_interval_s:g} s for "
            f"{settle_s:g} s before the first broadcast (~{EXCHANGE_BYTES} bytes each). "
            "The shipped default is every 10 s (~3 MB/day per SIM); how long that takes to "
            "agree within 5 ms is `loa bench sync --converge`.",
        ],
    )
    report.series = {"deviation_ms": devs, "spread_ms": all_spreads}
    return report, all_spreads


#: The spread a neighbourhood must not hear as an echo (the convergence target).
CONVERGED_MS = 5.0


def converge(
    workdir: Path,
    *,
    devices: int = 20,
    budget_s: float = 3600.0,
    probe_every_s: float = 120.0,
    seconds: float = 6.0,
    processes: int = 2,
    progress: Any = None,
) -> Report:
    """Time from speakers coming online (first burst done) until a bulletin's p99 chunk
    spread is under ``CONVERGED_MS``, at the shipped sync interval (the simulator's
    default, every 10 s): a short bulletin is played every ``probe_every_s``."""
    specs = fleet(devices)
    ids = [(s.id, s.hamlet) for s in specs]
    points: list[tuple[float, float]] = []
    model: list[float] = []  # p99 spread of the modelled DAC times, per bulletin
    late_ms: list[float] = []  # hand-over − modelled DAC time, every chunk of every speaker
    converged: float | None = None
    with deployment(workdir, ids, stream={"lead_ms": 1500, "report_grace_s": 2.0}) as d:
        sims = start_sims(d, specs, processes, workdir)  # no --sync-interval: the default
        try:
            wait_online(d, devices, 60)
            media = upload_tone(d, seconds)
            t0 = time.monotonic()
            while True:
                b = broadcast_and_wait(d, media["id"], 60)
                elapsed = time.monotonic() - t0
                events = [e for s in sims for e in read_log(s.log_path)]
                sid = b["stream_id"]
                spreads = chunk_spreads(events, {sid}).get(sid, [])
                p99 = percentile(spreads, 99)
                points.append((round(elapsed, 1), round(p99, 2)))
                model.append(
                    round(percentile(chunk_spreads(events, {sid}, MODEL).get(sid, []), 99), 2)
                )
                late_ms += handover_late_ms(events, {sid})
                if progress is not None:
                    progress()
                if p99 < CONVERGED_MS:
                    converged = elapsed
                    break
                if elapsed + probe_every_s > budget_s:
                    break
                time.sleep(max(0.0, t0 + len(points) * probe_every_s - time.monotonic()))
        finally:
            for s in sims:
                s.stop()
    value = round(converged, 1) if converged is not None else float("nan")
    report = Report(
        name="sync-converge",
        title="Speakers in step at the shipped sync interval (convergence)",
        command=f"loa bench sync --converge --devices {devices} --budget {budget_s:g} "
        f"--probe-every {probe_every_s:g}",
        figures=[
            Figure(
                "converge_s_default_interval",
                f"online → p99 spread < {CONVERGED_MS:g} ms, shipped schedule (10 s interval)",
                value,
                "s",
            ),
            Figure("probes", "bulletins played to measure it", len(points), ""),
            Figure("first_p99_spread_ms", "p99 spread of the first bulletin", points[0][1], "ms"),
            Figure("last_p99_spread_ms", "p99 spread of the last bulletin", points[-1][1], "ms"),
        ],
        notes=[
            f"{devices} simulated speakers (offsets ±500 ms, drift ±100 ppm, 5–50 ms one-way "
            "delay with jitter), each syncing as shipped: a burst of 20 exchanges at start, "
            "one every 2 s for the next 5 minutes (settling), then one every 10 s. A "
            f"{seconds:g} s bulletin every {probe_every_s:g} s; spread "
            "= max − min of the true hand-over times per chunk.",
            "(elapsed s, p99 spread ms) per bulletin: "
            + ", ".join(f"({t:g}, {p:g})" for t, p in points),
            "Where the spread comes from: p99 spread of the modelled DAC times (each "
            "speaker's clock estimate alone, no simulator wake-up) per bulletin: "
            + ", ".join(f"{m:g}" for m in model)
            + "; the simulator's hand-over came after the modelled time by "
            f"p50 {percentile(late_ms, 50):.2f} / p99 {percentile(late_ms, 99):.2f} / "
            f"max {max(late_ms, default=0.0):.2f} ms (its sleep's wake-up).",
            "nan = not under the target within the budget"
            if converged is None
            else f"Converged after {len(points)} bulletins.",
        ],
    )
    return report
