"""Emergency alerts end to end: create → confirm → sound, pre-emption, cancel, update,
all-clear, re-air, replay to a speaker that comes back, the board, refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.alerts.board import hamlet_board, speaker_board
from broadcaster.alerts.model import (
    TEMPLATES,
    AlertType,
    next_airing,
    render,
    template_fields,
)
from broadcaster.places import demo_data
from loa.errors import InvalidInput
from tests.conftest import Running, fleet_of
from tests.test_api import COMMUNE, assert_error
from tests.test_dispatch import outcomes
from tests.test_e2e import wait_online

FLOOD = {
    "type": "flood",
    "risk_level": 3,
    "fields": {"river": "Hậu", "place": "trạm Cần Thơ", "time": "06:00", "water_level": "2,15"},
    "siren": "steady",
    "repeat": 1,
}


#: A short custom message: the same path, less audio to wait for.
SHORT = {
    "type": "flood",
    "risk_level": 3,
    "message": "Nước lên nhanh, bà con chú ý.",
    "siren": "steady",
    "repeat": 1,
}


def targets(*hamlets: str) -> list[dict[str, str]]:
    return [{"commune": COMMUNE, "hamlet": h} for h in hamlets]


async def create(r: Running, body: dict[str, Any]) -> dict[str, Any]:
    resp = await r.client.post(f"/api/communes/{COMMUNE}/alerts", json=body)
    assert resp.status_code == 201, resp.text
    alert: dict[str, Any] = resp.json()["alert"]
    return alert


async def act(r: Running, alert_id: str, action: str, **kw: Any) -> dict[str, Any]:
    resp = await r.client.post(f"/api/alerts/{alert_id}/{action}", **kw)
    assert resp.status_code == 202, resp.text
    alert: dict[str, Any] = resp.json()["alert"]
    return alert


async def wait_alert(r: Running, alert_id: str, done: Any, timeout: float = 40) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        while True:
            a: dict[str, Any] = (await r.client.get(f"/api/alerts/{alert_id}")).json()["alert"]
            if done(a):
                return a
            await anyio.sleep(0.2)


def finished(a: dict[str, Any]) -> bool:
    return bool(a["broadcasts"]) and all(
        b["status"] not in ("streaming", "finishing") for b in a["broadcasts"]
    )


# --- the model (pure) ---------------------------------------------------------------------


def test_every_type_has_vietnamese_and_english_templates() -> None:
    for kind in AlertType:
        vi, en = TEMPLATES[kind]
        assert vi and en
        fields = {f: "X" for f in template_fields(kind)}
        assert render(kind, fields, 4, "vi") != render(kind, fields, 4, "en")


def test_flood_template_reads_in_vietnamese() -> None:
    text = render(AlertType.FLOOD, FLOOD["fields"], 3)
    assert "lũ trên sông Hậu" in text and "2,15 mét" in text and "cấp 3" in text


def test_missing_template_fields_are_named() -> None:
    with pytest.raises(InvalidInput) as err:
        render(AlertType.DAM_RELEASE, {"dam": "Trị An"}, 4)
    assert {e.field for e in err.value.errors} == {"fields.time", "fields.flow", "fields.place"}


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1)),
    st.sampled_from([1, 2, 3, 4, 6, 12, 24]),
    st.sampled_from(["Asia/Ho_Chi_Minh", "Europe/Berlin", "America/New_York"]),
)
@settings(max_examples=200)
def test_next_airing_is_on_the_hour_every_n_hours(when: datetime, every: int, zone: str) -> None:
    after = int(when.replace(tzinfo=UTC).timestamp() * 1e6)
    nxt = next_airing(after, every, zone)
    local = datetime.fromtimestamp(nxt / 1e6, ZoneInfo(zone))
    assert nxt > after
    assert local.minute == 0 and local.second == 0 and local.hour % every == 0
    assert nxt - after <= (every + 1) * 3600 * 1_000_000  # never skips an airing (DST: +1 h)


def test_boards_count_a_hamlet_delivered_only_when_a_speaker_played() -> None:
    rows = [
        {
            "device_id": "a1",
            "hamlet_id": "ap-1",
            "outcome": "played",
            "started_us": 5,
            "frames_played": 10,
            "frames_missing": 0,
            "reason": "",
            "online_at_start": 1,
        },
        {
            "device_id": "a2",
            "hamlet_id": "ap-1",
            "outcome": "offline",
            "started_us": None,
            "frames_played": 0,
            "frames_missing": 0,
            "reason": "speaker was offline",
            "online_at_start": 0,
        },
        {
            "device_id": "b1",
            "hamlet_id": "ap-2",
            "outcome": "no_report",
            "started_us": None,
            "frames_played": 0,
            "frames_missing": 0,
            "reason": "no proof",
            "online_at_start": 1,
        },
        # a later replay reached a2 after it came back
        {
            "device_id": "a2",
            "hamlet_id": "ap-1",
            "outcome": "played",
            "started_us": 90,
            "frames_played": 10,
            "frames_missing": 0,
            "reason": "",
            "online_at_start": 1,
        },
    ]
    speakers = speaker_board(rows)
    assert {s["device_id"]: s["state"] for s in speakers} == {
        "a1": "played",
        "a2": "played",
        "b1": "no_report",
    }
    assert next(s for s in speakers if s["device_id"] == "a2")["first_played_us"] == 90
    board = {h["hamlet_id"]: h for h in hamlet_board(speakers)}
    assert board["ap-1"]["delivered"] and not board["ap-2"]["delivered"]
    assert board["ap-2"]["not_played"] == ["b1"]


# --- over HTTP with simulated speakers ------------------------------------------------------


async def test_alert_sounds_on_its_hamlets_and_is_accounted_for(running: Running) -> None:
    specs = [s for s in demo_data.fleet_specs() if s.hamlet in ("ap-1", "ap-2", "ap-3")]
    async with fleet_of(running, specs) as fleet:
        await wait_online(running, len(specs))
        alert = await create(running, {**FLOOD, "targets": targets("ap-1", "ap-2")})
        assert alert["status"] == "draft" and alert["broadcasts"] == []
        assert "mực nước" in alert["message_vi"] and "water level" in alert["message_en"]
        assert alert["risk"]["colour_vi"] == "da cam"
        assert fleet.log.of("play") == []  # nothing sounds before the confirm
        confirmed = await act(running, alert["id"], "confirm")
        assert confirmed["status"] == "active"
        done = await wait_alert(running, alert["id"], finished)
    board = {s["device_id"]: s for s in done["speakers"]}
    expected = set(demo_data.device_ids("ap-1") + demo_data.device_ids("ap-2"))
    assert set(board) == expected
    assert all(s["state"] == "played" and s["first_played_us"] for s in board.values())
    assert all(h["delivered"] for h in done["hamlets"])
    played = {e["device"] for e in fleet.log.of("play")}
    assert played == expected  # Ấp 3 heard nothing
    assert [e["action"] for e in done["events"]] == ["create", "confirm"]


async def test_alert_preempts_a_bulletin_only_where_it_sounds(running: Running) -> None:
    specs = [s for s in demo_data.fleet_specs() if s.hamlet in ("ap-1", "ap-2", "ap-3")]
    from tests.test_dispatch import start, upload

    async with fleet_of(running, specs):
        await wait_online(running, len(specs))
        alert = await create(running, {**SHORT, "targets": targets("ap-1")})
        bid = await start(running, await upload(running, 6.0), targets("ap-1", "ap-2", "ap-3"))
        await anyio.sleep(2.5)
        await act(running, alert["id"], "confirm")
        await wait_alert(running, alert["id"], finished)
        with anyio.fail_after(30):
            while True:
                b = (await running.client.get(f"/api/broadcasts/{bid}")).json()["broadcast"]
                if b["status"] not in ("streaming", "finishing"):
                    break
                await anyio.sleep(0.2)
    got = outcomes(b)
    assert {got[d] for d in demo_data.device_ids("ap-1")} == {"preempted"}
    assert {got[d] for d in demo_data.device_ids("ap-2") + demo_data.device_ids("ap-3")} == {
        "played"
    }


async def test_cancel_stops_it_everywhere(running: Running) -> None:
    specs = [s for s in demo_data.fleet_specs() if s.hamlet in ("ap-1", "ap-2")]
    async with fleet_of(running, specs):
        await wait_online(running, len(specs))
        alert = await create(running, {**SHORT, "repeat": 3, "targets": targets("ap-1", "ap-2")})
        await act(running, alert["id"], "confirm")
        await anyio.sleep(3.0)
        cancelled = await act(running, alert["id"], "cancel", json={"reason": "báo nhầm"})
        assert cancelled["status"] == "cancelled"
        done = await wait_alert(running, alert["id"], finished)
    assert done["broadcasts"][0]["status"] == "stopped"
    assert {s["state"] for s in done["speakers"]} == {"partial"}
    assert [e["action"] for e in done["events"]][-1] == "cancelled"
    assert "báo nhầm" in done["events"][-1]["detail"]
    again = await running.client.post(f"/api/alerts/{alert['id']}/cancel")
    assert_error(again, 409, "conflict")


async def test_update_and_all_clear(running: Running) -> None:
    specs = [s for s in demo_data.fleet_specs() if s.hamlet == "ap-1"]
    async with fleet_of(running, specs):
        await wait_online(running, len(specs))
        alert = await create(running, {**FLOOD, "targets": targets("ap-1")})
        await act(running, alert["id"], "confirm")
        raised = {
            **FLOOD,
            "risk_level": 4,
            "targets": targets("ap-1"),
            "fields": {**FLOOD["fields"], "water_level": "2,60"},
        }
        updated = await act(running, alert["id"], "update", json=raised)
        assert updated["risk_level"] == 4 and "2,60" in updated["message_vi"]
        cleared = await act(running, alert["id"], "all-clear")
        assert cleared["status"] == "all_clear"
        done = await wait_alert(running, alert["id"], finished)
    kinds = [b["kind"] for b in done["broadcasts"]]
    assert kinds == ["initial", "update", "all_clear"]
    assert done["broadcasts"][-1]["status"] == "done"
    assert [e["action"] for e in done["events"]] == ["create", "confirm", "update", "all_clear"]


async def test_re_airing_and_expiry(running: Running) -> None:
    s = running.services
    alerts = running.services.alerts
    alert = await create(running, {**FLOOD, "targets": targets("ap-1"), "reair_every_hours": 2})
    confirmed = await act(running, alert["id"], "confirm")
    nxt = datetime.fromtimestamp(confirmed["next_airing_us"] / 1e6, ZoneInfo("Asia/Ho_Chi_Minh"))
    assert nxt.minute == 0 and nxt.hour % 2 == 0
    now = s.clock.now_us()
    s.store.db.table("alerts").update(alert["id"], {"next_airing_us": now - 1})

    def tick() -> int:  # on the controller's event loop, as its own timer would
        return anyio.from_thread.run_sync(alerts.tick, token=alerts.loop_token)

    await anyio.to_thread.run_sync(tick)  # (or its own timer got there first)
    a = (await running.client.get(f"/api/alerts/{alert['id']}")).json()["alert"]
    assert [b["kind"] for b in a["broadcasts"]] == ["initial", "reair"]
    assert await anyio.to_thread.run_sync(tick) == 0  # aired once, not again
    assert a["next_airing_us"] > now
    s.store.db.table("alerts").update(alert["id"], {"expires_us": now - 1})
    await anyio.to_thread.run_sync(tick)
    a = (await running.client.get(f"/api/alerts/{alert['id']}")).json()["alert"]
    assert a["status"] == "expired" and a["next_airing_us"] is None


async def test_a_speaker_that_comes_back_gets_the_alert(running: Running) -> None:
    specs = [s for s in demo_data.fleet_specs() if s.hamlet == "ap-1"]
    late = specs.pop()
    async with fleet_of(running, specs):
        await wait_online(running, len(specs))
        alert = await create(running, {**SHORT, "targets": targets("ap-1")})
        await act(running, alert["id"], "confirm")
        await wait_alert(running, alert["id"], finished)
        async with fleet_of(running, [late]) as back:
            done = await wait_alert(
                running,
                alert["id"],
                lambda a: any(
                    s["device_id"] == late.id and s["state"] == "played" for s in a["speakers"]
                ),
            )
            assert back.log.of("play")
    assert [b["kind"] for b in done["broadcasts"]] == ["initial", "reconnect"]
    assert {s["state"] for s in done["speakers"]} == {"played"}
    assert any(e["action"] == "replay" for e in done["events"])


async def test_live_board_streams_as_server_sent_events(running: Running) -> None:
    alert = await create(running, {**FLOOD, "targets": targets("ap-1")})
    async with running.client.stream("GET", f"/api/alerts/{alert['id']}/events") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.aiter_lines()
        first = await anext(lines)
        data = await anext(lines)
    assert first == "event: alert"
    assert json.loads(data.removeprefix("data: "))["id"] == alert["id"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({**FLOOD, "type": "meteor", "targets": targets("ap-1")}, 400, "type"),
        ({**FLOOD, "risk_level": 6, "targets": targets("ap-1")}, 400, "risk_level"),
        (
            {
                **FLOOD,
                "fields": {"river": "Hậu", "place": "Cần Thơ", "time": "06:00"},
                "targets": targets("ap-1"),
            },
            400,
            "fields.water_level",
        ),
        ({**FLOOD, "targets": []}, 400, "targets"),
        ({**FLOOD, "targets": [{"commune": "xa-khac"}]}, 400, "targets"),
        ({**FLOOD, "targets": targets("ap-99")}, 400, None),
        ({**FLOOD, "siren": "horn", "targets": targets("ap-1")}, 400, "siren"),
        ({**FLOOD, "repeat": 0, "targets": targets("ap-1")}, 400, "repeat"),
        ({**FLOOD, "expires_in_min": 0, "targets": targets("ap-1")}, 400, "expires_in_min"),
        (
            {
                **FLOOD,
                "media_id": "00000000-0000-4000-8000-000000000000",
                "targets": targets("ap-1"),
            },
            400,
            "(body)",
        ),
    ],
)
async def test_bad_alerts_are_refused_and_nothing_is_kept(
    running: Running, body: dict[str, Any], status: int, field: str | None
) -> None:
    resp = await running.client.post(f"/api/communes/{COMMUNE}/alerts", json=body)
    assert_error(resp, status, fields=[field] if field else None)
    listed = (await running.client.get(f"/api/communes/{COMMUNE}/alerts")).json()["alerts"]
    assert listed == []


async def test_wrong_steps_are_refused(running: Running) -> None:
    alert = await create(running, {**FLOOD, "targets": targets("ap-1")})
    assert_error(await running.client.post(f"/api/alerts/{alert['id']}/all-clear"), 409)
    test = await create(running, {**FLOOD, "test": True, "targets": targets("ap-1")})
    refused = await running.client.post(f"/api/alerts/{test['id']}/confirm")
    assert "test speakers" in assert_error(refused, 409, "conflict")["error"]
    await act(running, alert["id"], "confirm")
    assert_error(await running.client.post(f"/api/alerts/{alert['id']}/confirm"), 409)
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_error(await running.client.post(f"/api/alerts/{unknown}/confirm"), 404)
    assert_error(await running.client.get("/api/alerts/not-an-id"), 404)


async def test_an_alert_reads_the_same_after_a_restart(running: Running) -> None:
    """The speakers an alert targets are kept in memory from its creation; a restarted
    controller has none and resolves them again from the stored row."""
    alert = await create(running, {**FLOOD, "targets": targets("ap-1", "ap-2")})
    running.services.alerts.records.resolutions.clear()  # what a restart leaves
    resp = await running.client.get(f"/api/alerts/{alert['id']}")
    assert resp.status_code == 200, resp.text
    again = resp.json()["alert"]
    want = len(demo_data.device_ids("ap-1") + demo_data.device_ids("ap-2"))
    assert again["speaker_count"] == alert["speaker_count"] == want
    assert [h["hamlet_id"] for h in again["hamlets"]] == ["ap-1", "ap-2"]
