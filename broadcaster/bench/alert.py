"""``loa bench alert``: confirm → first siren frame arrived and played, per speaker.

For each fleet size a real broker and controller run with simulated speakers in their
own processes. An alert (siren, then a short spoken message) is created for the whole
commune, then confirmed; the time of the confirm request (this machine's clock) is
compared with the moment each speaker *received* the alert's first frame and the
moment it handed that frame to its DAC, both on the simulator's true clock (the same
machine clock: speakers here have no offset).

"Played" follows the presentation time the controller chose (confirm +
``stream.emergency_lead_ms``), so it mostly measures the setting; "arrived" measures
the system. The lead sweep then runs the largest fleet at several leads and finds the
smallest at which ≥ 99.9 % of speakers got the first frame in time and played it.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_sim.spec import DeviceSpec
from loa.errors import LoaError

from ..broadcasts.outcome import RUNNING
from .report import Figure, Report, percentile
from .setup import COMMUNE, Deployment, deployment, start_sims, wait_online

SIZES = (10, 100, 1000)
LEADS = (50, 100, 150, 250)
#: Share of speakers that must play the first frame on time for a lead to count.
ON_TIME_SHARE = 0.999
SIM_ARGS = ("--sync-interval", "0", "--first-sync", "0", "--telemetry-interval", "3600")


def _alert(d: Deployment) -> dict[str, Any]:
    r = d.client.post(
        f"/api/communes/{COMMUNE}/alerts",
        json={
            "type": "flood",
            "risk_level": 4,
            "message": "Thử nghiệm cảnh báo lũ. Đây là bản tin thử nghiệm.",
            "targets": [{"commune": COMMUNE}],
            "siren": "wail",
            "repeat": 1,
        },
    )
    if r.status_code != 201:
        raise LoaError(f"alert refused: {r.text}")
    alert: dict[str, Any] = r.json()["alert"]
    return alert


def _wait_done(d: Deployment, alert_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        a: dict[str, Any] = d.client.get(f"/api/alerts/{alert_id}").json()["alert"]
        if a["broadcasts"] and all(b["status"] not in RUNNING for b in a["broadcasts"]):
            return a
        time.sleep(0.25)
    raise LoaError("the alert did not finish in time")


def first_events(
    log_paths: list[Path], streams: set[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Per device, its first ``arrive`` event and its first ``play`` event of ``streams``."""
    arrive: dict[str, dict[str, Any]] = {}
    play: dict[str, dict[str, Any]] = {}
    for path in log_paths:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            e = json.loads(line)
            if e.get("stream") not in streams:
                continue
            if e.get("event") == "arrive":
                if e["device"] not in arrive or e["true_us"] < arrive[e["device"]]["true_us"]:
                    arrive[e["device"]] = e
            elif e.get("event") == "play":
                d = e["device"]
                if d not in play or e["true_play_us"] < play[d]["true_play_us"]:
                    play[d] = e
    return arrive, play


def first_plays(log_paths: list[Path], streams: set[str]) -> dict[str, int]:
    """Per device, the true time its first frame of ``streams`` was played (µs)."""
    return {d: int(e["true_play_us"]) for d, e in first_events(log_paths, streams)[1].items()}


def run_size(workdir: Path, size: int, trials: int, lead_ms: int | None = None) -> dict[str, Any]:
    specs = [
        DeviceSpec(id=f"a{size}-{i:05d}", commune=COMMUNE, hamlet=f"h{i // 100:03d}")
        for i in range(size)
    ]
    processes = 1 if size <= 100 else 2
    folder = workdir / f"n{size}-lead{lead_ms or 'default'}"
    stream: dict[str, Any] = {"report_grace_s": 3.0}
    if lead_ms is not None:
        stream["emergency_lead_ms"] = lead_ms
    confirms: list[tuple[int, set[str]]] = []
    with deployment(folder, [(s.id, s.hamlet) for s in specs], stream=stream) as d:
        lead = d.settings.stream.emergency_lead_ms
        sims = start_sims(d, specs, processes, folder, SIM_ARGS)
        try:
            wait_online(d, size, 60 + size / 20)
            time.sleep(1.0)
            for _ in range(trials):
                alert = _alert(d)  # rendered and encoded now, before the confirm
                t0 = time.time_ns() // 1000
                r = d.client.post(f"/api/alerts/{alert['id']}/confirm")
                if r.status_code != 202:
                    raise LoaError(f"confirm refused: {r.text}")
                done = _wait_done(d, alert["id"], 120)
                streams = {
                    s["stream_id"]
                    for b in done["broadcasts"]
                    for s in d.client.get(f"/api/broadcasts/{b['broadcast_id']}").json()[
                        "broadcast"
                    ]["streams"]
                }
                confirms.append((t0, streams))
                d.client.post(f"/api/alerts/{alert['id']}/cancel")
        finally:
            for s in sims:
                s.stop()
    latencies: list[float] = []
    arrivals: list[float] = []
    per_trial_p99: list[float] = []
    per_trial_arrival_p99: list[float] = []
    played: list[float] = []
    on_time: list[float] = []
    logs = [s.log_path for s in sims]
    for t0, streams in confirms:
        arrive, play = first_events(logs, streams)
        lat = [(e["true_play_us"] - t0) / 1000 for e in play.values()]
        arr = [(e["true_us"] - t0) / 1000 for e in arrive.values()]
        latencies += lat
        arrivals += arr
        played.append(len(play) / size)
        # on time: the first frame arrived before its presentation time and was played
        good = sum(
            1
            for dev, a in arrive.items()
            if not a["late"] and dev in play and play[dev]["seq"] == a["seq"]
        )
        on_time.append(good / size)
        if lat:
            per_trial_p99.append(percentile(lat, 99))
        if arr:
            per_trial_arrival_p99.append(percentile(arr, 99))
    return {
        "size": size,
        "lead_ms": lead,
        "latencies": latencies,
        "arrivals": arrivals,
        "p99_trials": per_trial_p99,
        "arrival_p99_trials": per_trial_arrival_p99,
        "played_fraction": statistics.median(played) if played else 0.0,
        "on_time": on_time,
    }


def run(
    workdir: Path,
    *,
    sizes: tuple[int, ...] = SIZES,
    leads: tuple[int, ...] = LEADS,
    trials: int = 3,
    progress: Callable[[], None] = lambda: None,
) -> Report:
    load = os.getloadavg()[0]  # other work on the same cores makes the figures worse
    results = []
    for size in sizes:
        results.append(run_size(workdir, size, trials))
        progress()
    big = results[-1]
    sweep = []
    for lead in leads:
        if lead == big["lead_ms"]:
            sweep.append(big)  # the default lead was just measured at this size
        else:
            sweep.append(run_size(workdir, big["size"], trials, lead))
        progress()
    figures: list[Figure] = []
    for r in results:
        lat = r["latencies"]
        n = r["size"]
        figures += [
            Figure(
                f"p50_ms_{n}",
                f"{n} speakers: confirm → first siren frame played, p50",
                round(percentile(lat, 50), 1),
                "ms",
            ),
            Figure(
                f"p99_ms_{n}",
                f"{n} speakers: p99",
                round(percentile(lat, 99), 1),
                "ms",
                [round(x, 1) for x in r["p99_trials"]],
            ),
            Figure(f"max_ms_{n}", f"{n} speakers: max", round(max(lat), 1) if lat else 0.0, "ms"),
            Figure(
                f"arrival_p99_ms_{n}",
                f"{n} speakers: confirm → first frame arrived, p99",
                round(percentile(r["arrivals"], 99), 1),
                "ms",
                [round(x, 1) for x in r["arrival_p99_trials"]],
            ),
            Figure(
                f"played_fraction_{n}",
                f"{n} speakers: share that played the alert",
                round(r["played_fraction"], 4),
                "",
            ),
        ]
    for r in sweep:
        lead = r["lead_ms"]
        figures += [
            Figure(
                f"on_time_share_lead_{lead}",
                f"lead {lead} ms, {r['size']} speakers: share that played the first frame on time",
                round(statistics.median(r["on_time"]), 4) if r["on_time"] else 0.0,
                "",
                [round(x, 4) for x in r["on_time"]],
            ),
            Figure(
                f"arrival_p99_ms_lead_{lead}",
                f"lead {lead} ms: first frame arrived, p99",
                round(percentile(r["arrivals"], 99), 1),
                "ms",
                [round(x, 1) for x in r["arrival_p99_trials"]],
            ),
            Figure(
                f"p99_ms_lead_{lead}",
                f"lead {lead} ms: first frame played, p99",
                round(percentile(r["latencies"], 99), 1),
                "ms",
                [round(x, 1) for x in r["p99_trials"]],
            ),
        ]
    good = [r["lead_ms"] for r in sweep if r["on_time"] and min(r["on_time"]) >= ON_TIME_SHARE]
    lat = big["latencies"]
    figures += [
        Figure("speakers", "largest fleet", big["size"], "speakers"),
        Figure("p50_ms", "largest fleet: p50", round(percentile(lat, 50), 1), "ms"),
        Figure(
            "p99_ms",
            "largest fleet: p99 (target < 300 ms)",
            round(percentile(lat, 99), 1),
            "ms",
            [round(x, 1) for x in big["p99_trials"]],
        ),
        Figure("max_ms", "largest fleet: max", round(max(lat), 1) if lat else 0.0, "ms"),
        Figure(
            "played_fraction",
            "largest fleet: share that played",
            round(big["played_fraction"], 4),
            "",
        ),
        Figure(
            "arrival_p50_ms",
            "largest fleet: confirm → first frame arrived, p50",
            round(percentile(big["arrivals"], 50), 1),
            "ms",
        ),
        Figure(
            "arrival_p99_ms",
            "largest fleet: confirm → first frame arrived, p99",
            round(percentile(big["arrivals"], 99), 1),
            "ms",
            [round(x, 1) for x in big["arrival_p99_trials"]],
        ),
        Figure(
            "min_lead_ms_all_on_time",
            f"smallest lead at which ≥ {ON_TIME_SHARE:.1%} of {big['size']} speakers played "
            "the first frame on time in every trial (-1: none of those tried)",
            min(good) if good else -1,
            "ms",
        ),
    ]
    report = Report(
        name="alert",
        title="Trigger to sound: emergency alert latency",
        command=f"loa bench alert --trials {trials} --sizes {','.join(map(str, sizes))}"
        f" --leads {','.join(map(str, leads))}",
        figures=figures,
        notes=[
            "Confirm time: just before `POST /api/alerts/{id}/confirm` (the alert was created "
            "and its audio encoded beforehand, as the two-step confirm allows). Arrived: the "
            "true time each simulated speaker received the alert's first audio frame. Played: "
            "the true time it handed that frame to its DAC.",
            f"Played is confirm + `stream.emergency_lead_ms` ({big['lead_ms']} ms by default) "
            "by design, so it shows the setting; arrived shows the system (HTTP, reading the "
            "pre-encoded audio, signing, one publish per group, the broker's fan-out, the "
            "speaker's MQTT client). The sweep runs the largest fleet at each lead: a first "
            "frame is on time when it arrived before its presentation time (the speaker's "
            "late tolerance included) and was played.",
            "Simulators run in 1 (≤ 100 speakers) or 2 processes on the same 2 cores as "
            "Mosquitto and the controller.",
            f"Load average when the run started: {load:.1f} (on 2 cores; anything above "
            f"{os.cpu_count() or 2} means other processes were competing for the CPU).",
        ],
    )
    report.series = {f"lat_{r['size']}": r["latencies"] for r in results}
    report.series.update({f"arr_{r['size']}": r["arrivals"] for r in results})
    return report
