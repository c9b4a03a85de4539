"""The monthly report over a simulated October (fake clock): hours per hamlet by kind,
alert delivery rate and uptime, against figures computed by hand."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from broadcaster.fleet.report import as_csv, commune_report, province_rollup
from broadcaster.fleet.report_html import as_html
from broadcaster.fleet.service import FleetService
from broadcaster.places import demo_data
from broadcaster.settings import FleetSettings
from broadcaster.store.store import Store
from devices.signing import Signer
from loa.clock import FakeClock
from tests.conftest import Running
from tests.test_api import COMMUNE, assert_error

VN = ZoneInfo("Asia/Ho_Chi_Minh")
H = 3600 * 1_000_000
DAY = 24 * H


def at(day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(2026, 10, day, hour, minute, tzinfo=VN).timestamp() * 1e6)


async def _nothing(topic: str, payload: bytes) -> None:
    return None


def broadcast(store: Store, bid: str, kind: str, start: int, minutes: int) -> None:
    store.db.table("broadcasts").insert(
        {"id": bid, "kind": kind, "status": "done", "created_us": start, "title": bid}
    )
    store.db.table("broadcast_communes").insert({"broadcast_id": bid, "commune_id": COMMUNE})


def played(store: Store, bid: str, devices: list[str], start: int, minutes: int) -> None:
    for d in devices:
        store.db.table("deliveries").insert(
            {
                "broadcast_id": bid,
                "device_id": d,
                "commune_id": COMMUNE,
                "hamlet_id": store.device_hamlet(d),
                "targeted": 1,
                "online_at_start": 1,
                "outcome": "played",
                "started_us": start,
                "ended_us": start + minutes * 60_000_000,
            }
        )


@pytest.fixture
def october(tmp_path: Path) -> tuple[Store, FleetService]:
    store = Store(tmp_path / "loa.db")
    demo_data.seed(store)
    ids = [d.id for d in store.devices(COMMUNE)]
    for d in ids:  # everyone came online in September
        store.db.table("presence_log").insert(
            {"device_id": d, "commune_id": COMMUNE, "at_us": at(1) - 5 * DAY, "online": 1}
        )
    # vt-ap-1-1 is offline from 20 Oct 00:00 to 22 Oct 00:00
    for t, on in ((at(20), 0), (at(22), 1)):
        store.db.table("presence_log").insert(
            {"device_id": "vt-ap-1-1", "commune_id": COMMUNE, "at_us": t, "online": on}
        )
    # the controller ran all month except 24 h from 10 Oct 00:00
    runs = [(at(1) - DAY, at(10)), (at(11), at(31, 23, 59) + 60_000_000)]
    for a, b in runs:
        store.db.table("controller_runs").insert({"started_us": a, "alive_us": b})
    ap1 = ["vt-ap-1-1", "vt-ap-1-2", "vt-ap-1-3"]
    ap2 = ["vt-ap-2-1", "vt-ap-2-2", "vt-ap-2-3"]
    for day in range(1, 31):  # the news at 06:00 for 10 minutes, 30 days, everyone
        bid = f"news-{day}"
        start = at(day, 6)
        broadcast(store, bid, "media", start, 10)
        listening = [d for d in ids if not (d == "vt-ap-1-1" and day in (20, 21))]
        played(store, bid, listening, start, 10)
        store.db.table("occurrences").insert(
            {"programme_id": "p", "fire_us": start, "commune_id": COMMUNE, "broadcast_id": bid}
        )
    for n in (1, 2):  # the provincial radio relayed twice to Ấp 2, 30 minutes each
        broadcast(store, f"relay-{n}", "relay", at(5 * n, 18), 30)
        played(store, f"relay-{n}", ap2, at(5 * n, 18), 30)
    for n in (1, 2):  # two alerts of one minute to Ấp 1 and Ấp 2
        bid = f"alert-{n}"
        broadcast(store, bid, "media", at(12 + n, 9), 1)
        store.db.table("alerts").insert(
            {"id": f"a{n}", "commune_id": COMMUNE, "created_us": at(12 + n, 9)}
        )
        store.db.table("alert_broadcasts").insert({"alert_id": f"a{n}", "broadcast_id": bid})
        who = ap1 + ap2 if n == 1 else ap1 + ap2[:2]
        played(store, bid, who, at(12 + n, 9), 1)
        if n == 2:  # one speaker online but no proof of play
            store.db.table("deliveries").insert(
                {
                    "broadcast_id": bid,
                    "device_id": "vt-ap-2-3",
                    "commune_id": COMMUNE,
                    "hamlet_id": "ap-2",
                    "targeted": 1,
                    "online_at_start": 1,
                    "outcome": "no_report",
                }
            )
    store.db.table("alarms").insert(
        {"id": "x1", "device_id": "vt-ap-1-1", "commune_id": COMMUNE, "kind": "offline",
         "raised_us": at(20, 0, 2)}
    )  # fmt: skip
    clock = FakeClock(at(31, 23, 59) + 60_000_000)  # the report is made on 1 November
    fleet = FleetService(store, clock, FleetSettings(), Signer.generate(), _nothing)
    return store, fleet


def test_monthly_report_matches_hand_computed_figures(
    october: tuple[Store, FleetService],
) -> None:
    store, fleet = october
    r = commune_report(store, fleet, COMMUNE, at(1), at(31) + DAY)
    by = {h["hamlet"]: h for h in r["hamlets"]}
    assert by["ap-1"]["hours"]["news"] == pytest.approx(300 / 60)  # 30 × 10 min, once each
    assert by["ap-2"]["hours"]["relay"] == pytest.approx(1.0)
    assert by["ap-1"]["hours"]["relay"] == 0
    assert by["ap-1"]["hours"]["alert"] == pytest.approx(2 / 60, abs=1e-4)  # rounded
    assert by["ap-7"]["hours_total"] == pytest.approx(5.0)
    assert r["alerts"]["alerts"] == 2
    assert r["alerts"]["delivery_rate"] == pytest.approx(11 / 12, abs=1e-4)
    # 31 days, 1 unknown (controller down): vt-ap-1-1 was offline 2 of the 30 watched
    ap1 = by["ap-1"]["uptime"]
    assert ap1["unknown_s"] == pytest.approx(3 * 86400)
    assert ap1["uptime"] == pytest.approx(88 / 90, abs=1e-6)
    assert r["uptime"]["uptime"] == pytest.approx((27 * 30 - 2) / (27 * 30), abs=1e-6)
    assert r["top_faults"] == [{"kind": "offline", "alarms": 1, "speakers": 1}]
    text = as_csv(r)
    assert text.splitlines()[0].startswith("hamlet,hours_news")
    assert "ap-2,5.0,0.0,1.0,0.0,0.0333" in text
    page = as_html(r, date(2026, 10, 1), date(2026, 10, 31))
    assert "Báo cáo hoạt động" in page and "data:image/png;base64," in page
    assert "91,7 %" in page  # the alert delivery rate, with a decimal comma
    assert "01/10/2026" in page and "31/10/2026" in page and "2026-10" not in page
    for words in ("Tin tức", "Thông báo", "Tiếp sóng", "Trực tiếp", "Cảnh báo", "Tổng"):
        assert f">{words}</th>" in page, words
    assert "Người lập" in page and "Thủ trưởng đơn vị" in page and "Mất kết nối" in page
    english = as_html(r, date(2026, 10, 1), date(2026, 10, 31), "en")
    assert "91.7 %" in english and "Prepared by" in english and "News" in english
    for vietnamese in ("Người lập", "Tin tức", "Giờ phát", "Mất kết nối"):
        assert vietnamese not in english, vietnamese
    roll = province_rollup(store, "can-tho", at(1), at(31) + DAY)
    assert roll[0]["commune"] == COMMUNE and roll[0]["bulletins"] == 34
    assert roll[0]["speakers"] == 27


async def test_report_routes_and_refusals(running: Running) -> None:
    c = running.client
    ok = await c.get(f"/api/communes/{COMMUNE}/report", params={"month": "2026-10"})
    assert ok.status_code == 200 and ok.json()["period"] == "2026-10-01 – 2026-10-31"
    csv = await c.get(f"/api/communes/{COMMUNE}/report", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv") and "hamlet," in csv.text
    page = await c.get(f"/api/communes/{COMMUNE}/report", params={"format": "html"})
    assert page.headers["content-type"].startswith("text/html")
    prov = await c.get("/api/provinces/can-tho/report", params={"format": "csv"})
    assert prov.text.startswith("commune,name,speakers")
    for params in (
        {"month": "2026-13"},
        {"month": "tháng mười"},
        {"from": "2026-10-05", "to": "2026-10-01"},
        {"format": "pdf"},
    ):
        resp = await c.get(f"/api/communes/{COMMUNE}/report", params=params)
        assert_error(resp, 400, "invalid_input")
    assert_error(await c.get("/api/communes/khong-co/report"), 404)
