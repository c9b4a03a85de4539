"""A speaker restarts (``loa sim`` killed and started again) after it armed a prefetched
firing (issue 18, item 6): its presence makes the controller re-check its cache, the
PLAY is offered again, the speaker answers ``missing`` and gets the item again in time,
so it plays at the firing like the others. Before, the controller believed the cache
and streamed to nobody."""

from __future__ import annotations

import signal
import time
from datetime import datetime
from pathlib import Path

import anyio
import pytest

from broadcaster.broker.process import Broker
from broadcaster.places import demo_data
from loa.clock import SkewedClock, SystemClock
from tests.conftest import make_settings, serve, wav
from tests.faults import COMMUNE, final, sim_process, stop, upload, wait_online
from tests.test_schedule_restart import VN

pytestmark = pytest.mark.e2e
AP1 = demo_data.device_ids("ap-1")


async def test_a_restarted_speaker_gets_its_firing_again(tmp_path: Path, broker: Broker) -> None:
    boundary = (int(time.time()) // 60 + 10) * 60
    offset = boundary - 35 - time.time()  # the controller's clock: 35 s before P1
    clock = SkewedClock(SystemClock(), offset_s=offset)
    settings = make_settings(tmp_path, broker, scheduler={"tick_s": 0.5})
    specs = [s for s in demo_data.fleet_specs() if s.hamlet == "ap-1"]
    async with serve(settings, clock=clock) as r:
        pubkey = r.services.signer.public_hex()
        sim = sim_process(tmp_path, broker.host, broker.port, pubkey, specs)
        try:
            await wait_online(r, AP1)
            media = await upload(r, wav(1.0))
            p = await r.client.post(
                f"/api/communes/{COMMUNE}/programmes",
                json={
                    "title": "P1",
                    "what": {"kind": "media", "media_id": media},
                    "targets": [{"commune": COMMUNE, "hamlet": "ap-1"}],
                    "when": {
                        "kind": "daily",
                        "at": datetime.fromtimestamp(boundary, VN).strftime("%H:%M"),
                    },
                },
            )
            assert p.status_code == 201, p.text
            pid = p.json()["programme"]["id"]
            await r.client.post(f"/api/programmes/{pid}/submit")
            assert (await r.client.post(f"/api/programmes/{pid}/approve")).status_code == 200
            store = r.services.store

            def arms() -> dict[str, str]:
                return {
                    row["device_id"]: row["state"]
                    for row in store.query("SELECT device_id, state FROM play_arms")
                }

            with anyio.fail_after(20):
                while set(arms().values()) != {"armed"} or len(arms()) != len(AP1):
                    await anyio.sleep(0.2)
            sim.send_signal(signal.SIGKILL)  # the speakers lose power: caches gone
            sim.wait(10)
            before = r.services.dispatcher.ledger.store.query(
                "SELECT count(*) AS n FROM device_items"
            )[0]["n"]
            assert before > 0
            sim = sim_process(tmp_path, broker.host, broker.port, pubkey, specs)
            await wait_online(r, AP1)
            with anyio.fail_after(20):  # offered again: missing, then stored and armed
                while r.services.programmes.prefetcher.repushes < 2 * len(AP1) or set(
                    arms().values()
                ) != {"armed"}:
                    await anyio.sleep(0.2)
            with anyio.fail_after(40):
                while True:
                    h = (await r.client.get(f"/api/communes/{COMMUNE}/occurrences/history")).json()[
                        "occurrences"
                    ]
                    if h and h[0]["broadcast_id"]:
                        break
                    await anyio.sleep(0.3)
            b = await final(r, h[0]["broadcast_id"], timeout=30)
            got = {d["device_id"]: (d["outcome"], d["source"]) for d in b["deliveries"]}
            assert got == {d: ("played", "cache") for d in AP1}, got
            assert b["status"] == "done"
        finally:
            stop(sim)
