"""Programmes over HTTP: impossible schedules refused with their message and nothing
saved; approval before airing; the calendar; a programme that really fires and plays."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import pytest

from broadcaster.places import demo_data
from loa.clock import SkewedClock, SystemClock
from tests.conftest import Running, ffmpeg_make, fleet_of, make_settings, serve
from tests.test_api import COMMUNE, assert_error
from tests.test_dispatch import outcomes, upload
from tests.test_e2e import wait_online

VN = ZoneInfo("Asia/Ho_Chi_Minh")
URL = f"/api/communes/{COMMUNE}/programmes"


def clock_before_minute(seconds: float) -> tuple[SkewedClock, int]:
    """A controller clock ``seconds`` before a minute boundary, and that boundary (s)."""
    now = time.time()
    boundary = (int(now) // 60 + 1) * 60
    if boundary - now < seconds + 1:
        boundary += 60
    return SkewedClock(SystemClock(), offset_s=boundary - seconds - now), boundary


def body(media_id: str, **when: Any) -> dict[str, Any]:
    return {
        "title": "Bản tin sáng",
        "what": {"kind": "media", "media_id": media_id},
        "targets": [{"commune": COMMUNE}],
        "when": {"kind": "daily", "at": "06:00", **when},
    }


async def finished_firings(r: Running, timeout: float) -> list[dict[str, Any]]:
    """Wait for the history to show at least one firing that has finished."""
    with anyio.fail_after(timeout):
        while True:
            hist = (await r.client.get(f"/api/communes/{COMMUNE}/occurrences/history")).json()
            done = [o for o in hist["occurrences"] if o["status"] != "started"]
            if done:
                return done
            await anyio.sleep(0.3)


async def nothing_saved(r: Running) -> None:
    listed = (await r.client.get(URL)).json()["programmes"]
    assert listed == []


@pytest.mark.parametrize(
    ("when", "field", "message"),
    [
        ({"at": "25:00"}, "when.at", "HH:MM"),
        ({"timezone": "Asia/Sai_Gon"}, "when.timezone", "unknown time zone"),
        ({"kind": "once", "start": "2027-02-30"}, "when.start", "not a real date"),
        ({"start": "2027-03-01", "end": "2027-02-01"}, "when.end", "end date is before"),
        ({"kind": "weekly", "weekdays": []}, "when.weekdays", "weekdays"),
        ({"kind": "yearly"}, "when.kind", "Input should be"),
        ({"kind": "once"}, "when.start", "needs its date"),
    ],
)
async def test_impossible_schedules_are_refused(
    running: Running, when: dict[str, Any], field: str, message: str
) -> None:
    media_id = await upload(running, 0.5)
    resp = await running.client.post(URL, json=body(media_id, **when))
    err = assert_error(resp, 400, "invalid_input")
    assert (
        err["errors"][0]["field"] == field and message in err["errors"][0]["message"] + err["error"]
    )
    await nothing_saved(running)


async def test_unknown_targets_and_missing_media_are_refused(running: Running) -> None:
    media_id = await upload(running, 0.5)
    bad = body(media_id)
    bad["targets"] = [{"commune": COMMUNE, "hamlet": "ap-99"}]
    assert_error(await running.client.post(URL, json=bad), 400, "invalid_input")
    missing = body("00000000-0000-4000-8000-000000000000")
    assert_error(await running.client.post(URL, json=missing), 404, "not_found")
    await nothing_saved(running)


async def test_approval_calendar_and_conflicts(running: Running) -> None:
    media_id = await upload(running, 0.5)
    resp = await running.client.post(URL, json=body(media_id))
    assert resp.status_code == 201, resp.text
    p = resp.json()["programme"]
    assert p["status"] == "draft" and resp.json()["conflicts"] == []
    cal = (await running.client.get(f"/api/communes/{COMMUNE}/occurrences")).json()
    assert len(cal["occurrences"]) == 7
    assert {o["status"] for o in cal["occurrences"]} == {"not draft"}
    for action in ("submit", "approve"):
        r = await running.client.post(f"/api/programmes/{p['id']}/{action}")
        assert r.status_code == 200, r.text
    cal = (await running.client.get(f"/api/communes/{COMMUNE}/occurrences")).json()
    assert {o["status"] for o in cal["occurrences"]} == {"scheduled"}
    for o in cal["occurrences"]:
        local = datetime.fromtimestamp(o["fire_us"] / 1e6, VN)
        assert (local.hour, local.minute) == (6, 0)
    clash = body(media_id, at="06:00")
    clash["targets"] = [{"commune": COMMUNE, "hamlet": "ap-1"}]
    second = (await running.client.post(URL, json=clash)).json()
    assert second["conflicts"][0]["programme_id"] == p["id"]
    assert second["conflicts"][0]["speakers"] == 3
    bad_range = await running.client.get(
        f"/api/communes/{COMMUNE}/occurrences", params={"from": "yesterday"}
    )
    assert_error(bad_range, 400, "invalid_input", fields=["from"])
    assert_error(await running.client.post(f"/api/programmes/{p['id']}/approve"), 409)
    assert_error(await running.client.post(f"/api/programmes/{p['id']}/return"), 400)


async def test_an_approved_programme_fires_and_plays_on_time(tmp_path: Path, broker: Any) -> None:
    """The controller's clock is set 8 s before a minute boundary; a one-off programme
    at that minute fires then, and the speakers' proof of play lands in the history."""
    clock, boundary = clock_before_minute(8)
    fire = datetime.fromtimestamp(boundary, VN)
    settings = make_settings(tmp_path, broker, scheduler={"tick_s": 0.5})
    specs = [s for s in demo_data.fleet_specs() if s.hamlet == "ap-1"]
    async with serve(settings, clock=clock) as r, fleet_of(r, specs):
        await wait_online(r, 3)
        media_id = await upload(r, 1.0)
        once = body(media_id, kind="once", start=fire.date().isoformat(), at=fire.strftime("%H:%M"))
        once["targets"] = [{"commune": COMMUNE, "hamlet": "ap-1"}]
        p = (await r.client.post(URL, json=once)).json()["programme"]
        await r.client.post(f"/api/programmes/{p['id']}/submit")
        await r.client.post(f"/api/programmes/{p['id']}/approve")
        done = await finished_firings(r, 40)
        occ = done[0]
        b = (await r.client.get(f"/api/broadcasts/{occ['broadcast_id']}")).json()["broadcast"]
    assert occ["status"] == "played", occ
    assert occ["fire_us"] == boundary * 1_000_000
    assert 0 <= occ["started_us"] - occ["fire_us"] < 1_000_000  # started within a second
    assert set(outcomes(b).values()) == {"played"}
    assert timedelta(0) <= timedelta(microseconds=occ["late_ms"] * 1000) < timedelta(seconds=1)


async def test_a_province_bulletin_airs_in_two_communes_on_their_own_schedules(
    tmp_path: Path, broker: Any
) -> None:
    from broadcaster.store.store import Store
    from firmware_sim.spec import DeviceSpec

    store = Store(Path(make_settings(tmp_path, broker).db.path))
    demo_data.seed(store)
    store.upsert_commune("vi-thanh", demo_data.PROVINCE[0], "Xã Vị Thanh", "Asia/Ho_Chi_Minh")
    store.upsert_hamlet("vi-thanh", "ap-a", "Ấp A", 0)
    store.upsert_device("vi-thanh", "vth-a-1", "ap-a")
    store.close()
    clock, boundary = clock_before_minute(10)
    fire = datetime.fromtimestamp(boundary, VN)
    settings = make_settings(tmp_path, broker, scheduler={"tick_s": 0.5})
    specs = [
        *[s for s in demo_data.fleet_specs() if s.hamlet == "ap-1"],
        DeviceSpec(id="vth-a-1", commune="vi-thanh", hamlet="ap-a"),
    ]
    async with serve(settings, seed=False, clock=clock) as r, fleet_of(r, specs) as fleet:
        await wait_online(r, 3)
        up = await r.client.post(
            f"/api/provinces/{demo_data.PROVINCE[0]}/media",
            files={"file": ("tinh.wav", wav_bytes(), "audio/wav")},
        )
        assert up.status_code == 201, up.text
        assert up.json()["media"]["commune_id"] is None
        resp = await r.client.post(
            f"/api/provinces/{demo_data.PROVINCE[0]}/bulletins",
            json={
                "title": "Thông báo của tỉnh",
                "what": {"kind": "media", "media_id": up.json()["media"]["id"]},
                "communes": [COMMUNE, "vi-thanh"],
                "when": {
                    "kind": "once",
                    "start": fire.date().isoformat(),
                    "at": fire.strftime("%H:%M"),
                },
            },
        )
        assert resp.status_code == 201, resp.text
        made = resp.json()["programmes"]
        assert {p["commune_id"] for p in made} == {COMMUNE, "vi-thanh"}
        assert {p["status"] for p in made} == {"approved"}
        assert {p["priority"] for p in made} == {"priority"}
        wanted = {"vth-a-1", *demo_data.device_ids("ap-1")}
        with anyio.fail_after(40):
            while not wanted <= {e["device"] for e in fleet.log.of("play")}:
                await anyio.sleep(0.3)
        refused = await r.client.post(
            f"/api/provinces/{demo_data.PROVINCE[0]}/bulletins",
            json={
                "title": "x",
                "what": {"kind": "media", "media_id": up.json()["media"]["id"]},
                "communes": ["vi-tan", "xa-khac"],
                "when": {"kind": "daily", "at": "06:00"},
            },
        )
        assert_error(refused, 400, "invalid_input", fields=["communes"])
        listed = (await r.client.get("/api/communes/vi-thanh/programmes")).json()
        assert len(listed["programmes"]) == 1  # nothing more was saved
    first_plays = {e["device"]: e["true_play_us"] for e in reversed(fleet.log.of("play"))}
    # both communes heard it at the same instant: their own 'once' at the same local time
    assert abs(first_plays["vth-a-1"] - first_plays["vt-ap-1-1"]) < 200_000


def wav_bytes() -> bytes:
    from tests.conftest import wav

    return wav(1.0)


async def test_a_daily_relay_programme_relays_the_station(tmp_path: Path, broker: Any) -> None:
    """'Tiếp sóng' as a programme: at its minute the controller pulls the stream."""
    from tests.test_live import Radio

    radio_mp3 = ffmpeg_make(
        tmp_path,
        "radio.mp3",
        "-f",
        "lavfi",
        "-i",
        "sine=f=330:d=30",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "64k",
        "-ac",
        "1",
    ).read_bytes()
    clock, boundary = clock_before_minute(8)
    fire = datetime.fromtimestamp(boundary, VN)
    settings = make_settings(
        tmp_path, broker, scheduler={"tick_s": 0.5}, relay={"allowed_hosts": ["127.0.0.1"]}
    )
    async with Radio(radio_mp3).on_air() as radio, serve(settings, clock=clock) as r:
        relay = {
            "title": "Tiếp sóng VOV1",
            "what": {"kind": "relay", "url": radio.url, "duration_s": 3},
            "targets": [{"commune": COMMUNE}],
            "when": {"kind": "daily", "at": fire.strftime("%H:%M")},
        }
        resp = await r.client.post(URL, json=relay)
        assert resp.status_code == 201, resp.text
        p = resp.json()["programme"]
        await r.client.post(f"/api/programmes/{p['id']}/submit")
        await r.client.post(f"/api/programmes/{p['id']}/approve")
        done = await finished_firings(r, 40)
        assert done[0]["broadcast_id"], done[0]["reason"]
        b = (await r.client.get(f"/api/broadcasts/{done[0]['broadcast_id']}")).json()
        bad = {**relay, "what": {"kind": "relay", "url": "file:///etc/passwd", "duration_s": 3}}
        refused = await r.client.post(URL, json=bad)
    assert b["broadcast"]["kind"] == "relay" and b["broadcast"]["source"] == radio.url
    assert b["broadcast"]["chunks"] > 0
    assert_error(refused, 400, "invalid_input", fields=["url"])


async def test_conflicts_are_shown_before_saving_and_nothing_is_saved(running: Running) -> None:
    media_id = await upload(running, 0.5)
    first = (await running.client.post(URL, json=body(media_id))).json()["programme"]
    clash = body(media_id)
    clash["targets"] = [{"commune": COMMUNE, "hamlet": "ap-2"}]
    resp = await running.client.post(URL + "/check", json=clash)
    assert resp.status_code == 200, resp.text
    (c, *_) = resp.json()["conflicts"]
    assert c["programme_id"] == first["id"] and c["speakers"] == 3
    listed = (await running.client.get(URL)).json()["programmes"]
    assert [p["id"] for p in listed] == [first["id"]]  # the check saved nothing
    bad = body(media_id, at="7h")
    assert_error(await running.client.post(URL + "/check", json=bad), 400, "invalid_input")


async def test_plain_dates_in_queries_are_the_communes_days(running: Running) -> None:
    """Issue 18, item 7: ``from=2026-12-01`` means that day in Vietnam, not in UTC (a
    06:00 programme fires at 23:00 UTC the evening before)."""
    media_id = await upload(running, 0.5)
    p = (await running.client.post(URL, json=body(media_id, at="06:00"))).json()["programme"]
    cal = await running.client.get(
        f"/api/communes/{COMMUNE}/occurrences", params={"from": "2026-12-01", "to": "2026-12-01"}
    )
    assert cal.status_code == 200, cal.text
    fires = [o["fire_us"] for o in cal.json()["occurrences"] if o["programme_id"] == p["id"]]
    assert [datetime.fromtimestamp(f / 1e6, VN).isoformat() for f in fires] == [
        "2026-12-01T06:00:00+07:00"
    ]
    local = await running.client.get(
        f"/api/communes/{COMMUNE}/occurrences",
        params={"from": "2026-12-01T05:00", "to": "2026-12-01T07:00"},
    )
    assert [o["fire_us"] for o in local.json()["occurrences"]] == fires


async def test_a_communes_new_time_zone_moves_its_programmes_to_the_same_local_times(
    running: Running,
) -> None:
    """Set up in the wrong zone and corrected: "06:00 every day" stays 06:00 where the
    commune is. The firings written ahead move; one given its own zone keeps it."""
    media_id = await upload(running, 0.5)
    ids = []
    for when in ({}, {"at": "17:00", "timezone": "UTC"}):
        p = (await running.client.post(URL, json=body(media_id, **when))).json()["programme"]
        for action in ("submit", "approve"):
            assert (await running.client.post(f"/api/programmes/{p['id']}/{action}")).is_success
        ids.append(p["id"])
    resp = await running.client.put(f"/api/communes/{COMMUNE}", json={"timezone": "Asia/Tokyo"})
    assert resp.status_code == 200, resp.text
    cal = (await running.client.get(f"/api/communes/{COMMUNE}/occurrences")).json()
    local = {ids[0]: ZoneInfo("Asia/Tokyo"), ids[1]: ZoneInfo("UTC")}
    times = {
        (o["programme_id"], datetime.fromtimestamp(o["fire_us"] / 1e6, local[o["programme_id"]]))
        for o in cal["occurrences"]
    }
    assert {(pid, (t.hour, t.minute)) for pid, t in times} == {(ids[0], (6, 0)), (ids[1], (17, 0))}
    rows = running.services.store.query(
        "SELECT programme_id, fire_us FROM occurrences WHERE status='scheduled'"
    )
    for r in rows:  # the rows the engine fires from, not only the calendar
        t = datetime.fromtimestamp(r["fire_us"] / 1e6, local[r["programme_id"]])
        assert (t.hour, t.minute) in ((6, 0), (17, 0)), (r, t)
    assert {r["programme_id"] for r in rows} == set(ids)
