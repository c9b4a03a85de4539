"""The firing engine alone (schedules/): an in-memory occurrence store, a fake clock and
a recording starter stand in for the control plane, through the engine's own
interfaces. Firings are written ahead, started once at their instant, late or missed
by the grace, queued, failed, recorded from the speakers' cache, settled from their
deliveries; the alarm wakes the loop at the firing on an offset clock."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import pytest

from loa.clock import FakeClock, SkewedClock, SystemClock
from loa.errors import BrokerError, Conflict, LoaError
from schedules.engine import FROM_CACHE, RECHECK_US, Engine
from schedules.occurrences import (
    Approved,
    Clock,
    Due,
    Finished,
    Key,
    Occurrence,
    OccurrenceStore,
    Start,
    us_of,
)
from schedules.recurrence import Rule

VN = ZoneInfo("Asia/Ho_Chi_Minh")
MONDAY = datetime(2026, 11, 23, 0, 0, tzinfo=VN)


@dataclass(frozen=True)
class Policy:
    grace_s: float = 300.0
    tick_s: float = 15.0
    horizon_h: float = 48.0
    same_priority: str = "queue"
    queue_max_s: float = 1800.0


@dataclass
class Row:
    commune_id: str
    status: str = "scheduled"
    reason: str = ""
    late_ms: int = 0
    broadcast_id: str | None = None
    started_us: int | None = None


@dataclass
class Broadcast:
    status: str = "streaming"
    error: str = ""
    counts: dict[str, int] = field(default_factory=dict)


class MemoryStore:
    """The occurrence store in memory, keeping the contract the engine relies on."""

    def __init__(self) -> None:
        self.approved: dict[str, Approved] = {}
        self.unapproved: set[str] = set()  # rules withdrawn after rows were written
        self.rows: dict[Key, Row] = {}
        self.armed: dict[Key, int] = {}
        self.busy_keys: set[Key] = set()
        self.broadcasts: dict[str, Broadcast] = {}

    def approved_rules(self) -> Sequence[Approved]:
        return list(self.approved.values())

    def write_ahead(self, firings: Sequence[Occurrence]) -> None:
        for f in firings:
            self.rows.setdefault((f.programme_id, f.fire_us), Row(f.commune_id))

    def due(self, now_us: int) -> Sequence[Due]:
        return [
            Due(k[0], k[1], k[0] not in self.unapproved, r.reason, {"title": k[0]})
            for k, r in sorted(self.rows.items(), key=lambda kv: kv[0][1])
            if r.status == "scheduled" and k[1] <= now_us
        ]

    def next_fire(self, now_us: int) -> int | None:
        ahead = [k[1] for k, r in self.rows.items() if r.status == "scheduled" and k[1] > now_us]
        return min(ahead, default=None)

    def armed_at(self, due: Due) -> int | None:
        return self.armed.get(due.key)

    def busy(self, due: Due, now_us: int) -> bool:
        return due.key in self.busy_keys

    def mark_started(
        self, key: Key, broadcast_id: str, *, started_us: int, late_ms: int, reason: str
    ) -> bool:
        row = self.rows[key]
        if row.status != "scheduled":
            return False
        row.status, row.broadcast_id, row.started_us = "started", broadcast_id, started_us
        row.late_ms, row.reason = late_ms, reason
        return True

    def settle(self, key: Key, status: str, reason: str) -> None:
        self.rows[key].status, self.rows[key].reason = status, reason

    def note(self, key: Key, reason: str) -> None:
        self.rows[key].reason = reason

    def recover(self, missed_before_us: int) -> tuple[int, int]:
        interrupted = missed = 0
        for k, r in self.rows.items():
            b = self.broadcasts.get(r.broadcast_id or "")
            if r.status == "started" and b is not None and b.status == "interrupted":
                r.status, r.reason = "interrupted", "the controller stopped"
                interrupted += 1
            elif r.status == "scheduled" and k[1] < missed_before_us and k not in self.armed:
                r.status, r.reason = "missed", "the controller was not running"
                missed += 1
        return interrupted, missed

    def finished(self, since_us: int) -> Sequence[Finished]:
        out = []
        for k, r in self.rows.items():
            b = self.broadcasts.get(r.broadcast_id or "")
            if b is None or b.status in ("streaming", "finishing"):
                continue
            settled = r.status in ("played", "partial", "preempted", "skipped")
            if r.status == "started" or (settled and (r.started_us or 0) > since_us):
                out.append(Finished(k[0], k[1], r.status, r.reason, b.status, b.error, b.counts))
        return out

    def statuses(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows.values():
            out[r.status] = out.get(r.status, 0) + 1
        return out


class Starter:
    """Records each start; marks the row in "its transaction" like the dispatcher."""

    def __init__(self, clock: Clock, store: MemoryStore) -> None:
        self.clock = clock
        self.store = store
        self.started: list[tuple[str, int, Start]] = []
        self.fail: Exception | None = None
        self.event = anyio.Event()

    def __call__(self, due: Due, start: Start) -> str:
        if self.fail is not None:
            raise self.fail
        bid = str(uuid.uuid4())
        start.mark(bid)
        self.store.broadcasts[bid] = Broadcast()
        self.started.append((due.programme_id, self.clock.now_us(), start))
        self.event.set()
        return bid


def world(policy: Policy | None = None) -> tuple[Engine, MemoryStore, Starter, FakeClock]:
    clock = FakeClock(us_of(MONDAY - timedelta(hours=1)))
    store = MemoryStore()
    starter = Starter(clock, store)
    engine = Engine(store, starter, clock, policy or Policy())
    return engine, store, starter, clock


def approve(store: MemoryStore, pid: str, rule: Rule, at_us: int) -> None:
    store.approved[pid] = Approved(pid, "vi-tan", rule, at_us)


def at(hour: int, minute: int = 0, day: int = 0) -> int:
    return us_of(MONDAY.replace(hour=hour, minute=minute) + timedelta(days=day))


def test_the_memory_store_keeps_the_engine_contract() -> None:
    store: OccurrenceStore = MemoryStore()  # mypy checks the Protocol is met
    assert store.next_fire(0) is None


def test_three_days_fire_once_each_at_their_instant_despite_duplicate_ticks() -> None:
    engine, store, starter, clock = world()
    approve(store, "tin-sang", Rule("daily", "06:00"), clock.now_us())
    approve(store, "tin-chieu", Rule("daily", "17:00"), clock.now_us())
    engine.tick()
    # written ahead up to the horizon (48 h), not beyond
    assert sorted(k[1] for k in store.rows) == [at(6), at(17), at(6, day=1), at(17, day=1)]
    end = at(0, day=3)
    while (t := store.next_fire(clock.now_us())) is not None and t < end:
        clock.advance((t - clock.now_us()) / 1e6)
        assert engine.tick() == 1
        assert engine.tick() == 0  # a duplicate timer never doubles it
    expected = [
        (pid, at(h, day=d)) for d in range(3) for pid, h in (("tin-sang", 6), ("tin-chieu", 17))
    ]
    assert [(p, t) for p, t, _ in starter.started] == expected
    assert all(not s.record_only and not s.from_cache for _, _, s in starter.started)
    assert {r.late_ms for r in store.rows.values() if r.status == "started"} == {0}


def test_a_firing_is_not_written_before_its_approval() -> None:
    engine, store, _, clock = world()
    clock.advance(8 * 3600)  # 07:00: today's 06:00 has passed
    approve(store, "tin-sang", Rule("daily", "06:00"), clock.now_us())
    engine.materialize()
    assert min(k[1] for k in store.rows) == at(6, day=1)


def test_restart_plays_within_the_grace_late_and_marks_older_missed() -> None:
    engine, store, starter, clock = world()
    approve(store, "tin-sang", Rule("daily", "06:00"), clock.now_us())
    approve(store, "tin-som", Rule("daily", "05:00"), clock.now_us())
    engine.materialize()
    clock.advance((at(6, 2) - clock.now_us()) / 1e6)  # down from 04:00 to 06:02
    assert engine.recover() == {"interrupted": 0, "missed": 1}
    assert engine.tick() == 1
    assert [p for p, _, _ in starter.started] == ["tin-sang"]
    assert store.rows[("tin-sang", at(6))].late_ms == 120_000
    assert store.rows[("tin-som", at(5))].status == "missed"


def test_a_crash_during_a_firing_marks_it_interrupted_and_never_replays_it() -> None:
    engine, store, starter, clock = world()
    approve(store, "tin-sang", Rule("daily", "06:00"), clock.now_us())
    clock.advance((at(6) - clock.now_us()) / 1e6)
    engine.tick()
    bid = store.rows[("tin-sang", at(6))].broadcast_id
    assert bid is not None
    store.broadcasts[bid].status = "interrupted"  # the controller died mid-programme
    clock.advance(60)
    assert engine.recover() == {"interrupted": 1, "missed": 0}
    assert engine.tick() == 0 and len(starter.started) == 1


def test_broker_away_keeps_it_due_within_the_grace_then_missed_with_the_reason() -> None:
    engine, store, starter, clock = world(Policy(grace_s=120))
    called_off: list[Key] = []
    engine.call_off = lambda due: called_off.append(due.key)
    approve(store, "tin-sang", Rule("daily", "06:00"), clock.now_us())
    starter.fail = BrokerError("the MQTT broker is not reachable; nothing was sent")
    clock.advance((at(6) - clock.now_us()) / 1e6)
    assert engine.tick() == 0
    row = store.rows[("tin-sang", at(6))]
    assert (row.status, row.reason) == ("scheduled", starter.fail.message)
    clock.advance(121)
    engine.tick()
    assert row.status == "missed"
    assert row.reason == "due 121 s ago: the MQTT broker is not reachable; nothing was sent"
    assert called_off == [("tin-sang", at(6))]


def test_a_refused_start_fails_with_its_message_and_is_called_off() -> None:
    engine, store, starter, clock = world()
    called_off: list[Key] = []
    engine.call_off = lambda due: called_off.append(due.key)
    approve(store, "tiep-song", Rule("daily", "06:00"), clock.now_us())
    starter.fail = LoaError("relaying is not available in this controller")
    clock.advance((at(6) - clock.now_us()) / 1e6)
    assert engine.tick() == 0
    row = store.rows[("tiep-song", at(6))]
    assert (row.status, row.reason) == ("failed", "relaying is not available in this controller")
    assert called_off == [("tiep-song", at(6))]


def test_a_firing_started_elsewhere_is_neither_doubled_nor_reported_fired() -> None:
    engine, store, _, clock = world()
    fired: list[str] = []
    engine.on_fired = lambda due, bid: fired.append(bid)
    approve(store, "tin-sang", Rule("daily", "06:00"), clock.now_us())
    clock.advance((at(6) - clock.now_us()) / 1e6)
    engine.materialize()
    dues = store.due(clock.now_us())

    def raced(due: Due, start: Start) -> str:
        store.mark_started(due.key, "other", started_us=0, late_ms=0, reason="")
        start.mark("mine")  # the row is no longer scheduled
        return "mine"

    engine.start = raced
    assert len(dues) == 1 and engine.tick() == 0
    assert fired == [] and store.rows[dues[0].key].broadcast_id == "other"


def test_mark_refuses_a_second_start_of_the_same_firing() -> None:
    engine, store, _, clock = world()
    approve(store, "tin-sang", Rule("daily", "06:00"), clock.now_us())
    clock.advance((at(6) - clock.now_us()) / 1e6)
    marks: list[Start] = []

    def keep(due: Due, start: Start) -> str:
        start.mark("b-1")
        marks.append(start)
        return "b-1"

    engine.start = keep
    assert engine.tick() == 1
    with pytest.raises(Conflict, match="already started"):
        marks[0].mark("b-2")
    assert store.rows[("tin-sang", at(6))].broadcast_id == "b-1"


def test_a_starter_that_does_not_mark_is_marked_after_it_returns() -> None:
    engine, store, _, clock = world()
    approve(store, "tin-sang", Rule("daily", "06:00"), clock.now_us())
    fired: list[tuple[str, str]] = []
    engine.on_fired = lambda due, bid: fired.append((due.programme_id, bid))
    engine.start = lambda due, start: "b-1"
    clock.advance((at(6) - clock.now_us()) / 1e6)
    assert engine.tick() == 1
    assert store.rows[("tin-sang", at(6))].broadcast_id == "b-1"
    assert fired == [("tin-sang", "b-1")]  # heard once (the audit log's "programme.fire")


def test_queued_behind_a_busy_speaker_then_skipped_past_queue_max() -> None:
    engine, store, _, clock = world(Policy(queue_max_s=600, grace_s=3600))
    approve(store, "cho-phien", Rule("daily", "07:30"), clock.now_us())
    approve(store, "thong-bao", Rule("daily", "08:00"), clock.now_us())
    store.busy_keys = {("cho-phien", at(7, 30)), ("thong-bao", at(8))}
    clock.advance((at(7, 30) - clock.now_us()) / 1e6)
    assert engine.tick() == 0
    assert store.rows[("cho-phien", at(7, 30))].status == "scheduled"  # waits
    clock.advance(300)
    store.busy_keys.discard(("cho-phien", at(7, 30)))  # the other broadcast ended
    assert engine.tick() == 1
    assert store.rows[("cho-phien", at(7, 30))].late_ms == 300_000
    clock.advance((at(8) - clock.now_us()) / 1e6)
    assert engine.tick() == 0  # queued
    clock.advance(601)  # still busy past queue_max_s
    assert engine.tick() == 0
    row = store.rows[("thong-bao", at(8))]
    assert (row.status, row.reason) == ("skipped", "the speakers were busy with the same class")


def test_preempt_policy_does_not_wait_for_a_busy_speaker() -> None:
    engine, store, _, clock = world(Policy(same_priority="preempt"))
    approve(store, "tin-sang", Rule("daily", "06:00"), clock.now_us())
    store.busy_keys = {("tin-sang", at(6))}
    clock.advance((at(6) - clock.now_us()) / 1e6)
    assert engine.tick() == 1


def test_a_withdrawn_programme_s_due_firing_is_skipped_and_called_off() -> None:
    engine, store, starter, clock = world()
    called_off: list[Key] = []
    engine.call_off = lambda due: called_off.append(due.key)
    approve(store, "tin-sang", Rule("daily", "06:00"), clock.now_us())
    engine.materialize()
    store.unapproved.add("tin-sang")
    clock.advance((at(6) - clock.now_us()) / 1e6)
    assert engine.tick() == 0 and starter.started == []
    row = store.rows[("tin-sang", at(6))]
    assert (row.status, row.reason) == ("skipped", "the programme is no longer approved")
    assert called_off == [("tin-sang", at(6))]


def test_armed_speakers_past_the_grace_are_recorded_from_their_cache() -> None:
    engine, store, starter, clock = world(Policy(grace_s=10))
    approve(store, "tin-sang", Rule("daily", "06:00"), clock.now_us())
    engine.materialize()
    store.armed[("tin-sang", at(6))] = at(6) + 1_500_000
    clock.advance((at(6) - clock.now_us()) / 1e6 + 30)  # the controller was away
    assert engine.recover() == {"interrupted": 0, "missed": 0}  # armed: not missed
    assert engine.tick() == 1
    _, _, start = starter.started[0]
    assert start.record_only and start.from_cache
    assert store.rows[("tin-sang", at(6))].reason == FROM_CACHE


def test_armed_and_on_time_streams_to_the_rest_not_from_cache() -> None:
    engine, store, starter, clock = world()
    approve(store, "tin-sang", Rule("daily", "06:00"), clock.now_us())
    engine.materialize()
    store.armed[("tin-sang", at(6))] = at(6) + 1_500_000
    clock.advance((at(6) - clock.now_us()) / 1e6)
    engine.tick()
    _, _, start = starter.started[0]
    assert not start.record_only and not start.from_cache


def test_outcomes_are_settled_from_deliveries_and_rechecked_when_proof_comes_late() -> None:
    engine, store, _, clock = world()
    approve(store, "tin-sang", Rule("daily", "06:00"), clock.now_us())
    clock.advance((at(6) - clock.now_us()) / 1e6)
    engine.tick()
    row = store.rows[("tin-sang", at(6))]
    b = store.broadcasts[row.broadcast_id or ""]
    b.status, b.counts = "done", {"played": 1, "no_report": 2}
    engine.tick()
    assert (row.status, row.reason) == ("partial", "1 of 3 speakers played it all")
    b.counts = {"played": 3}  # speakers back after an outage report late
    clock.advance(60)
    engine.tick()
    assert (row.status, row.reason) == ("played", "")
    b.counts = {"played": 1, "no_report": 2}
    clock.advance(RECHECK_US / 1e6)  # too late now: kept as it is
    engine.tick()
    assert row.status == "played"


def test_from_cache_is_kept_in_the_settled_reason() -> None:
    engine, store, _, clock = world(Policy(grace_s=10))
    approve(store, "tin-sang", Rule("daily", "06:00"), clock.now_us())
    engine.materialize()
    store.armed[("tin-sang", at(6))] = at(6)
    clock.advance((at(6) - clock.now_us()) / 1e6 + 30)
    engine.tick()
    row = store.rows[("tin-sang", at(6))]
    b = store.broadcasts[row.broadcast_id or ""]
    b.status, b.counts = "done", {"played": 2, "partial": 1}
    engine.tick()
    assert row.reason == f"{FROM_CACHE}; 2 of 3 speakers played it all"


async def test_the_alarm_wakes_the_loop_at_the_firing_on_an_offset_clock() -> None:
    """tick_s is long, so only APScheduler's job (placed on the machine's clock, while
    the controller's clock runs a day ahead) can start the firing on time."""
    clock = SkewedClock(SystemClock(), offset_s=86_400.0)
    store = MemoryStore()
    starter = Starter(clock, store)
    engine = Engine(store, starter, clock, Policy(tick_s=300))
    fire = clock.now_us() + 400_000
    store.write_ahead([Occurrence("ngay-mai", fire, "vi-tan")])
    async with anyio.create_task_group() as tg:
        await tg.start(
            lambda task_status: engine.run(machine_now=SystemClock().now, task_status=task_status)
        )
        with anyio.fail_after(5):
            await starter.event.wait()
        tg.cancel_scope.cancel()
    (_, started_us, _) = starter.started[0]
    assert fire <= started_us
    assert engine.alarm is None  # the scheduler is shut down with the loop


async def test_wake_ticks_at_once_after_an_approval() -> None:
    clock = SkewedClock(SystemClock())
    store = MemoryStore()
    engine = Engine(store, Starter(clock, store), clock, Policy(tick_s=300))
    ticked: list[anyio.Event] = [anyio.Event(), anyio.Event()]
    rows: list[int] = []

    async def after_tick() -> None:
        rows.append(len(store.rows))
        if len(rows) <= len(ticked):
            ticked[len(rows) - 1].set()

    async with anyio.create_task_group() as tg:
        await tg.start(
            lambda task_status: engine.run(
                machine_now=SystemClock().now, after_tick=after_tick, task_status=task_status
            )
        )
        with anyio.fail_after(5):
            await ticked[0].wait()
            approve(store, "tin-sang", Rule("daily", "06:00", timezone="UTC"), clock.now_us())
            engine.wake()
            await ticked[1].wait()
        tg.cancel_scope.cancel()
    assert rows[0] == 0 and rows[1] >= 2  # the new rule's firings were written at once


def test_the_engine_loads_without_the_control_plane() -> None:
    """schedules/ speaks through its own interfaces: importing it loads nothing of
    broadcaster/ (nor an MQTT client)."""
    code = (
        "import sys, schedules.engine, schedules.alarm, schedules.occurrences\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('broadcaster', 'aiomqtt', 'paho', 'devices'))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert out.stdout.strip() == ""
