"""Programmes start at their minute, on the real clock with the default tick.

The periodic tick (``scheduler.tick_s``, 15 s by default) only reconciles; the alarm at
the next firing is what starts a programme on time. These tests keep the default tick,
so a firing that waited for the tick would be seconds late and fail.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from broadcaster.places import demo_data
from broadcaster.settings import SchedulerSettings
from broadcaster.store.store import Store
from firmware_sim.spec import DeviceSpec
from tests.conftest import Running, fleet_of, make_settings, serve, wav
from tests.test_dispatch import start, upload
from tests.test_e2e import wait_online
from tests.test_programmes_api import VN, clock_before_minute

COMMUNE = demo_data.COMMUNE[0]
PROVINCE = demo_data.PROVINCE[0]
OTHERS = [f"xa-{n}" for n in range(1, 10)]  # nine more communes: ten in all


async def programme(r: Running, commune: str, media_id: str, hamlet: str, fire: datetime) -> str:
    resp = await r.client.post(
        f"/api/communes/{commune}/programmes",
        json={
            "title": f"Bản tin {commune} {hamlet}",
            "what": {"kind": "media", "media_id": media_id},
            "targets": [{"commune": commune, "hamlet": hamlet}],
            "when": {
                "kind": "once",
                "start": fire.date().isoformat(),
                "at": fire.strftime("%H:%M"),
            },
        },
    )
    assert resp.status_code == 201, resp.text
    pid: str = resp.json()["programme"]["id"]
    for action in ("submit", "approve"):
        done = await r.client.post(f"/api/programmes/{pid}/{action}")
        assert done.status_code == 200, done.text
    return pid


async def started(r: Running, communes: list[str], count: int, timeout: float) -> list[Any]:
    """Wait until ``count`` firings across ``communes`` have left 'scheduled'."""
    with anyio.fail_after(timeout):
        while True:
            rows: list[Any] = []
            for c in communes:
                hist = (await r.client.get(f"/api/communes/{c}/occurrences/history")).json()
                rows += hist["occurrences"]
            if len(rows) >= count:
                return rows
            await anyio.sleep(0.2)


async def keep_busy(r: Running, stop: anyio.Event) -> int:
    """Monthly reports, one after another, until told to stop; returns how many ran."""
    n = 0
    while not stop.is_set():
        resp = await r.client.get(f"/api/provinces/{PROVINCE}/report")
        assert resp.status_code == 200, resp.text
        n += 1
    return n


def test_the_default_tick_is_long() -> None:
    """These tests mean something only if the tick alone would start them late."""
    assert SchedulerSettings().tick_s >= 10


async def test_a_programme_starts_at_its_minute_while_a_stream_and_a_report_run(
    tmp_path: Path, broker: Any
) -> None:
    clock, boundary = clock_before_minute(45)  # room for a slow set-up on a busy machine
    fire = datetime.fromtimestamp(boundary, VN)
    settings = make_settings(tmp_path, broker)  # the default tick_s
    assert settings.scheduler.tick_s == SchedulerSettings().tick_s
    specs = [s for s in demo_data.fleet_specs() if s.hamlet in ("ap-1", "ap-2")]
    async with serve(settings, clock=clock) as r, fleet_of(r, specs) as fleet:
        await wait_online(r, 6)
        short = await upload(r, 1.0)
        long = await upload(r, 40.0)
        await programme(r, COMMUNE, short, "ap-1", fire)
        assert clock.now_us() < boundary * 1_000_000 - 2_000_000, "set-up took too long"
        stream = await start(r, long, [{"commune": COMMUNE, "hamlet": "ap-2"}])
        stop = anyio.Event()
        reports = 0

        async def busy() -> None:
            nonlocal reports
            reports = await keep_busy(r, stop)

        async with anyio.create_task_group() as tg:
            tg.start_soon(busy)
            (occ,) = await started(r, [COMMUNE], 1, 90)
            stop.set()
        b = (await r.client.get(f"/api/broadcasts/{stream}")).json()["broadcast"]
        assert b["status"] in ("streaming", "finishing"), "the other stream kept running"
        with anyio.fail_after(20):
            while not {d for d in demo_data.device_ids("ap-1")} <= {
                e["device"] for e in fleet.log.of("play")
            }:
                await anyio.sleep(0.2)
    assert reports >= 1
    assert occ["fire_us"] == boundary * 1_000_000
    late_us = occ["started_us"] - occ["fire_us"]
    assert 0 <= late_us < 1_000_000, f"started {late_us / 1e6:.2f} s after its minute"


async def test_twenty_programmes_in_one_minute_across_ten_communes(
    tmp_path: Path, broker: Any
) -> None:
    store = Store(Path(make_settings(tmp_path, broker).db.path))
    demo_data.seed(store)
    for c in OTHERS:
        store.upsert_commune(c, PROVINCE, f"Xã {c}", "Asia/Ho_Chi_Minh")
        for h in ("ap-a", "ap-b"):
            store.upsert_hamlet(c, h, h.upper())
            store.upsert_device(c, f"{c}-{h}-1", h)
    store.close()
    clock, boundary = clock_before_minute(70)  # room for a slow set-up on a busy machine
    fire = datetime.fromtimestamp(boundary, VN)
    settings = make_settings(tmp_path, broker)
    specs = [
        *[s for s in demo_data.fleet_specs() if s.hamlet in ("ap-1", "ap-2")],
        *[
            DeviceSpec(id=f"{c}-{h}-1", commune=c, hamlet=h)
            for c in OTHERS
            for h in ("ap-a", "ap-b")
        ],
    ]
    async with serve(settings, seed=False, clock=clock) as r, fleet_of(r, specs):
        await wait_online(r, 6)
        up = await r.client.post(
            f"/api/provinces/{PROVINCE}/media",
            files={"file": ("tinh.wav", wav(1.0), "audio/wav")},
        )
        assert up.status_code == 201, up.text
        media = up.json()["media"]["id"]
        for c in OTHERS:
            for h in ("ap-a", "ap-b"):
                await programme(r, c, media, h, fire)
        for h in ("ap-1", "ap-2"):
            await programme(r, COMMUNE, media, h, fire)
        assert clock.now_us() < boundary * 1_000_000 - 2_000_000, "set-up took too long"
        rows = await started(r, [COMMUNE, *OTHERS], 20, 120)
    assert len(rows) == 20
    assert {o["fire_us"] for o in rows} == {boundary * 1_000_000}
    late = sorted((o["started_us"] - o["fire_us"]) / 1e6 for o in rows)
    assert late[0] >= 0 and late[-1] < 1.0, f"lateness (s): {late}"
