"""CAP documents as a Vietnamese provincial disaster office writes them, and foreign ones:
hazard words read with their tone marks, the most specific place winning, polygons
and circles against the speakers' GPS, English held for a Vietnamese message, markup
never read aloud — each checked on what the simulated speakers actually played."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import anyio
import pytest

from broadcaster.alerts import cap, vi_match
from broadcaster.alerts.cap_import import Commune, targets
from broadcaster.alerts.model import AlertType
from broadcaster.places import demo_data
from broadcaster.places.targeting import Target
from broadcaster.store.store import Store
from loa.errors import InvalidInput
from tests.conftest import Running, fleet_of
from tests.test_alerts import act, finished, wait_alert
from tests.test_api import COMMUNE, assert_error
from tests.test_e2e import wait_online

HERE = Path(__file__).parent / "cap"
XML = {"content-type": "application/cap+xml"}


def sample(name: str) -> bytes:
    return (HERE / name).read_bytes()


async def post(r: Running, data: bytes) -> Any:
    return await r.client.post(f"/api/communes/{COMMUNE}/alerts/cap", content=data, headers=XML)


def vi_tan(positions: dict[str, tuple[float, float]] | None = None) -> Commune:
    return Commune(
        COMMUNE,
        demo_data.COMMUNE[1],
        [vi_match.Place(h, n) for h, n in demo_data.HAMLETS],
        [vi_match.Place(demo_data.MARKET_ZONE[0], demo_data.MARKET_ZONE[1])],
        positions or {},
    )


# --- words (pure) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ("Lũ trên báo động 3", AlertType.FLOOD),  # "báo" is not "bão"
        ("Mực nước trên báo động 2", AlertType.FLOOD),  # an alarm level alone: a flood
        ("Đám cháy", AlertType.FIRE),  # "đám" is not "đập" nor "dam"
        ("Đám cháy nhà kho", AlertType.FIRE),
        ("Bão số 9", AlertType.TYPHOON),
        ("Áp thấp nhiệt đới mạnh lên thành bão", AlertType.TYPHOON),
        ("Vỡ đập thủy lợi", AlertType.DAM_RELEASE),
        ("Hồ thuỷ điện xả lũ", AlertType.DAM_RELEASE),  # old spelling of thủy
        ("Triều cường", AlertType.FLOOD),
        ("Thông báo về buổi đàm phán", AlertType.OTHER),  # "đàm" folds to "dam": no
        ("Thông báo", AlertType.OTHER),
        ("Lu tren bao dong 3", AlertType.FLOOD),  # typed without accents
        ("Dam chay tai Ap 2A", AlertType.FIRE),
        ("Canh bao bao so 9", AlertType.TYPHOON),
        ("Dam release downstream", AlertType.DAM_RELEASE),
        ("Bushfire", AlertType.FIRE),
    ],
)
def test_hazard_words_keep_their_tone_marks(event: str, kind: AlertType) -> None:
    assert vi_match.hazard(event, "", [], []) is kind
    decomposed = unicodedata.normalize("NFD", event)  # the same words, NFD
    assert vi_match.hazard(decomposed, "", [], []) is kind


def test_event_codes_and_categories_decide_when_words_do_not() -> None:
    assert vi_match.hazard("Thông báo", "", [("loa:type", "fire")], []) is AlertType.FIRE
    assert vi_match.hazard("Warning", "", [("SAME", "FLW")], []) is AlertType.FLOOD
    assert vi_match.hazard("Thông báo khẩn", "", [], ["Fire"]) is AlertType.FIRE
    assert vi_match.hazard("Thông báo khẩn", "", [], ["Health"]) is AlertType.EPIDEMIC
    # a hazard word beats an alarm-level phrase and the category breaks ties only
    assert vi_match.hazard("Bão và lũ", "", [], ["Met"]) is AlertType.TYPHOON


@pytest.mark.parametrize(
    ("desc", "hamlets", "whole"),
    [
        ("Ấp 3, xã Vị Tân", ("ap-3",), False),  # the most specific place wins
        ("ấp 3 xã Vị Tân", ("ap-3",), False),
        ("Ấp 3; Ấp 4", ("ap-3", "ap-4"), False),
        ("Ấp 3 và Ấp 4", ("ap-3", "ap-4"), False),
        ("Ấp 3 và Ấp 4, xã Vị Tân, huyện Châu Thành, tỉnh Hậu Giang", ("ap-3", "ap-4"), False),
        ("Ấp 2A", ("ap-2a",), False),  # not Ấp 2
        ("Ấp 3, xã Vị Bình", (), False),  # another commune's Ấp 3
        ("Xã Vị Tân, thành phố Cần Thơ", (), True),
        ("Vi Tan commune, Can Tho", (), True),
        ("Ap 3, Vi Tan commune", ("ap-3",), False),
        ("Hà Nội", (), False),
    ],
)
def test_places_most_specific_wins(desc: str, hamlets: tuple[str, ...], whole: bool) -> None:
    c = vi_tan()
    named = vi_match.places(desc, c.name, c.hamlets, c.zones)
    assert named.hamlets == hamlets and named.whole_commune is whole
    nfd = vi_match.places(unicodedata.normalize("NFD", desc), c.name, c.hamlets, c.zones)
    assert nfd == named


def test_polygon_and_circle() -> None:
    ring = [(9.779, 105.637), (9.779, 105.641), (9.775, 105.641), (9.775, 105.637)]
    assert vi_match.inside_polygon((9.777, 105.639), ring + ring[:1])
    assert not vi_match.inside_polygon((9.781, 105.639), ring + ring[:1])
    assert vi_match.inside_circle((9.777, 105.639), (9.777, 105.640), 0.2)  # ~110 m
    assert not vi_match.inside_circle((9.777, 105.639), (9.777, 105.645), 0.2)  # ~660 m


def test_markup_is_never_read_aloud() -> None:
    text = vi_match.spoken("Nước lên nhanh.&lt;br /&gt;Bà con <b>chú ý</b> &amp; di dời.")
    assert text == "Nước lên nhanh. Bà con chú ý & di dời."
    assert "<" not in vi_match.spoken("<p>Leave now</p><p>Too late</p>")


# --- documents (pure mapping) ----------------------------------------------------------------

POSITIONS = {
    d: (9.70 + 0.01 * i, 105.60 + 0.01 * j)  # a grid 1 km apart, far from the polygon
    for i, (h, _) in enumerate(demo_data.HAMLETS)
    for j, d in enumerate(demo_data.device_ids(h))
}
IN_POLYGON = {"vt-ap-5-2": (9.7770, 105.6380), "vt-ap-6-1": (9.7760, 105.6400)}


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("lu-ap3-vi-tan.xml", AlertType.FLOOD, [Target(COMMUNE, hamlet="ap-3")]),
        ("dam-chay-ap-2a.xml", AlertType.FIRE, [Target(COMMUNE, hamlet="ap-2a")]),
        (
            "xa-lu-ap3-ap4.xml",
            AlertType.DAM_RELEASE,
            [Target(COMMUNE, hamlet="ap-3"), Target(COMMUNE, hamlet="ap-4")],
        ),
        ("bao-so-9-ca-xa.xml", AlertType.TYPHOON, [Target(COMMUNE)]),
        ("en-nws-flood.xml", AlertType.FLOOD, [Target(COMMUNE, hamlet="ap-3")]),
        (
            "sat-lo-polygon.xml",
            AlertType.LANDSLIDE,
            [Target(COMMUNE, device="vt-ap-5-2"), Target(COMMUNE, device="vt-ap-6-1")],
        ),
        (
            "en-bushfire-circle.xml",
            AlertType.FIRE,
            [Target(COMMUNE, device="vt-ap-5-2"), Target(COMMUNE, device="vt-ap-6-1")],
        ),
    ],
)
def test_documents_map_to_type_and_place(
    name: str, kind: AlertType, expected: list[Target]
) -> None:
    doc = cap.parse(sample(name))
    info = doc.infos[0]
    assert cap.alert_type(info) is kind
    mapped = targets(info, vi_tan({**POSITIONS, **IN_POLYGON}))
    assert mapped.targets == expected


def test_a_polygon_without_positions_falls_back_to_the_description() -> None:
    info = cap.parse(sample("sat-lo-polygon.xml")).infos[0]
    assert targets(info, vi_tan()).targets == [Target(COMMUNE)]  # "…, xã Vị Tân"
    held = targets(info, vi_tan(POSITIONS))  # positions known, none inside
    assert held.targets == [] and held.empty_geometry


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b"<polygon>9.7790,105.6370 ", b"<polygon>", "at least four points"),
        (b"<polygon>9.7790,105.6370", b"<polygon>99.7790,105.6370", "off the globe"),
        (b"<polygon>9.7790,105.6370", b"<polygon>north", "latitude,longitude"),
    ],
)
def test_bad_geometry_is_refused(old: bytes, new: bytes, message: str) -> None:
    data = sample("sat-lo-polygon.xml")
    assert old in data
    with pytest.raises(InvalidInput, match=message):
        cap.parse(data.replace(old, new, 1))


# --- over HTTP, with the simulated speakers as ground truth -----------------------------------


async def test_ap_3_of_vi_tan_sounds_on_ap_3_only(running: Running) -> None:
    specs = [s for s in demo_data.fleet_specs() if s.hamlet in ("ap-2", "ap-3", "ap-4")]
    async with fleet_of(running, specs) as fleet:
        await wait_online(running, len(specs))
        resp = await post(running, sample("lu-ap3-vi-tan.xml"))
        assert resp.status_code == 201, resp.text
        alert = resp.json()["alert"]
        assert alert["type"] == "flood" and alert["risk_level"] == 3
        assert alert["targets"] == [{"commune": COMMUNE, "hamlet": "ap-3"}]
        await act(running, alert["id"], "confirm")
        await sounded_then_stopped(running, fleet, alert["id"], demo_data.device_ids("ap-3"))
    assert {e["device"] for e in fleet.log.of("play")} == set(demo_data.device_ids("ap-3"))


async def sounded_then_stopped(r: Running, fleet: Any, alert_id: str, devices: list[str]) -> None:
    """Wait until every one of ``devices`` has played the alert, then cancel it and wait
    until it has stopped everywhere (a long alert need not be heard to its end)."""
    with anyio.fail_after(40):
        while not set(devices) <= {e["device"] for e in fleet.log.of("play")}:
            await anyio.sleep(0.2)
    await act(r, alert_id, "cancel")
    await wait_alert(r, alert_id, finished)


def place(settings_path: str, positions: dict[str, tuple[float, float]]) -> None:
    store = Store(Path(settings_path))
    try:
        with store.db.atomic():
            for device, (lat, lon) in positions.items():
                store.db.execute("UPDATE devices SET lat=?, lon=? WHERE id=?", [lat, lon, device])
    finally:
        store.close()


async def test_a_polygon_around_two_speakers_sounds_on_those_two(running: Running) -> None:
    place(running.services.settings.db.path, {**POSITIONS, **IN_POLYGON})
    specs = [s for s in demo_data.fleet_specs() if s.hamlet in ("ap-4", "ap-5", "ap-6")]
    async with fleet_of(running, specs) as fleet:
        await wait_online(running, len(specs))
        resp = await post(running, sample("sat-lo-polygon.xml"))
        assert resp.status_code == 201, resp.text
        alert = resp.json()["alert"]
        assert alert["type"] == "landslide" and alert["risk_level"] == 4
        await act(running, alert["id"], "confirm")
        await sounded_then_stopped(running, fleet, alert["id"], list(IN_POLYGON))
    assert {e["device"] for e in fleet.log.of("play")} == set(IN_POLYGON)


async def test_a_polygon_with_no_speaker_inside_is_held(running: Running) -> None:
    place(running.services.settings.db.path, POSITIONS)
    resp = await post(running, sample("sat-lo-polygon.xml"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["alert"] is None
    assert "no speaker in this area" in resp.json()["held"]


async def test_english_only_is_kept_in_english_and_waits_for_vietnamese(
    running: Running,
) -> None:
    resp = await post(running, sample("en-nws-flood.xml"))
    assert resp.status_code == 201, resp.text
    alert = resp.json()["alert"]
    assert alert["language"] == "en-US" and alert["message_vi"] == ""
    assert "<br" not in alert["message_en"] and "&lt;" not in alert["message_en"]
    assert "WHERE...Hamlet 3" in alert["message_en"]
    refused = await running.client.post(f"/api/alerts/{alert['id']}/confirm")
    assert "English only" in assert_error(refused, 409, "conflict")["error"]
    vietnamese = {
        "type": "flood",
        "risk_level": 3,
        "message": "Nước kênh Xà No đang lên, bà con Ấp 3 chú ý.",
        "siren": "steady",
        "repeat": 1,
        "targets": alert["targets"],
    }
    updated = await act(running, alert["id"], "update", json=vietnamese)
    assert updated["message_vi"].startswith("Nước kênh") and updated["language"] == "vi-VN"
    assert (await act(running, alert["id"], "confirm"))["status"] == "active"


async def test_update_and_cancel_follow_the_document_and_the_account_is_the_actor(
    running: Running,
) -> None:
    alert = (await post(running, sample("lu-ap3-vi-tan.xml"))).json()["alert"]
    await act(running, alert["id"], "confirm")
    upd = await post(running, sample("lu-cap-nhat-ap3.xml"))
    assert upd.status_code == 201, upd.text
    assert upd.json()["alert"]["risk_level"] == 4 and upd.json()["action"] == "updated"
    end = await post(running, sample("lu-huy-ap3.xml"))
    assert end.status_code == 201, end.text
    done = end.json()["alert"]
    assert done["status"] == "cancelled"
    actors = {e["actor"] for e in done["events"]}
    assert actors == {"svc-tests"}  # the account, never the CAP sender
    by_cap = [e for e in done["events"] if e["action"] != "confirm"]  # confirmed by hand
    assert [e["action"] for e in by_cap] == ["create", "update", "cancelled"]
    assert all("bchpctt@cantho.gov.vn" in e["detail"] for e in by_cap)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b"2026-11-30T05:10:00+07:00", b"2099-11-30T05:10:00+07:00", "in the future"),
        (b"2099-11-30T17:00:00+07:00", b"2026-11-30T04:00:00+07:00", "before its <sent>"),
    ],
)
async def test_impossible_times_are_refused_with_the_reason(
    running: Running, old: bytes, new: bytes, message: str
) -> None:
    data = sample("lu-ap3-vi-tan.xml")
    assert old in data
    body = assert_error(await post(running, data.replace(old, new)), 400)
    assert message in body["error"]
    alerts = (await running.client.get(f"/api/communes/{COMMUNE}/alerts")).json()["alerts"]
    assert alerts == []
