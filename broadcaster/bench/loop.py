"""``loa bench loop``: does the controller's event loop stall under a busy moment?

Everything at once, on real parts: a bulletin streaming to speakers that report every
late frame, 200 logins (argon2), a 55-minute upload, monthly reports (commune HTML and
province), and a reconnect storm of thousands of speakers (their presence and
telemetry arriving together, and every retained config republished, as after a broker
restart). The controller's own lag monitor (``loa_event_loop_lag_seconds``: how late a
50 ms sleep wakes) is read over the whole busy window.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio.from_thread

from audio.settings import AudioSettings
from firmware_sim.spec import DeviceSpec
from loa.errors import LoaError

from .audio import _ffmpeg, speech_file
from .fleet import SIM_ARGS, late_fraction
from .ingest import loop_to
from .report import Figure, Report, percentile
from .setup import COMMUNE, deployment, start_sims, upload_tone, wait_online

LISTENERS = 20
LOGINS = 200
REPORT_ROUNDS = 3


def _specs(speakers: int) -> tuple[list[DeviceSpec], list[DeviceSpec]]:
    listeners = [
        DeviceSpec(id=f"nghe-{i:03d}", commune=COMMUNE, hamlet="ap-nghe") for i in range(LISTENERS)
    ]
    storm = [
        DeviceSpec(id=f"bao-{i:05d}", commune=COMMUNE, hamlet=f"h{i // 100:03d}")
        for i in range(speakers - LISTENERS)
    ]
    return listeners, storm


def trial(work: Path, speakers: int, long_file: Path, bulletin_s: float) -> dict[str, Any]:
    listeners, storm = _specs(speakers)
    devices = [(s.id, s.hamlet) for s in listeners + storm]
    password = "mật-khẩu-" + secrets.token_urlsafe(12)  # a fresh one each run
    with deployment(
        work,
        devices,
        security={"login_per_min": 10_000},
        stream={"report_grace_s": 5.0},
    ) as d:
        r = d.client.post(
            "/api/users",
            json={
                "username": "bench-user",
                "password": password,
                "roles": ["viewer"],
                "area": {"province": "bench"},
            },
        )
        if r.status_code != 201:
            raise LoaError(f"could not make the bench user: {r.text}")
        media = upload_tone(d, bulletin_s)
        sims = start_sims(d, listeners, 1, work / "listeners", SIM_ARGS)
        storm_sims = []
        job = {
            "url": d.url,
            "token": d.client.headers["Authorization"].removeprefix("Bearer "),
            "username": "bench-user",
            "password": password,
            "logins": LOGINS,
            "commune": COMMUNE,
            "province": "bench",
            "rounds": REPORT_ROUNDS,
            "upload": str(long_file),
            "media_id": media["id"],
            "target": {"commune": COMMUNE, "hamlet": "ap-nghe"},
        }
        users: subprocess.Popen[str] | None = None
        try:
            wait_online(d, LISTENERS, 60)
            s = d.controller.services
            s.loop_lag.reset_recent()
            t0 = time.monotonic()
            # The people (logins, upload, reports, the broadcast) in a process of their
            # own, as in production: their clients must not compete for our GIL.
            job_file = work / "people.json"
            job_file.write_text(json.dumps(job))
            users = subprocess.Popen(
                [sys.executable, "-m", "broadcaster.bench.loadgen", str(job_file)],
                stdout=subprocess.PIPE,
                text=True,
            )
            storm_sims = start_sims(d, storm, 2, work / "storm", SIM_ARGS)
            anyio.from_thread.run(s.facts.push_configs, token=s.alerts.loop_token)
            wait_online(d, speakers, 120 + speakers / 10)
            storm_s = time.monotonic() - t0
            out, _ = users.communicate(timeout=3600)
            window_s = time.monotonic() - t0
            load = os.getloadavg()[0]
            lag_ms = [x * 1000 for x in s.loop_lag.recent]
        finally:
            if users is not None and users.poll() is None:
                users.kill()
                users.wait()
            for p in sims + storm_sims:
                p.stop()
    try:
        done: dict[str, Any] = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    except ValueError:
        done = {"error": f"it printed no result: {out.strip()[-300:]!r}"}
    if "error" in done or "broadcast" not in done:
        why = done.get("error") or "no result"
        raise LoaError(f"the load generator failed (exit status {users.returncode}): {why}")
    b = done["broadcast"]
    late_frames = sum(x.get("frames_late") or 0 for x in b["deliveries"])
    return {
        "p50": percentile(lag_ms, 50),
        "p99": percentile(lag_ms, 99),
        "max": max(lag_ms) if lag_ms else float("nan"),
        "samples": len(lag_ms),
        "late_frames": late_frames,
        "late_fraction": late_fraction(b),
        "played": sum(1 for x in b["deliveries"] if x["outcome"] == "played"),
        "logins_s": done["logins"],
        "upload_s": done["upload"],
        "reports_s": done["reports"],
        "storm_s": storm_s,
        "window_s": window_s,
        "load": load,
        "broadcast": f"{b['status']}" + (f" ({b['error']})" if b.get("error") else ""),
    }


def run(
    work: Path, *, speakers: int, trials: int, upload_min: float = 55.0, progress: Any = None
) -> Report:
    settings = AudioSettings()
    speech = speech_file(work, 60.0, settings)
    base = work / "base64.mp3"
    _ffmpeg("-i", str(speech), "-ac", "1", "-c:a", "libmp3lame", "-b:a", "64k", str(base))
    long_file = loop_to(base, upload_min * 60, work / "long-upload.mp3")
    runs = []
    for i in range(trials):
        runs.append(trial(work / f"t{i}", speakers, long_file, 60.0))
        if progress:
            progress()

    def fig(key: str, label: str, field: str, unit: str, nd: int = 1) -> Figure:
        values = [round(r[field], nd) for r in runs]
        return Figure(key, label, sorted(values)[len(values) // 2], unit, values)

    return Report(
        name="loop",
        title="A loop that never stalls",
        command=f"loa bench loop --speakers {speakers} --trials {trials}"
        + (f" --upload-minutes {upload_min:g}" if upload_min != 55 else ""),
        figures=[
            fig("loop_lag_p99_ms_under_load", "event-loop lag under load, p99", "p99", "ms"),
            fig("loop_lag_p50_ms_under_load", "event-loop lag under load, median", "p50", "ms"),
            fig("loop_lag_max_ms_under_load", "event-loop lag under load, largest", "max", "ms"),
            fig(
                "late_frames_under_load",
                "late frames reported by the speakers",
                "late_frames",
                "",
                0,
            ),
            fig(
                "played_under_load",
                f"speakers (of {LISTENERS}) that played it all",
                "played",
                "",
                0,
            ),
            fig(
                "storm_online_s",
                f"{speakers} speakers online after the storm began",
                "storm_s",
                "s",
            ),
            fig("logins_s", f"{LOGINS} logins done", "logins_s", "s"),
            fig("upload_55min_s", f"{upload_min:g}-minute upload ingested", "upload_s", "s"),
            fig("reports_s", "3 × (commune HTML + province) monthly reports", "reports_s", "s"),
            fig("lag_samples", "lag samples in the window (one per 50 ms sleep)", "samples", "", 0),
            fig("load_average_1min", "machine load average at the end (2 cores)", "load", ""),
        ],
        notes=[
            f"At once: a {60:g} s bulletin to {LISTENERS} simulated speakers (one process) that "
            f"report late frames; {LOGINS} logins (16 at a time, argon2 hashing); a "
            f"{upload_min:g}-minute 64 kb/s MP3 upload (decode, loudness, three encodings); "
            f"3 rounds of the monthly reports; {speakers - LISTENERS} more speakers "
            "connecting at once (2 processes: presence, telemetry) while the controller "
            "republishes every retained config. The people (logins, upload, reports, the "
            "broadcast and its polling) are one more process, as browsers are: in the "
            "controller's process their HTTP clients would take its GIL.",
            "Lag = how much later than asked the controller's 50 ms monitor sleep woke, over "
            "the whole window until the last of these finished (the same figure /metrics "
            "exports as loa_event_loop_lag_seconds). Everything runs on this one machine, "
            "simulators included.",
            "The bulletin ended: " + "; ".join(r["broadcast"] for r in runs) + ".",
        ],
    )
