"""A loop that never stalls: the lag monitor, readers off the loop, batched facts."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from broadcaster.looplag import BUCKETS, LoopLag
from broadcaster.places import demo_data
from broadcaster.store.store import Store
from loa.clock import SystemClock
from tests.conftest import Running


def test_lag_histogram_is_cumulative_and_keeps_the_worst() -> None:
    lag = LoopLag()
    for x in (0.0005, 0.003, 0.003, 0.2, 5.0):
        lag.record(x)
    buckets = dict(lag.cumulative())
    assert buckets[str(BUCKETS[0])] == 1  # ≤ 1 ms
    assert buckets["0.005"] == 3
    assert buckets["0.25"] == 4
    assert buckets["+Inf"] == 5 == lag.samples
    assert lag.max_s == 5.0 and list(lag.recent)[-1] == 5.0
    assert lag.total_s == pytest.approx(5.2065)


async def test_the_monitor_sees_a_blocked_loop() -> None:
    import time

    lag = LoopLag(interval_s=0.01)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lag.run, SystemClock())
        await anyio.sleep(0.05)
        time.sleep(0.3)  # the point: block the loop on purpose
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert lag.max_s >= 0.25


async def test_reads_run_in_a_thread_on_their_own_read_only_connection(tmp_path: Path) -> None:
    store = Store(tmp_path / "loa.db")
    try:
        demo_data.seed(store)
        loop_thread = threading.get_ident()

        def look(reader: Store, commune: str) -> tuple[int, int, Any]:
            assert reader is not store and reader.db.conn is not store.db.conn
            n = len(reader.devices(commune))
            with pytest.raises(sqlite3.OperationalError):
                reader.db.execute("DELETE FROM devices")
            return threading.get_ident(), n, reader

        (tid, n, first), (_, _, second) = (
            await store.read(look, demo_data.COMMUNE[0]),
            await store.read(look, demo_data.COMMUNE[0]),
        )
        assert tid != loop_thread and n == len(demo_data.fleet_specs())
        assert first is second  # pooled
        # A reader sees what the writer committed, not what it has not.
        with store.db.atomic():
            store.upsert_hamlet(demo_data.COMMUNE[0], "ap-moi", "Ấp Mới", 99)
            inside = await store.read(lambda r: {h["id"] for h in r.hamlets("vi-tan")})
        after = await store.read(lambda r: {h["id"] for h in r.hamlets("vi-tan")})
        assert "ap-moi" not in inside and "ap-moi" in after
    finally:
        store.close()
    assert first.db.conn is not None
    with pytest.raises(sqlite3.ProgrammingError):  # closed with the store
        first.db.execute("SELECT 1")


async def test_a_burst_of_presence_is_written_before_the_listeners_hear_of_it(
    running: Running,
) -> None:
    from devices.messages import Presence, dump

    s = running.services
    with anyio.fail_after(5):
        while s.facts.queued:
            await anyio.sleep(0.05)
    heard: list[tuple[str, bool]] = []

    def listener(commune: str, device: str) -> None:  # called after the commit
        row = s.store.query("SELECT online FROM devices WHERE id=?", [device])[0]
        heard.append((device, bool(row["online"])))

    s.facts.on_online.append(listener)
    ids = demo_data.device_ids("ap-3")
    before = s.store.db.conn.total_changes
    online = dump(Presence(state="online", fw="t", codecs=["opus"]))
    for d in ids:
        await s.router(f"loa/v1/vi-tan/dev/{d}/presence", online)
    with anyio.fail_after(5):
        while len(heard) < len(ids):
            await anyio.sleep(0.02)
    assert sorted(heard) == sorted((d, True) for d in ids)
    assert s.store.db.conn.total_changes > before


async def test_a_locked_store_delays_facts_but_never_stops_the_controller(
    tmp_path: Path, broker: Any
) -> None:
    from devices.messages import Presence, dump
    from tests.conftest import make_settings, serve

    settings = make_settings(tmp_path, broker, db={"busy_timeout_ms": 100})
    async with serve(settings) as r:
        s = r.services
        with anyio.fail_after(5):
            while s.facts.queued:
                await anyio.sleep(0.05)
        other = sqlite3.connect(settings.db.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        try:
            online = dump(Presence(state="online", fw="khoa", codecs=["opus"]))
            await s.router("loa/v1/vi-tan/dev/vt-ap-4-1/presence", online)
            with anyio.fail_after(5):  # the flush fails (locked) and keeps the message
                while s.facts.queued == 0:
                    await anyio.sleep(0.05)
        finally:
            other.execute("ROLLBACK")
            other.close()
        with anyio.fail_after(10):  # written at a later flush, the controller still up
            while s.facts.queued:
                await anyio.sleep(0.05)
        row = s.store.query("SELECT online, firmware FROM devices WHERE id='vt-ap-4-1'")[0]
        assert (row["online"], row["firmware"]) == (1, "khoa")
        assert (await r.client.get("/api/health")).status_code == 200
