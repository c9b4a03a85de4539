"""The firing engine: every firing of an approved programme played once, on time, and
accounted for.

The database is the truth: every firing is an occurrence row keyed (programme, fire
time), written ahead (``horizon_h``). Timers only wake :meth:`Engine.tick`, which plays
what is due and records outcomes; a periodic tick (``tick_s``) catches whatever a timer
missed (a clock step, a blocked loop, a restart). APScheduler 3 is the alarm clock
(:mod:`schedules.alarm`), never the record.

On start-up, firings due within ``grace_s`` play late (``late_ms``); older ones are
marked missed; a firing whose broadcast a crash interrupted is marked interrupted and
not replayed. A row is started at most once: the status changes from scheduled to
started in the same transaction that records the broadcast (:attr:`Start.mark`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

import anyio
import anyio.abc

from loa.errors import BrokerError, Conflict, LoaError

from .alarm import Alarm
from .occurrences import (
    Clock,
    Due,
    Occurrence,
    OccurrenceStore,
    Policy,
    Start,
    StartBroadcast,
    dt_of,
    us_of,
)
from .recurrence import fires_between

logger = logging.getLogger(__name__)

FROM_CACHE = "played from the speakers' cache while the controller was not running"
#: A finished firing's outcome is computed again for this long (late proof of play).
RECHECK_US = 600_000_000


def outcome_of(status: str, error: str, counts: Mapping[str, int]) -> tuple[str, str]:
    """An occurrence's outcome from its broadcast and deliveries (pure)."""
    if status == "failed":
        return "failed", error or "the broadcast failed"
    if status == "interrupted":
        return "interrupted", error
    played = counts.get("played", 0)
    partial = counts.get("partial", 0)
    preempted = counts.get("preempted", 0)
    reached = played + partial + preempted
    total = sum(counts.values())
    if status == "stopped":
        return "partial", "stopped by an operator"
    if preempted and not played:
        return "preempted", f"{preempted} of {total} speakers were taken by a higher class"
    if played and played == reached and played == total - counts.get("offline", 0):
        return "played", ""
    if played or partial:
        return "partial", f"{played} of {total} speakers played it all"
    return "skipped", "no speaker played it"


class Engine:
    """Writes firings ahead, starts them when due, settles their outcomes.

    ``call_off`` hears of every due firing that will not be played (skipped, missed,
    failed), so speakers that armed it ahead can be told; ``on_fired`` of every firing
    started (with its broadcast id).
    """

    def __init__(
        self,
        store: OccurrenceStore,
        start: StartBroadcast,
        clock: Clock,
        policy: Policy,
        *,
        call_off: Callable[[Due], None] = lambda due: None,
        on_fired: Callable[[Due, str], None] = lambda due, broadcast_id: None,
    ) -> None:
        self.store = store
        self.start = start
        self.clock = clock
        self.policy = policy
        self.call_off = call_off
        self.on_fired = on_fired
        self.alarm: Alarm | None = None

    def wake(self) -> None:
        """Tick now (a programme was approved): the alarm's loop runs at once."""
        if self.alarm is not None:
            self.alarm.ring()

    # --- rows -----------------------------------------------------------------------------

    def materialize(self) -> int:
        """Write the rows of every approved programme's firings up to the horizon."""
        now = self.clock.now_us()
        horizon = dt_of(now) + timedelta(hours=self.policy.horizon_h)
        grace = int(self.policy.grace_s * 1e6)
        rows = []
        for p in self.store.approved_rules():
            since = dt_of(max(p.approved_us or now, now - grace) - 1)
            for t in fires_between(p.rule, since, horizon):
                rows.append(Occurrence(p.programme_id, us_of(t), p.commune_id))
        if rows:
            self.store.write_ahead(rows)
        return len(rows)

    def recover(self) -> dict[str, int]:
        """At start-up: interrupted firings are marked so, old ones missed (none replayed)."""
        grace = int(self.policy.grace_s * 1e6)
        interrupted, missed = self.store.recover(self.clock.now_us() - grace)
        return {"interrupted": interrupted, "missed": missed}

    # --- firing ---------------------------------------------------------------------------

    def tick(self) -> int:
        """Materialize, start what is due, record what finished; returns how many started."""
        self.materialize()
        now = self.clock.now_us()
        grace = int(self.policy.grace_s * 1e6)
        started = 0
        for due in self.store.due(now):
            late_us = now - due.fire_us
            if not due.approved:
                self.store.settle(due.key, "skipped", "the programme is no longer approved")
            elif late_us > grace and self.store.armed_at(due) is not None:
                started += self._start(due, now, record_only=True)
                continue
            elif late_us > grace:
                why = f"due {late_us / 1e6:.0f} s ago"
                self.store.settle(due.key, "missed", f"{why}: {due.reason}" if due.reason else why)
            elif self.policy.same_priority == "queue" and self.store.busy(due, now):
                if late_us > self.policy.queue_max_s * 1e6:
                    self.store.settle(
                        due.key, "skipped", "the speakers were busy with the same class"
                    )
                else:
                    continue  # queued behind it: the next tick tries again
            else:
                started += self._start(due, now)
                continue
            # Not played: speakers that armed it ahead must not play it on their own.
            self.call_off(due)
        self.record_outcomes()
        return started

    def _start(self, due: Due, now: int, *, record_only: bool = False) -> int:
        """Start a firing: the broadcast row and the occurrence's move to ``started`` are
        one transaction (a crash between them can neither lose nor double it)."""
        late_ms = max(0, (now - due.fire_us) // 1000)
        armed_at = self.store.armed_at(due)
        # Armed speakers started it on their own (the controller was late or away).
        from_cache = record_only or (armed_at is not None and now >= armed_at)
        marked: list[str] = []

        def mark(broadcast_id: str) -> None:
            marked.append(broadcast_id)
            if not self.store.mark_started(
                due.key,
                broadcast_id,
                started_us=now,
                late_ms=late_ms,
                reason=FROM_CACHE if from_cache else "",
            ):
                raise Conflict("this firing was already started")

        try:
            broadcast_id = self.start(due, Start(record_only, from_cache, mark))
        except Conflict:
            return 0
        except BrokerError as exc:
            # The broker is away (a restart, an outage): keep it due; the next tick
            # tries again until the grace runs out, when it is marked missed.
            self.store.note(due.key, exc.message)
            return 0
        except LoaError as exc:
            self.store.settle(due.key, "failed", exc.message)
            self.call_off(due)
            return 0
        if not marked:  # a starter that did not run ``mark`` itself: mark it now
            try:
                mark(broadcast_id)
            except Conflict:
                return 0
        self.on_fired(due, broadcast_id)
        return 1

    def record_outcomes(self) -> None:
        """Outcomes of firings whose broadcast is over, from its deliveries; those that
        ended in the last ``RECHECK_US`` are computed again, so proof of play that came
        late (speakers back after a broker outage) still counts."""
        for o in self.store.finished(self.clock.now_us() - RECHECK_US):
            status, reason = outcome_of(o.broadcast_status, o.broadcast_error, o.counts)
            if (o.reason or "").startswith(FROM_CACHE):
                reason = f"{FROM_CACHE}; {reason}" if reason else FROM_CACHE
            if (status, reason) != (o.status, o.reason):
                self.store.settle(o.key, status, reason)

    # --- the alarm clock --------------------------------------------------------------------

    async def run(
        self,
        *,
        machine_now: Callable[[], datetime],
        after_tick: Callable[[], Awaitable[object]] | None = None,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Recover, then tick whenever the alarm or the periodic tick says so.

        ``machine_now`` is the machine's own time, on which APScheduler runs (the
        controller's clock may be offset from it); ``after_tick`` runs after each tick
        (pushing audio ahead).
        """
        counts = self.recover()
        if any(counts.values()):
            logger.warning("schedule after restart: %s", counts)
        with Alarm(machine_now, misfire_grace_s=self.policy.grace_s) as alarm:
            self.alarm = alarm
            task_status.started()
            try:
                while True:
                    try:
                        self.tick()
                    except Exception:  # one bad row must not stop the schedule
                        logger.exception("schedule tick failed")
                    if after_tick is not None:
                        await after_tick()
                    await alarm.sleep(self._until_next(), self.policy.tick_s)
            finally:
                self.alarm = None

    def _until_next(self) -> float | None:
        """Seconds to the next firing on the controller's clock (None: none scheduled).
        Overdue rows (queued behind a busy speaker) wait for the periodic tick."""
        now = self.clock.now_us()
        t = self.store.next_fire(now)
        return None if t is None else max(0.0, (t - now) / 1e6)
