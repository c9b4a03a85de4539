"""The controller's clock steps by ±60 s and ±1 h while it runs (issue 18, item 5):
speakers in ``loa sim`` (their own process, clock sync every 10 s as shipped) notice
the TIME answers no longer fit their model, drop it, re-sync, and a broadcast started
as soon as they all noticed (within 30 s of each step) plays on every speaker. Before,
the offset model kept the old minima for ten minutes and every frame was refused as
outside the replay window."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from audio.tones import to_wav, tone
from broadcaster import demo_data
from broadcaster.broker import Broker
from firmware_sim.playlog import read_log
from loa.clock import SkewedClock, SystemClock
from tests.conftest import make_settings, serve
from tests.faults import final, sim_process, start, stop, upload, wait_online

pytestmark = pytest.mark.e2e
AP1 = demo_data.device_ids("ap-1")


async def test_speakers_follow_a_stepped_controller_clock(tmp_path: Path, broker: Broker) -> None:
    clock = SkewedClock(SystemClock())
    settings = make_settings(tmp_path, broker)
    specs = [s for s in demo_data.fleet_specs() if s.hamlet == "ap-1"]
    async with serve(settings, clock=clock) as r:
        sim = sim_process(tmp_path, broker.host, broker.port, r.services.signer.public_hex(), specs)
        try:
            await wait_online(r, AP1)
            media = await upload(r, to_wav(tone(2.0, 550.0)))
            await anyio.sleep(3)  # the first sync burst
            for step_s in (60.0, -60.0, 3600.0, -3600.0):
                stepped = time.time_ns() // 1000
                clock.step(step_s)
                found: list[int] = []
                with anyio.move_on_after(30):  # every speaker notices within 30 s …
                    while len(found) < len(AP1):
                        await anyio.sleep(0.5)
                        found = [
                            e["true_us"]
                            for e in read_log(tmp_path / "plays.jsonl")
                            if e["event"] == "clock_step" and e.get("true_us", 0) > stepped
                        ]
                await anyio.sleep(2)  # … and re-syncs in its burst
                b = await final(r, await start(r, media, "ap-1"), timeout=30)
                got = {d["device_id"]: d["outcome"] for d in b["deliveries"]}
                assert b["status"] == "done", (step_s, b["error"], got)
                assert set(got.values()) == {"played"}, (step_s, got)
                print(
                    f"\nMEASURED step {step_s:+.0f} s: found by {len(found)} speakers,"
                    f" {(max(found, default=stepped) - stepped) / 1e6:.1f} s after it"
                )
            assert sim.poll() is None
            steps = [e for e in read_log(tmp_path / "plays.jsonl") if e["event"] == "clock_step"]
            assert {e["device"] for e in steps} == set(AP1)
            assert len(steps) == 4 * len(AP1), steps
        finally:
            stop(sim)
