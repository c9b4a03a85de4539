"""The emergency path end to end with 100 simulated speakers in their own processes:
an alert for three hamlets pre-empts the programme on exactly those speakers, the
programme is recorded pre-empted there (and played elsewhere), and cancel stops the
alert everywhere at once."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from broadcaster.bench.harness import SimProcess
from broadcaster.places import demo_data
from broadcaster.store.store import Store
from firmware_sim.spec import DeviceSpec
from tests.conftest import Running, serve
from tests.test_alerts import FLOOD, act, create, targets, wait_alert
from tests.test_api import COMMUNE
from tests.test_dispatch import outcomes, start, upload
from tests.test_e2e import wait_online

pytestmark = pytest.mark.e2e

ALERTED = ("ap-1", "ap-2", "ap-3")


def hundred() -> list[DeviceSpec]:
    specs = []
    for hamlet, _ in demo_data.HAMLETS:
        for n in range(1, 12):
            specs.append(DeviceSpec(id=f"vt-{hamlet}-{n}", commune=COMMUNE, hamlet=hamlet))
    specs.append(DeviceSpec(id="vt-ap-1-12", commune=COMMUNE, hamlet="ap-1"))
    assert len(specs) == 100
    return specs


def plays(paths: list[Path]) -> list[dict[str, Any]]:
    out = []
    for p in paths:
        if p.exists():
            out += [json.loads(line) for line in p.read_text().splitlines()]
    return [e for e in out if e.get("event") == "play"]


async def test_alert_preempts_three_hamlets_of_100_speakers_and_cancel_stops_it(
    settings: Any, tmp_path: Path
) -> None:
    specs = hundred()
    store = Store(Path(settings.db.path))
    demo_data.seed(store)
    for s in specs:
        store.upsert_device(COMMUNE, s.id, s.hamlet)
    store.close()
    async with serve(settings, seed=False) as r:
        sims = [
            SimProcess(
                specs[i::2],
                host=settings.mqtt.host,
                port=settings.mqtt.port,
                pubkey_hex=r.services.signer.public_hex(),
                workdir=tmp_path,
                name=f"sim{i}",
                extra=("--telemetry-interval", "3600"),
            )
            for i in range(2)
        ]
        try:
            await wait_online(r, 100, timeout=60)
            alert = await create(r, {**FLOOD, "repeat": 3, "targets": targets(*ALERTED)})
            programme = await start(r, await upload(r, 10.0), [{"commune": COMMUNE}])
            await anyio.sleep(3.0)
            await act(r, alert["id"], "confirm")
            await anyio.sleep(4.0)
            cancelled_at = time.time_ns() // 1000
            await act(r, alert["id"], "cancel")
            done = await wait_alert(
                r, alert["id"], lambda a: all(b["status"] != "streaming" for b in a["broadcasts"])
            )
            b = await wait_programme(r, programme)
            done = await wait_alert(
                r,
                alert["id"],
                lambda a: all(
                    b["status"] not in ("streaming", "finishing") for b in a["broadcasts"]
                ),
            )
        finally:
            for s in sims:
                s.stop()
    alerted = {s.id for s in specs if s.hamlet in ALERTED}
    others = {s.id for s in specs} - alerted
    got = outcomes(b)
    assert {got[d] for d in alerted} == {"preempted"}
    assert {got[d] for d in others} == {"played"}
    board = {s["device_id"]: s for s in done["speakers"]}
    assert set(board) == alerted
    assert {s["state"] for s in board.values()} == {"partial"}  # stopped by the cancel
    assert all(h["delivered"] for h in done["hamlets"])
    alert_streams = {
        s["stream_id"]
        for x in done["broadcasts"]
        for s in (await_streams(settings, x["broadcast_id"]))
    }
    events = [e for e in plays([s.log_path for s in sims]) if e["stream"] in alert_streams]
    assert {e["device"] for e in events} == alerted  # nobody else heard the sirens
    # after the cancel, at most what was already in the speakers' buffers plays
    assert max(e["true_play_us"] for e in events) < cancelled_at + 1_500_000


async def wait_programme(r: Running, bid: str) -> dict[str, Any]:
    with anyio.fail_after(60):
        while True:
            b: dict[str, Any] = (await r.client.get(f"/api/broadcasts/{bid}")).json()["broadcast"]
            if b["status"] not in ("streaming", "finishing"):
                return b
            await anyio.sleep(0.3)


def await_streams(settings: Any, broadcast_id: str) -> list[dict[str, Any]]:
    store = Store(Path(settings.db.path))
    try:
        return store.query("SELECT stream_id FROM streams WHERE broadcast_id=?", [broadcast_id])
    finally:
        store.close()
