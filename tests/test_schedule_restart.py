"""A controller killed with SIGKILL in the middle of its schedule, then restarted: no
firing is lost or doubled; the interrupted one is marked so, an old one missed, a
recent one played late — with real processes, a real broker and real SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from broadcaster.auth.accounts import service_token
from broadcaster.broker.process import Broker, free_port, start_broker
from broadcaster.places import demo_data
from broadcaster.settings import SecuritySettings
from broadcaster.store.store import Store
from loa.clock import SystemClock
from tests.conftest import wav
from tests.test_api import COMMUNE

pytestmark = pytest.mark.e2e
VN = ZoneInfo("Asia/Ho_Chi_Minh")


def controller(
    tmp: Path, broker: Broker, port: int, offset_s: float, **extra: object
) -> subprocess.Popen[bytes]:
    sets: dict[str, object] = {
        "db.path": tmp / "loa.db",
        "storage.media_dir": tmp / "media",
        "security.signing_key": tmp / "signing.key",
        "mqtt.host": broker.host,
        "mqtt.port": broker.port,
        "broker.mode": "external",
        "http.port": port,
        "scheduler.clock_offset_s": f"{offset_s:.3f}",
        "scheduler.grace_s": 30,
        "scheduler.tick_s": 0.5,
        "stream.report_grace_s": 0.5,
        **extra,
    }
    argv = [sys.executable, "-m", "broadcaster.cli", "serve"]
    for k, v in sets.items():
        argv += ["--set", f"{k}={v}"]
    return subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=(tmp / "controller.log").open("ab")
    )


def seeded(tmp: Path) -> str:
    """Seed Xã Vị Tân; returns an admin API token for the test's requests."""
    store = Store(tmp / "loa.db")
    try:
        demo_data.seed(store)
        return service_token(store, SystemClock(), "tests", SecuritySettings())
    finally:
        store.close()


def wait_up(url: str, token: str, timeout: float = 30) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"}
    client = httpx.Client(base_url=url, timeout=10, headers=headers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/api/health").status_code == 200:
                return client
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the controller did not come up")


def wait_for(fetch: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fetch()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("timed out")


def history(client: httpx.Client) -> dict[str, dict[str, Any]]:
    rows = client.get(f"/api/communes/{COMMUNE}/occurrences/history").json()["occurrences"]
    return {r["title"]: r for r in rows}


def approve_daily(client: httpx.Client, media: str, title: str, at_unix: float) -> None:
    at = datetime.fromtimestamp(at_unix, VN)
    p = client.post(
        f"/api/communes/{COMMUNE}/programmes",
        json={
            "title": title,
            "what": {"kind": "media", "media_id": media},
            "targets": [{"commune": COMMUNE}],
            "when": {"kind": "daily", "at": at.strftime("%H:%M")},
        },
    ).json()["programme"]
    client.post(f"/api/programmes/{p['id']}/submit")
    assert client.post(f"/api/programmes/{p['id']}/approve").status_code == 200


def test_sigkill_mid_schedule_then_restart(tmp_path: Path, broker: Broker) -> None:
    token = seeded(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    boundary = (int(time.time()) // 60 + 10) * 60  # a minute boundary, controller time
    # the controller starts 25 s before the boundary: time to upload and approve
    first = controller(tmp_path, broker, port, boundary - 25 - time.time())
    try:
        client = wait_up(url, token)
        up = client.post(f"/api/communes/{COMMUNE}/media", files={"file": ("tin.wav", wav(6.0))})
        assert up.status_code == 201, up.text
        media = up.json()["media"]["id"]
        for n, title in enumerate(("P1", "P2", "P3")):
            approve_daily(client, media, title, boundary + 60 * n)
        # P1 fires at the boundary and is playing...
        wait_for(lambda: history(client).get("P1", {}).get("status") == "started")
        time.sleep(1.0)
    finally:
        first.send_signal(signal.SIGKILL)  # ...when the controller dies, mid-programme
        first.wait(10)
    # Back 2 min 20 s later on the schedule: P2 (80 s ago) is past the 30 s grace,
    # P3 (20 s ago) is not.
    second = controller(tmp_path, broker, port, boundary + 140 - time.time())
    try:
        client = wait_up(url, token)
        done = wait_for(
            lambda: (
                (h := history(client)).get("P3", {}).get("status") not in (None, "started") and h
            ),
            timeout=40,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(15)
    assert done["P1"]["status"] == "interrupted"
    assert done["P2"]["status"] == "missed"
    assert done["P3"]["status"] == "skipped"  # played on time-ish, to no speaker at all
    assert 18_000 <= done["P3"]["late_ms"] <= 30_000
    store = Store(tmp_path / "loa.db")
    try:
        rows = store.query("SELECT status FROM occurrences ORDER BY fire_us")
        broadcasts = store.query("SELECT id, status FROM broadcasts ORDER BY created_us")
        # the upload made no broadcast; P1 and P3 made one each, nothing was replayed
        assert [b["status"] for b in broadcasts] == ["interrupted", "done"]
        assert len([r for r in rows if r["status"] != "scheduled"]) == 3
    finally:
        store.close()
    assert os.path.exists(tmp_path / "loa.db")


def test_broker_restarts_around_firings(tmp_path: Path) -> None:
    """The broker goes away across P1's time and comes back within the grace: P1 plays
    late, once, and the controller process never restarts. (An outage longer than the
    grace marks the firing missed: the fake-clock test
    ``test_a_broker_outage_at_fire_time_delays_within_grace_then_misses`` covers it
    without waiting a minute of wall time.)"""
    token = seeded(tmp_path)
    mqtt_port, port = free_port(), free_port()
    broker = start_broker("auto", port=mqtt_port)
    url = f"http://127.0.0.1:{port}"
    boundary = (int(time.time()) // 60 + 10) * 60
    start = time.time()
    offset = boundary - 14 - start  # the controller's clock: 14 s before P1

    def at(t: float) -> None:  # sleep until controller time boundary + t
        time.sleep(max(0.0, boundary + t - (time.time() + offset)))

    ctl = controller(
        tmp_path,
        broker,
        port,
        offset,
        **{"scheduler.grace_s": 8, "mqtt.backoff_max_s": 0.3, "mqtt.backoff_min_s": 0.1},
    )
    try:
        client = wait_up(url, token)
        up = client.post(f"/api/communes/{COMMUNE}/media", files={"file": ("tin.wav", wav(1.0))})
        assert up.status_code == 201, up.text
        media = up.json()["media"]["id"]
        approve_daily(client, media, "P1", boundary)
        at(-3)
        broker.stop()  # down across P1's time...
        at(4)
        broker = start_broker("auto", port=mqtt_port)  # ...back 4 s after it
        done = wait_for(
            lambda: (
                (h := history(client)).get("P1", {}).get("status") not in (None, "started") and h
            )
        )
    finally:
        ctl.send_signal(signal.SIGTERM)
        ctl.wait(15)
        broker.stop()
    assert done["P1"]["status"] == "skipped"  # played (to no speaker), late
    assert 3_500 <= done["P1"]["late_ms"] <= 8_000, done["P1"]
    store = Store(tmp_path / "loa.db")
    try:
        assert len(store.query("SELECT id FROM broadcasts")) == 1  # P1 once, not twice
        occ = store.query("SELECT status FROM occurrences WHERE status != 'scheduled'")
        assert len(occ) == 1
    finally:
        store.close()
