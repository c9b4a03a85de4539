"""Prefetch: a programme's audio is on the speakers before its time, so a link cut at
the time still plays it on time; a damaged download is refused and streamed instead."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from broadcaster import demo_data
from devices.items import pack_item, slices, unpack_item
from devices.messages import ItemOffer
from firmware_sim.cache import ItemCache
from loa.clock import SystemClock
from loa.errors import ProtocolError
from tests.conftest import Running, fleet_of, make_settings, serve
from tests.test_api import COMMUNE
from tests.test_dispatch import upload
from tests.test_e2e import wait_online
from tests.test_programmes_api import URL, VN, body, clock_before_minute, finished_firings

CUT, GOOD, BAD = "vt-ap-1-1", "vt-ap-1-2", "vt-ap-1-3"


async def rows(r: Running, sql: str, *args: Any) -> list[dict[str, Any]]:
    return r.services.store.query(sql, list(args))


async def wait_for(r: Running, sql: str, args: list[Any], n: int, timeout: float) -> None:
    with anyio.fail_after(timeout):
        while len(r.services.store.query(sql, args)) < n:
            await anyio.sleep(0.1)


async def test_a_cut_link_at_fire_time_still_plays_the_prefetched_item_on_time(
    tmp_path: Path, broker: Any
) -> None:
    clock, boundary = clock_before_minute(16)
    fire = datetime.fromtimestamp(boundary, VN)
    settings = make_settings(tmp_path, broker, scheduler={"tick_s": 0.5})
    specs = [s for s in demo_data.fleet_specs() if s.hamlet == "ap-1"]
    async with serve(settings, clock=clock) as r, fleet_of(r, specs) as fleet:
        fleet.speakers[BAD].cache.corrupt = True  # its download arrives damaged
        await wait_online(r, 3)
        await fleet.wait_synced(10)
        media_id = await upload(r, 2.0)
        once = body(media_id, kind="once", start=fire.date().isoformat(), at=fire.strftime("%H:%M"))
        once["targets"] = [{"commune": COMMUNE, "hamlet": "ap-1"}]
        once["volume"] = 40
        p = (await r.client.post(URL, json=once)).json()["programme"]
        await r.client.post(f"/api/programmes/{p['id']}/submit")
        await r.client.post(f"/api/programmes/{p['id']}/approve")
        arms = "SELECT * FROM play_arms"
        await wait_for(r, arms, [], 3, 10)
        states = {a["device_id"]: a["state"] for a in await rows(r, arms)}
        assert states == {CUT: "armed", GOOD: "armed", BAD: "missing"}
        items = await rows(r, "SELECT device_id, state, detail FROM device_items")
        assert {i["device_id"]: i["state"] for i in items} == {
            CUT: "stored",
            GOOD: "stored",
            BAD: "refused",
        }
        assert "SHA-256" in next(i["detail"] for i in items if i["device_id"] == BAD)
        (pre,) = await rows(r, "SELECT * FROM prefetches")
        assert pre["fire_us"] == boundary * 1_000_000

        fleet.speakers[CUT].cut_link()  # the 4G link dies before the programme's time
        with anyio.fail_after(30):
            while not fleet.log.of("report", device=CUT):
                await anyio.sleep(0.1)
        fleet.speakers[CUT].restore_link()
        done = await finished_firings(r, 30)
        b = (await r.client.get(f"/api/broadcasts/{pre['broadcast_id']}")).json()["broadcast"]
        cut_plays = fleet.log.of("play", device=CUT, stream=pre["stream_id"])
    assert done[0]["status"] == "played", done[0]
    by_device = {d["device_id"]: d for d in b["deliveries"]}
    assert {d: x["outcome"] for d, x in by_device.items()} == dict.fromkeys(
        (CUT, GOOD, BAD), "played"
    )
    assert by_device[CUT]["source"] == by_device[GOOD]["source"] == "cache"
    assert by_device[BAD]["source"] == "stream"  # the damaged item was streamed instead
    # On time: the cut speaker's first chunk sounded at the PLAY's time (its clock was
    # synced before the cut), and its proof of play says so.
    assert cut_plays and cut_plays[0]["seq"] == 1
    skew = clock.now_us() - SystemClock().now_us()  # the controller runs ahead
    assert abs(cut_plays[0]["true_play_us"] + skew - pre["at_us"]) < 50_000
    assert by_device[CUT]["started_us"] == pre["at_us"]
    assert {e["volume"] for e in cut_plays} == {40}


def offer(data: bytes, **kw: Any) -> ItemOffer:
    import hashlib

    fields: dict[str, Any] = {
        "item": "6f1c1c2e-0000-4000-8000-000000000001",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "slices": len(slices(data)),
        "codec": "opus",
        "sample_rate": 48000,
        "channels": 1,
        "frame_ms": 20,
        "chunks": len(unpack_item(data)),
        "duration_ms": 1000,
    }
    return ItemOffer(**{**fields, **kw})


ITEM = pack_item([bytes([3]) + b"abc", bytes(70_000)])  # 3 slices


def fill(cache: ItemCache, o: ItemOffer, data: bytes, order: list[int] | None = None) -> Any:
    assert cache.offer(o) is None
    parts = slices(data)
    report = None
    for i in order or list(range(1, len(parts) + 1)):
        report = cache.slice(o.item, i, parts[i - 1])
    return report


def test_cache_keeps_a_verified_item_and_refuses_damaged_or_gapped_ones() -> None:
    cache = ItemCache(1 << 20, 4)
    assert fill(cache, offer(ITEM), ITEM).state == "stored"
    assert cache.get(offer(ITEM).item, offer(ITEM).sha256) is not None
    again = cache.offer(offer(ITEM))
    assert again is not None and again.detail == "already cached"

    wrong_hash = offer(ITEM, item="6f1c1c2e-0000-4000-8000-000000000002", sha256="0" * 64)
    assert "SHA-256" in fill(cache, wrong_hash, ITEM).detail
    gap = offer(ITEM, item="6f1c1c2e-0000-4000-8000-000000000003")
    assert "slice 2 lost" in fill(cache, gap, ITEM, [1, 3]).detail
    big = offer(ITEM, item="6f1c1c2e-0000-4000-8000-000000000004", size=2 << 20)
    refused = cache.offer(big)
    assert refused is not None and "larger than the cache" in refused.detail
    assert list(cache.items) == [offer(ITEM).item]


def test_cache_is_bounded_and_never_drops_an_armed_item() -> None:
    cache = ItemCache(200_000, 2)
    ids = [f"6f1c1c2e-0000-4000-8000-00000000001{i}" for i in range(4)]
    fill(cache, offer(ITEM, item=ids[0]), ITEM)
    cache.pin(ids[0])  # armed: must stay
    for i in ids[1:]:
        fill(cache, offer(ITEM, item=i), ITEM)
    assert ids[0] in cache.items and len(cache.items) == 2 and cache.evicted == 2
    cache.unpin(ids[0])
    fill(cache, offer(ITEM, item=ids[1]), ITEM)
    assert ids[0] not in cache.items


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"\x00\x00", "inside a length"), (b"\x00\x00\x00\x05ab", "inside a chunk")],
)
def test_broken_item_framing_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        unpack_item(data)


async def test_thousands_back_at_once_are_rechecked_in_one_read_per_commune(
    tmp_path: Path,
) -> None:
    """After a broker restart every speaker comes back: the pushed PLAY goes again to
    exactly those whose topics it was pushed to, and the speakers are read once per
    commune, not once per speaker (that was 3,000 × 3,000 rows on the event loop)."""
    from broadcaster.prefetch import Prefetcher
    from broadcaster.settings import StreamSettings
    from broadcaster.store import Store
    from devices.frames import Frame
    from devices.topics import Group, GroupKind
    from loa.clock import FakeClock

    store = Store(tmp_path / "loa.db")
    clock = FakeClock()
    try:
        store.upsert_province("p", "Tỉnh")
        store.upsert_commune("xa", "p", "Xã Vị Tân", "Asia/Ho_Chi_Minh")
        for h in ("ap-1", "ap-2"):
            store.upsert_hamlet("xa", h, h)
        ids = [f"vt-{i:04d}" for i in range(1500)]
        with store.db.conn:
            for i, d in enumerate(ids):
                store.upsert_device("xa", d, "ap-1" if i % 3 == 0 else "ap-2")
        store.db.table("programmes").insert(
            {
                "id": "prog",
                "commune_id": "xa",
                "media_id": "m",
                "priority": "normal",
                "title": "Tin sáng",
                "volume": 0,
            }
        )
        ap1 = Group("xa", GroupKind.HAMLET, "ap-1").topic_for("opus")
        store.db.table("prefetches").insert(
            {
                "programme_id": "prog",
                "fire_us": clock.now_us() + 600_000_000,
                "broadcast_id": "00000000-0000-4000-8000-00000000000b",
                "stream_id": "00000000-0000-4000-8000-000000000001",
                "item_id": "00000000-0000-4000-8000-00000000000c",
                "sha256": "0" * 64,
                "at_us": clock.now_us() + 600_000_000,
                "end_us": clock.now_us() + 660_000_000,
                "chunks": 1,
                "groups": json.dumps([ap1]),
                "pushed_us": clock.now_us(),
                "cancelled_us": None,
            }
        )
        sent: list[str] = []

        async def send(topics: list[str], frame: Frame) -> None:
            sent.extend(topics)

        p = Prefetcher(store, send, clock, StreamSettings())
        reads = 0
        devices = store.devices

        def counted(commune: str) -> Any:
            nonlocal reads
            reads += 1
            return devices(commune)

        store.devices = counted  # type: ignore[method-assign]
        for d in ids:
            p.speaker_online("xa", d)
        assert await p.repair() == 500
        own = {Group("xa", GroupKind.DEVICE, d).topic_for("opus") for d in ids[::3]}
        assert sorted(sent) == sorted(own)
        assert reads == 1
        assert await p.repair() == 0  # each came back once: asked once
    finally:
        store.close()
