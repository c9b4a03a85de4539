"""Programmes: a week of a commune's schedule on a fake clock fires every occurrence
exactly once at its instant; restarts, approval, conflicts and outcomes."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from broadcaster.broadcasts.dispatcher import BroadcastRequest
from broadcaster.places import demo_data
from broadcaster.places.targeting import Target
from broadcaster.programmes import ProgrammeService, outcome_of
from broadcaster.settings import SchedulerSettings
from broadcaster.store.store import Store
from loa.clock import FakeClock
from loa.errors import Conflict, InvalidInput
from schedules.recurrence import Rule

VN = ZoneInfo("Asia/Ho_Chi_Minh")
C = demo_data.COMMUNE[0]
MONDAY = datetime(2026, 11, 23, 0, 0, tzinfo=VN)  # a Monday


def us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


class Recorder:
    """Stands in for the dispatcher: records what was started and when."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.started: list[tuple[str, int]] = []

    def start(self, req: BroadcastRequest) -> str:
        self.started.append((req.title, self.clock.now_us()))
        return str(uuid.uuid4())


@pytest.fixture
def world(tmp_path: Path) -> tuple[ProgrammeService, FakeClock, Recorder, Store]:
    store = Store(tmp_path / "loa.db")
    demo_data.seed(store)
    for mid in ("news", "notice"):
        store.add_media(
            {
                "id": f"00000000-0000-4000-8000-00000000000{1 if mid == 'news' else 2}",
                "commune_id": C,
                "kind": "upload",
                "title": mid,
                "filename": "",
                "duration_ms": 15 * 60_000 if mid == "news" else 60_000,
                "codec": "opus",
                "bitrate_kbps": 24,
                "frame_ms": 20,
                "sha256": "x",
                "bytes": 1,
                "path": "/nonexistent",
                "created_us": 0,
            }
        )
    clock = FakeClock(us(MONDAY - timedelta(hours=1)))
    rec = Recorder(clock)
    service = ProgrammeService(store, rec, clock, SchedulerSettings(grace_s=300))
    return service, clock, rec, store


NEWS = "00000000-0000-4000-8000-000000000001"
NOTICE = "00000000-0000-4000-8000-000000000002"


def add(
    service: ProgrammeService,
    title: str,
    rule: Rule,
    targets: list[Target],
    media: str = NEWS,
    approve: bool = True,
) -> str:
    fields = {
        "title": title,
        "what": "media",
        "media_id": media,
        "text": "",
        "relay_url": "",
        "relay_duration_s": 0.0,
        "priority": "normal",
        "volume": None,
    }
    p, _ = service.save(C, fields, rule, targets)
    if approve:
        service.set_status(p["id"], "submit")
        service.set_status(p["id"], "approve")
    return str(p["id"])


def realistic_week(service: ProgrammeService) -> None:
    everyone = [Target(C)]
    add(service, "Tin sáng", Rule("daily", "06:00"), everyone)
    add(
        service,
        "Tin chiều",
        Rule("daily", "17:00", exceptions=frozenset({date(2026, 11, 26)})),
        everyone,
    )
    add(
        service,
        "Chợ phiên",
        Rule("weekly", "07:30", weekdays=frozenset({1, 4})),  # Tue, Fri
        [Target(C, hamlet="ap-1"), Target(C, hamlet="ap-2")],
        media=NOTICE,
    )


def expected_week() -> list[tuple[str, int]]:
    out = []
    for day in range(7):
        d = MONDAY + timedelta(days=day)
        out.append(("Tin sáng", us(d.replace(hour=6))))
        if d.date() != date(2026, 11, 26):
            out.append(("Tin chiều", us(d.replace(hour=17))))
        if d.weekday() in (1, 4):
            out.append(("Chợ phiên", us(d.replace(hour=7, minute=30))))
    return sorted(out, key=lambda x: x[1])


def run_week(service: ProgrammeService, clock: FakeClock, extra_ticks: int = 3) -> None:
    """Wake exactly when the alarm says (the next scheduled row), plus stray ticks."""
    end = us(MONDAY + timedelta(days=7))
    service.tick()
    while True:
        rows = service.store.query(
            "SELECT MIN(fire_us) AS t FROM occurrences WHERE status='scheduled'"
        )
        t = rows[0]["t"]
        if t is None or t >= end:
            break
        clock.advance((t - clock.now_us()) / 1e6)
        for _ in range(extra_ticks):  # the periodic tick and a duplicate timer
            service.tick()


def test_a_week_fires_every_occurrence_exactly_once_at_its_instant(world: Any) -> None:
    service, clock, rec, store = world
    realistic_week(service)
    run_week(service, clock)
    assert rec.started == expected_week()
    rows = store.query(
        "SELECT status, late_ms FROM occurrences WHERE fire_us < ?",
        [us(MONDAY + timedelta(days=7))],
    )
    assert len(rows) == len(expected_week())
    assert {r["status"] for r in rows} == {"started"} and {r["late_ms"] for r in rows} == {0}


def test_unapproved_programmes_never_fire(world: Any) -> None:
    service, clock, rec, _ = world
    pid = add(service, "Chưa duyệt", Rule("daily", "06:00"), [Target(C)], approve=False)
    clock.advance(3 * 3600)
    service.tick()
    assert rec.started == []
    service.set_status(pid, "submit")
    with pytest.raises(InvalidInput, match="say why"):
        service.set_status(pid, "return")
    service.set_status(pid, "return", "sai giờ")
    with pytest.raises(Conflict):
        service.set_status(pid, "approve")  # must be submitted again first
    assert service.get(pid)["reason"] == "sai giờ"


def test_editing_an_approved_programme_sends_it_back_and_drops_future_firings(world: Any) -> None:
    service, clock, rec, store = world
    pid = add(service, "Tin sáng", Rule("daily", "06:00"), [Target(C)])
    assert store.query("SELECT count(*) AS n FROM occurrences")[0]["n"] > 0
    p = service.get(pid)
    fields = {
        k: p[k]
        for k in (
            "title",
            "what",
            "media_id",
            "text",
            "relay_url",
            "relay_duration_s",
            "priority",
            "volume",
        )
    }
    service.save(C, fields, Rule("daily", "05:30"), [Target(C)], programme_id=pid)
    assert service.get(pid)["status"] == "submitted"
    assert store.query("SELECT count(*) AS n FROM occurrences")[0]["n"] == 0
    clock.advance(8 * 3600)
    service.tick()
    assert rec.started == []


def test_restart_plays_recent_firings_late_and_marks_old_ones_missed(world: Any) -> None:
    service, clock, rec, store = world
    add(service, "Tin sáng", Rule("daily", "06:00"), [Target(C)])
    add(service, "Tin sớm", Rule("daily", "05:00"), [Target(C)])
    service.tick()
    # the controller was down from 04:00 to 06:02
    clock.advance((us(MONDAY.replace(hour=6, minute=2)) - clock.now_us()) / 1e6)
    assert service.recover() == {"interrupted": 0, "missed": 1}
    service.tick()
    assert [t for t, _ in rec.started] == ["Tin sáng"]
    late = store.query("SELECT late_ms FROM occurrences WHERE status='started'")[0]["late_ms"]
    assert late == 120_000
    service.tick()
    assert len(rec.started) == 1  # never twice


def test_conflicts_name_the_overlap_and_the_speakers(world: Any) -> None:
    service, _, _, _ = world
    add(service, "Tin sáng", Rule("daily", "06:00"), [Target(C)])  # 15 minutes
    fields = {
        "title": "Thông báo",
        "what": "media",
        "media_id": NOTICE,
        "text": "",
        "relay_url": "",
        "relay_duration_s": 0.0,
        "priority": "priority",
        "volume": None,
    }
    _, conflicts = service.save(C, fields, Rule("daily", "06:10"), [Target(C, hamlet="ap-1")])
    assert conflicts and conflicts[0]["title"] == "Tin sáng"
    assert conflicts[0]["overlap_minutes"] == 1.0 and conflicts[0]["speakers"] == 3
    _, none = service.save(C, fields, Rule("daily", "06:20"), [Target(C, hamlet="ap-1")])
    assert none == []


@pytest.mark.parametrize(
    ("status", "counts", "outcome"),
    [
        ("done", {"played": 3}, "played"),
        ("done", {"played": 2, "offline": 1}, "played"),
        ("done", {"played": 2, "no_report": 1}, "partial"),
        ("done", {"preempted": 3}, "preempted"),
        ("done", {"missed": 3}, "skipped"),
        ("failed", {}, "failed"),
        ("stopped", {"partial": 3}, "partial"),
        ("interrupted", {}, "interrupted"),
    ],
)
def test_outcomes(status: str, counts: dict[str, int], outcome: str) -> None:
    assert outcome_of(status, "", counts)[0] == outcome


def test_calendar_shows_rule_firings_in_a_range(world: Any) -> None:
    service, _, _, _ = world
    realistic_week(service)
    cal = service.upcoming(C, us(MONDAY), us(MONDAY + timedelta(days=7)))
    assert [(c["title"], c["fire_us"]) for c in cal] == expected_week()
    with pytest.raises(InvalidInput, match="62 days"):
        service.upcoming(C, us(MONDAY), us(MONDAY + timedelta(days=90)))


def test_impossible_targets_and_media_are_refused(world: Any) -> None:
    service, _, _, store = world
    fields = {
        "title": "x",
        "what": "media",
        "media_id": NEWS,
        "text": "",
        "relay_url": "",
        "relay_duration_s": 0.0,
        "priority": "normal",
        "volume": None,
    }
    with pytest.raises(InvalidInput, match="do not exist") as err:
        service.save(C, fields, Rule("daily", "06:00"), [Target(C, hamlet="ap-99")])
    assert "ap-99" in err.value.errors[0].message
    with pytest.raises(InvalidInput, match="before the start"):
        service.save(
            C,
            fields,
            Rule("daily", "06:00", start=date(2026, 12, 2), end=date(2026, 12, 1)),
            [Target(C)],
        )
    assert store.query("SELECT count(*) AS n FROM programmes")[0]["n"] == 0


def test_a_broker_outage_at_fire_time_delays_within_grace_then_misses(world: Any) -> None:
    from loa.errors import BrokerError

    service, clock, rec, store = world
    add(service, "Tin sáng", Rule("daily", "06:00"), [Target(C)])
    add(service, "Tin trưa", Rule("daily", "11:00"), [Target(C)])
    real_start = rec.start

    def down(req: BroadcastRequest) -> str:
        raise BrokerError("the MQTT broker is not reachable; nothing was sent")

    rec.start = down  # type: ignore[method-assign]
    clock.advance((us(MONDAY.replace(hour=6)) - clock.now_us()) / 1e6)
    service.tick()
    clock.advance(60)
    service.tick()  # still down: still due, not failed
    rec.start = real_start  # type: ignore[method-assign]
    clock.advance(60)
    service.tick()  # back within the 300 s grace: plays, late
    assert rec.started == [("Tin sáng", us(MONDAY.replace(hour=6, minute=2)))]
    started = store.query("SELECT status, reason FROM occurrences WHERE status='started'")
    assert started == [{"status": "started", "reason": ""}]  # no stale "not reachable"
    rec.start = down  # type: ignore[method-assign]
    clock.advance((us(MONDAY.replace(hour=11)) - clock.now_us()) / 1e6)
    service.tick()
    clock.advance(400)
    service.tick()  # down past the grace: missed, with the reason
    row = store.query("SELECT status, reason FROM occurrences WHERE status='missed'")[0]
    assert "not reachable" in row["reason"]
