"""Programmes on the commune's schedule: saved, approved, fired once each, accounted for.

The database is the truth: every firing of an approved programme is an ``occurrences``
row keyed (programme, fire time), written ahead (``scheduler.horizon_h``). Timers only
wake :meth:`ProgrammeService.tick`, which plays what is due and records outcomes; a
periodic tick (``scheduler.tick_s``) catches whatever a timer missed (a clock step, a
blocked loop, a restart). APScheduler 3 is the alarm clock (one date job at the next
firing, with an explicit misfire grace), never the record.

On start-up, firings due within ``scheduler.grace_s`` play late (``late_ms``); older ones
are marked missed; a firing whose broadcast a crash interrupted is marked interrupted
and not replayed. A row is started at most once: the status changes from scheduled to
started in the same transaction that records the broadcast.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import anyio
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from devices.frames import Priority
from loa.clock import Clock, SystemClock
from loa.errors import BrokerError, Conflict, FieldError, InvalidInput, LoaError, NotFound
from schedules.recurrence import Rule, fires_between, next_fire, validate

from .broadcasts.dispatcher import BroadcastRequest
from .broadcasts.prefetch import Prefetcher
from .places.directory import resolve_in
from .places.targeting import Resolution, Target
from .settings import SchedulerSettings
from .store.store import Store

logger = logging.getLogger(__name__)

EDITABLE = ("draft", "returned", "submitted", "approved")
FROM_CACHE = "played from the speakers' cache while the controller was not running"
#: A finished firing's outcome is computed again for this long (late proof of play).
RECHECK_US = 600_000_000
#: A firing this close is streamed at its time rather than pushed ahead.
PREFETCH_MIN_AHEAD_US = 3_000_000
CONFLICT_WINDOW_DAYS = 14


class Player(Protocol):
    def start(self, req: BroadcastRequest) -> str: ...


class RelayStarter(Protocol):
    """(title, url, duration_s, resolution) → broadcast id: starts a relay ("tiếp sóng");
    ``also`` runs in the transaction that records it."""

    def __call__(
        self,
        title: str,
        url: str,
        seconds: float,
        where: Resolution,
        also: Callable[[str], object] | None = None,
    ) -> str: ...


def rule_json(rule: Rule) -> str:
    d = asdict(rule)
    d["start"] = rule.start.isoformat() if rule.start else None
    d["end"] = rule.end.isoformat() if rule.end else None
    d["weekdays"] = sorted(rule.weekdays)
    d["exceptions"] = sorted(x.isoformat() for x in rule.exceptions)
    return json.dumps(d)


def rule_from_json(text: str) -> Rule:
    d = json.loads(text)
    return Rule(
        kind=d["kind"],
        at=d["at"],
        timezone=d["timezone"],
        start=date.fromisoformat(d["start"]) if d["start"] else None,
        end=date.fromisoformat(d["end"]) if d["end"] else None,
        weekdays=frozenset(d["weekdays"]),
        every_days=d["every_days"],
        month_day=d["month_day"],
        exceptions=frozenset(date.fromisoformat(x) for x in d["exceptions"]),
    )


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


class ProgrammeService:
    def __init__(
        self,
        store: Store,
        player: Player,
        clock: Clock,
        settings: SchedulerSettings,
        *,
        audit: Callable[..., None] = lambda *a, **k: None,
        relay: RelayStarter | None = None,
        prefetcher: Prefetcher | None = None,
    ) -> None:
        self.relay = relay
        self.prefetcher = prefetcher
        self._cancels: list[tuple[tuple[str, int], Priority]] = []
        self.store = store
        self.db = store.db
        self.player = player
        self.clock = clock
        self.settings = settings
        self.audit = audit
        self._alarm: AsyncIOScheduler | None = None
        self._wake = anyio.Event()

    # --- saving -----------------------------------------------------------------------

    def save(
        self,
        commune: str,
        fields: dict[str, Any],
        rule: Rule,
        targets: list[Target],
        programme_id: str | None = None,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Create or edit; returns the programme and the conflicts it has (not refused).

        An edit of an approved programme sends it back for approval and drops its
        future firings; past ones stay as they happened.
        """
        row_commune = self.store.require_commune(commune)
        validate(rule)
        if any(t.commune != commune for t in targets):
            raise InvalidInput(
                "a commune's programme reaches only that commune's speakers",
                errors=[FieldError("targets", "target outside this commune", "scope")],
            )
        resolve_in(self.store, targets)  # unknown hamlets, zones, devices are refused here
        if fields.get("media_id"):
            media = self.store.media(fields["media_id"])
            if media.commune_id not in (None, commune):
                raise NotFound(f"media {fields['media_id']!r} does not exist in this library")
        now = self.clock.now_us()
        columns = {
            **fields,
            "commune_id": commune,
            "targets": json.dumps([t.as_dict() for t in targets]),
            "rule": rule_json(rule),
            "updated_us": now,
        }
        del row_commune
        with self.db.atomic():
            if programme_id is None:
                programme_id = str(uuid.uuid4())
                self.db.table("programmes").insert(
                    {
                        "id": programme_id,
                        "status": "draft",
                        "reason": "",
                        "created_us": now,
                        "approved_us": None,
                        "deleted_us": None,
                        **columns,
                    },
                    pk="id",
                )
            else:
                current = self._row(programme_id)
                status = "submitted" if current["status"] == "approved" else current["status"]
                self.db.table("programmes").update(
                    programme_id, {**columns, "status": status, "approved_us": None}
                )
                self._drop_future(programme_id, now)
        self.audit("programme.save", programme=programme_id, commune=commune)
        return self.get(programme_id), self.conflicts(programme_id)

    def province_bulletin(
        self,
        province: str,
        communes: list[str],
        fields: dict[str, Any],
        rule_for: Callable[[str], Rule],
    ) -> list[dict[str, Any]]:
        """One programme per chosen commune, approved at province level, on each commune's
        own schedule (its time zone) and fitted in by its priority like any other."""
        known = {
            r["id"]
            for r in self.store.query("SELECT id FROM communes WHERE province_id=?", [province])
        }
        if not known:
            raise NotFound(f"province {province!r} does not exist")
        unknown = [c for c in communes if c not in known]
        if unknown or not communes:
            raise InvalidInput(
                "choose communes of this province",
                errors=[
                    FieldError("communes", f"{c!r} is not a commune of {province}", "unknown")
                    for c in unknown or ["(none)"]
                ],
            )
        for commune in communes:  # every rule checked before anything is saved
            validate(rule_for(commune))
        made = []
        for commune in communes:
            p, _ = self.save(commune, fields, rule_for(commune), [Target(commune)])
            with self.db.atomic():
                self.db.table("programmes").update(
                    p["id"],
                    {
                        "status": "approved",
                        "approved_us": self.clock.now_us(),
                        "reason": f"approved by the province ({province})",
                    },
                )
            made.append(self.get(p["id"]))
        self.audit("province.bulletin", province=province, communes=",".join(communes))
        self.materialize()
        self._wake.set()
        return made

    def set_status(self, programme_id: str, action: str, reason: str = "") -> dict[str, Any]:
        """submit (draft/returned → submitted), approve (submitted → approved), return."""
        p = self._row(programme_id)
        allowed = {
            "submit": ({"draft", "returned"}, "submitted"),
            "approve": ({"submitted"}, "approved"),
            "return": ({"submitted", "approved"}, "returned"),
        }
        sources, target = allowed[action]
        if p["status"] not in sources:
            raise Conflict(f"a {p['status']} programme cannot be {target}")
        if action == "return" and not reason.strip():
            raise InvalidInput(
                "say why it is returned", errors=[FieldError("reason", "required", "required")]
            )
        now = self.clock.now_us()
        with self.db.atomic():
            self.db.table("programmes").update(
                programme_id,
                {
                    "status": target,
                    "reason": reason.strip(),
                    "approved_us": now if target == "approved" else None,
                },
            )
            if target != "approved":
                self._drop_future(programme_id, now)
        self.audit(f"programme.{action}", programme=programme_id)
        if target == "approved":
            self.materialize()
            self._wake.set()
        return self.get(programme_id)

    def delete(self, programme_id: str) -> None:
        self._row(programme_id)
        now = self.clock.now_us()
        with self.db.atomic():
            self.db.table("programmes").update(programme_id, {"deleted_us": now})
            self._drop_future(programme_id, now)
        self.audit("programme.delete", programme=programme_id)

    def _drop_future(self, programme_id: str, now: int) -> None:
        """Future firings go; any of them already pushed to speakers is called off."""
        for r in self.store.query(
            "SELECT f.fire_us, p.priority FROM prefetches f JOIN programmes p"
            " ON p.id = f.programme_id WHERE f.programme_id=? AND f.fire_us>?"
            " AND f.cancelled_us IS NULL",
            [programme_id, now],
        ):
            self._cancels.append(((programme_id, r["fire_us"]), Priority[r["priority"].upper()]))
        self.db.execute(
            "DELETE FROM occurrences WHERE programme_id=? AND status='scheduled' AND fire_us>?",
            [programme_id, now],
        )

    # --- reading -------------------------------------------------------------------------

    def _row(self, programme_id: str) -> dict[str, Any]:
        rows = self.store.query(
            "SELECT * FROM programmes WHERE id=? AND deleted_us IS NULL", [programme_id]
        )
        if not rows:
            raise NotFound(f"programme {programme_id!r} does not exist")
        return rows[0]

    def get(self, programme_id: str) -> dict[str, Any]:
        p = self._row(programme_id)
        out = dict(p)
        out["targets"] = json.loads(p["targets"])
        out["when"] = json.loads(p["rule"])
        del out["rule"]
        nxt = next_fire(rule_from_json(p["rule"]), _dt(self.clock.now_us()))
        out["next_fire_us"] = _us(nxt) if nxt else None
        return out

    def of_commune(self, commune: str) -> list[dict[str, Any]]:
        self.store.require_commune(commune)
        rows = self.store.query(
            "SELECT id FROM programmes WHERE commune_id=? AND deleted_us IS NULL"
            " ORDER BY created_us",
            [commune],
        )
        return [self.get(r["id"]) for r in rows]

    def upcoming(self, commune: str, start_us: int, end_us: int) -> list[dict[str, Any]]:
        """Every firing in a range, for a calendar: recorded rows and what the rules say."""
        self.store.require_commune(commune)
        if end_us <= start_us or end_us - start_us > 62 * 86_400_000_000:
            raise InvalidInput(
                "the range must end after it starts and span at most 62 days",
                errors=[FieldError("to", "bad range", "range")],
            )
        recorded = {
            (r["programme_id"], r["fire_us"]): r
            for r in self.store.query(
                "SELECT * FROM occurrences WHERE commune_id=? AND fire_us>? AND fire_us<=?",
                [commune, start_us, end_us],
            )
        }
        out = []
        for p in self.of_commune(commune):
            rule = rule_from_json(rule_json_of(p))
            for t in fires_between(rule, _dt(start_us), _dt(end_us)):
                key = (p["id"], _us(t))
                row = recorded.pop(key, None)
                out.append(
                    {
                        "programme_id": p["id"],
                        "title": p["title"],
                        "priority": p["priority"],
                        "fire_us": _us(t),
                        "status": row["status"]
                        if row
                        else ("scheduled" if p["status"] == "approved" else f"not {p['status']}"),
                        "broadcast_id": row["broadcast_id"] if row else None,
                    }
                )
        for (pid, fire), row in recorded.items():  # fired, then the rule was edited
            out.append(
                {
                    "programme_id": pid,
                    "title": "",
                    "priority": "",
                    "fire_us": fire,
                    "status": row["status"],
                    "broadcast_id": row["broadcast_id"],
                }
            )
        return sorted(out, key=lambda o: o["fire_us"])

    def history(self, commune: str, limit: int = 200) -> list[dict[str, Any]]:
        self.store.require_commune(commune)
        return self.store.query(
            "SELECT o.*, p.title FROM occurrences o JOIN programmes p ON p.id = o.programme_id"
            " WHERE o.commune_id=? AND o.status != 'scheduled' ORDER BY o.fire_us DESC LIMIT ?",
            [commune, limit],
        )

    def conflicts(self, programme_id: str) -> list[dict[str, Any]]:
        """Overlaps in the next two weeks with other programmes on a common speaker."""
        return self._conflicts(self._row(programme_id), programme_id)

    def check(
        self, commune: str, fields: dict[str, Any], rule: Rule, targets: list[Target]
    ) -> list[dict[str, Any]]:
        """The conflicts a programme would have, before it is saved (nothing is saved)."""
        self.store.require_commune(commune)
        validate(rule)
        resolve_in(self.store, targets)
        row = {
            **fields,
            "commune_id": commune,
            "targets": json.dumps([t.as_dict() for t in targets]),
            "rule": rule_json(rule),
        }
        return self._conflicts(row, "")

    def _conflicts(self, me: dict[str, Any], programme_id: str) -> list[dict[str, Any]]:
        mine = self._intervals(me)
        if not mine:
            return []
        my_devices = self._devices(me)
        out = []
        for other in self.store.query(
            "SELECT * FROM programmes WHERE commune_id=? AND id!=? AND deleted_us IS NULL"
            " AND status != 'returned'",
            [me["commune_id"], programme_id],
        ):
            shared = my_devices & self._devices(other)
            if not shared:
                continue
            for a0, a1 in mine:
                for b0, b1 in self._intervals(other):
                    overlap = min(a1, b1) - max(a0, b0)
                    if overlap > 0:
                        out.append(
                            {
                                "programme_id": other["id"],
                                "title": other["title"],
                                "priority": other["priority"],
                                "at_us": max(a0, b0),
                                "overlap_minutes": round(overlap / 60e6, 1),
                                "speakers": len(shared),
                                "devices": sorted(shared)[:20],
                            }
                        )
        return sorted(out, key=lambda c: c["at_us"])

    def _devices(self, p: dict[str, Any]) -> set[str]:
        targets = [Target(**t) for t in json.loads(p["targets"])]
        return {d.id for d in resolve_in(self.store, targets).devices}

    def _duration_us(self, p: dict[str, Any]) -> int:
        if p["what"] == "relay":
            return int((p["relay_duration_s"] or 0) * 1e6)
        if p["media_id"]:
            return int(self.store.media(p["media_id"]).duration_ms) * 1000
        return 0

    def _intervals(self, p: dict[str, Any]) -> list[tuple[int, int]]:
        now = self.clock.now_us()
        length = self._duration_us(p)
        rule = rule_from_json(p["rule"])
        end = _dt(now) + timedelta(days=CONFLICT_WINDOW_DAYS)
        return [(_us(t), _us(t) + length) for t in fires_between(rule, _dt(now), end)]

    # --- firing ---------------------------------------------------------------------------

    def materialize(self) -> int:
        """Write the rows of every approved programme's firings up to the horizon."""
        now = self.clock.now_us()
        horizon = _dt(now) + timedelta(hours=self.settings.horizon_h)
        grace = int(self.settings.grace_s * 1e6)
        rows = []
        for p in self.store.query(
            "SELECT id, commune_id, rule, approved_us FROM programmes"
            " WHERE status='approved' AND deleted_us IS NULL"
        ):
            since = _dt(max(p["approved_us"] or now, now - grace) - 1)
            for t in fires_between(rule_from_json(p["rule"]), since, horizon):
                rows.append(
                    {
                        "programme_id": p["id"],
                        "fire_us": _us(t),
                        "commune_id": p["commune_id"],
                        "status": "scheduled",
                        "late_ms": 0,
                        "broadcast_id": None,
                        "reason": "",
                        "started_us": None,
                    }
                )
        if rows:
            with self.db.atomic():
                self.db.table("occurrences").insert_all(
                    rows, pk=("programme_id", "fire_us"), ignore=True
                )
        return len(rows)

    def recover(self) -> dict[str, int]:
        """At start-up: interrupted firings are marked so, old ones missed (none replayed)."""
        now = self.clock.now_us()
        grace = int(self.settings.grace_s * 1e6)
        with self.db.atomic():
            interrupted = self.db.execute(
                "UPDATE occurrences SET status='interrupted', reason='the controller stopped"
                " during the programme' WHERE status='started' AND broadcast_id IN"
                " (SELECT id FROM broadcasts WHERE status='interrupted')"
            ).rowcount
            # A firing pushed ahead and armed on speakers played from their cache even
            # with the controller down: the tick records it (not missed).
            missed = self.db.execute(
                "UPDATE occurrences SET status='missed', reason='the controller was not"
                " running at its time' WHERE status='scheduled' AND fire_us < ?"
                " AND NOT EXISTS (SELECT 1 FROM prefetches f JOIN play_arms a"
                " ON a.broadcast_id = f.broadcast_id AND a.state='armed'"
                " WHERE f.programme_id = occurrences.programme_id"
                " AND f.fire_us = occurrences.fire_us AND f.cancelled_us IS NULL)",
                [now - grace],
            ).rowcount
        return {"interrupted": interrupted, "missed": missed}

    def tick(self) -> int:
        """Materialize, start what is due, record what finished; returns how many started."""
        self.materialize()
        now = self.clock.now_us()
        grace = int(self.settings.grace_s * 1e6)
        started = 0
        due = self.store.query(
            "SELECT o.*, p.title, p.what, p.media_id, p.relay_url, p.relay_duration_s,"
            " p.priority, p.volume, p.targets, p.status AS p_status"
            " FROM occurrences o JOIN programmes p ON p.id = o.programme_id"
            " WHERE o.status='scheduled' AND o.fire_us <= ? ORDER BY o.fire_us",
            [now],
        )
        for o in due:
            key = [o["programme_id"], o["fire_us"]]
            if o["p_status"] != "approved":
                self._set(key, "skipped", "the programme is no longer approved")
            elif now - o["fire_us"] > grace and self._armed(o):
                started += self._start(o, now, record_only=True)
                continue
            elif now - o["fire_us"] > grace:
                why = f"due {(now - o['fire_us']) / 1e6:.0f} s ago"
                self._set(key, "missed", f"{why}: {o['reason']}" if o["reason"] else why)
            elif self._blocked(o, now):
                if now - o["fire_us"] > self.settings.queue_max_s * 1e6:
                    self._set(key, "skipped", "the speakers were busy with the same class")
                else:
                    continue
            else:
                started += self._start(o, now)
                continue
            # Not played: speakers that armed it ahead must not play it on their own.
            self._cancels.append(
                ((o["programme_id"], o["fire_us"]), Priority[o["priority"].upper()])
            )
        self._record_outcomes()
        return started

    def _blocked(self, o: dict[str, Any], now: int) -> bool:
        """Queue policy: a same-class broadcast still plays on one of these speakers."""
        if self.settings.same_priority != "queue":
            return False
        targets = [Target(**t) for t in json.loads(o["targets"])]
        devices = [d.id for d in resolve_in(self.store, targets).devices]
        if not devices:
            return False
        busy = {
            r["device_id"]
            for r in self.store.query(
                "SELECT d.device_id FROM broadcasts b JOIN deliveries d"
                " ON d.broadcast_id = b.id WHERE b.status IN ('streaming', 'finishing')"
                " AND b.priority=? AND b.end_pts_us>?",
                [o["priority"], now],
            )
        }
        return not busy.isdisjoint(devices)

    def _armed(self, o: dict[str, Any]) -> bool:
        """Some speaker armed this firing's pushed PLAY (so it played from its cache)."""
        if self.prefetcher is None or o["what"] == "relay":
            return False
        cached = self.prefetcher.prefetched((o["programme_id"], o["fire_us"]))
        return cached is not None and bool(cached.armed)

    def _start(self, o: dict[str, Any], now: int, *, record_only: bool = False) -> int:
        """Start a firing: the broadcast row and the occurrence's move to ``started`` are
        one transaction (a crash between them can neither lose nor double it)."""
        key = [o["programme_id"], o["fire_us"]]
        targets = [Target(**t) for t in json.loads(o["targets"])]
        late_ms = max(0, (now - o["fire_us"]) // 1000)

        marked: list[str] = []
        cached = None
        if o["what"] != "relay" and self.prefetcher is not None:
            cached = self.prefetcher.prefetched((key[0], key[1]))
        # Armed speakers started it on their own (the controller was late or away).
        from_cache = record_only or bool(cached and cached.armed and now >= cached.at_us)

        def mark(bid: str) -> None:
            marked.append(bid)
            cur = self.db.execute(
                "UPDATE occurrences SET status='started', broadcast_id=?, started_us=?,"
                " late_ms=?, reason=? WHERE programme_id=? AND fire_us=? AND status='scheduled'",
                [bid, now, late_ms, FROM_CACHE if from_cache else "", *key],
            )
            if not cur.rowcount:
                raise Conflict("this firing was already started")

        try:
            resolution = resolve_in(self.store, targets)
            if o["what"] == "relay":
                if self.relay is None:
                    raise LoaError("relaying is not available in this controller")
                bid = self.relay(
                    o["title"], o["relay_url"], o["relay_duration_s"], resolution, also=mark
                )
            else:
                media = self.store.media(o["media_id"])
                bid = self.player.start(
                    BroadcastRequest(
                        media,
                        resolution,
                        Priority[o["priority"].upper()],
                        o["title"],
                        volume=o["volume"],
                        cached=cached,
                        requested_us=None if from_cache else o["fire_us"],
                        also=mark,
                        record_only=record_only,
                    )
                )
        except Conflict:
            return 0
        except BrokerError as exc:
            # The broker is away (a restart, an outage): keep it due; the next tick
            # tries again until the grace runs out, when it is marked missed.
            self.db.execute(
                "UPDATE occurrences SET reason=? WHERE programme_id=? AND fire_us=?",
                [exc.message, *key],
            )
            return 0
        except LoaError as exc:
            self._set(key, "failed", exc.message)
            self._cancels.append(((key[0], key[1]), Priority[o["priority"].upper()]))
            return 0
        if not marked:  # a player that does not take ``also`` (a stand-in): mark it now
            try:
                mark(bid)
            except Conflict:
                return 0
        self.audit("programme.fire", programme=o["programme_id"], broadcast=bid)
        return 1

    def _set(self, key: list[Any], status: str, reason: str) -> None:
        self.db.execute(
            "UPDATE occurrences SET status=?, reason=? WHERE programme_id=? AND fire_us=?",
            [status, reason, *key],
        )

    def _record_outcomes(self) -> None:
        """Outcomes of firings whose broadcast is over, from its deliveries; those that
        ended in the last ``RECHECK_US`` are computed again, so proof of play that came
        late (speakers back after a broker outage) still counts."""
        since = self.clock.now_us() - RECHECK_US
        for o in self.store.query(
            "SELECT o.programme_id, o.fire_us, o.status, o.reason, b.status AS b_status,"
            " b.error FROM occurrences o JOIN broadcasts b ON b.id = o.broadcast_id"
            " WHERE b.status NOT IN ('streaming', 'finishing') AND (o.status='started'"
            " OR (o.status IN ('played', 'partial', 'preempted', 'skipped')"
            " AND o.started_us > ?))",
            [since],
        ):
            key = [o["programme_id"], o["fire_us"]]
            counts = {
                r["outcome"]: r["n"]
                for r in self.store.query(
                    "SELECT d.outcome, count(*) AS n FROM deliveries d JOIN occurrences o"
                    " ON o.broadcast_id = d.broadcast_id WHERE o.programme_id=? AND o.fire_us=?"
                    " GROUP BY d.outcome",
                    key,
                )
            }
            status, reason = outcome_of(o["b_status"], o["error"], counts)
            if (o["reason"] or "").startswith(FROM_CACHE):
                reason = f"{FROM_CACHE}; {reason}" if reason else FROM_CACHE
            if (status, reason) != (o["status"], o["reason"]):
                self._set(key, status, reason)

    # --- the alarm clock ---------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Recover, then tick whenever APScheduler's alarm or the periodic tick says so."""
        counts = self.recover()
        if any(counts.values()):
            logger.warning("schedule after restart: %s", counts)
        alarm = AsyncIOScheduler(timezone="UTC")
        alarm.start()
        self._alarm = alarm
        task_status.started()
        try:
            while True:
                try:
                    self.tick()
                except Exception:  # one bad row must not stop the schedule
                    logger.exception("schedule tick failed")
                await self.push_ahead()
                # A fresh event first, then the alarm: the job sets whichever event the
                # loop waits on now (binding the old one made firings wait for the tick).
                self._wake = anyio.Event()
                with anyio.move_on_after(self._set_alarm()):
                    await self._wake.wait()
        finally:
            alarm.shutdown(wait=False)
            self._alarm = None

    async def push_ahead(self) -> int:
        """Call off dropped firings, then push the next ``prefetch_s`` of audio ahead."""
        if self.prefetcher is None:
            return 0
        pushed = 0
        try:
            while self._cancels:
                key, priority = self._cancels[0]
                await self.prefetcher.cancel(key, priority)
                self._cancels.pop(0)
            await self.prefetcher.repair()  # speakers back from a restart, or missing items
            if not self.settings.prefetch_s:
                return 0
            now = self.clock.now_us()
            for o in self.store.query(
                "SELECT o.programme_id, o.fire_us, p.media_id, p.priority, p.targets, p.title,"
                " p.volume FROM occurrences o JOIN programmes p ON p.id = o.programme_id"
                " LEFT JOIN prefetches f ON f.programme_id = o.programme_id"
                " AND f.fire_us = o.fire_us WHERE o.status='scheduled' AND p.status='approved'"
                " AND p.what != 'relay' AND p.media_id IS NOT NULL AND f.programme_id IS NULL"
                " AND o.fire_us > ? AND o.fire_us <= ? ORDER BY o.fire_us",
                [now + PREFETCH_MIN_AHEAD_US, now + int(self.settings.prefetch_s * 1e6)],
            ):
                targets = [Target(**t) for t in json.loads(o["targets"])]
                try:
                    await self.prefetcher.push(
                        (o["programme_id"], o["fire_us"]),
                        self.store.media(o["media_id"]),
                        resolve_in(self.store, targets),
                        Priority[o["priority"].upper()],
                        o["title"],
                        o["volume"],
                    )
                    pushed += 1
                except BrokerError as exc:  # try again at the next tick
                    logger.warning("prefetch postponed: %s", exc.message)
                    break
                except LoaError as exc:  # it streams (or fails with the reason) at its time
                    logger.warning("prefetch of %s failed: %s", o["programme_id"], exc.message)
        except BrokerError as exc:
            logger.warning("prefetch cancel postponed: %s", exc.message)
        return pushed

    def _set_alarm(self) -> float:
        """One date job at the next firing; it only wakes the tick (the rows decide).

        Returns how long the loop may sleep: the periodic tick, or less when a firing
        is due sooner on the controller's clock (the clock may be offset from the
        machine's, on which APScheduler runs: the job is placed by the time left).
        """
        now = self.clock.now_us()
        rows = self.store.query(  # overdue rows (queued behind a busy speaker) wait a tick
            "SELECT MIN(fire_us) AS t FROM occurrences WHERE status='scheduled' AND fire_us>?",
            [now],
        )
        t = rows[0]["t"] if rows else None
        if t is None:
            return float(self.settings.tick_s)
        left_s = max(0.0, (t - now) / 1e6)
        if self._alarm is not None:
            self._alarm.add_job(
                self._ring,
                trigger="date",
                run_date=SystemClock().now() + timedelta(seconds=left_s),
                id="next-firing",
                replace_existing=True,
                misfire_grace_time=max(1, int(self.settings.grace_s)),
                coalesce=True,
            )
        return float(min(self.settings.tick_s, left_s + 0.001))

    async def _ring(self) -> None:
        """APScheduler's job: a coroutine, so it runs on the loop (a plain function would
        run in a worker thread, where setting an anyio event is not safe)."""
        self._wake.set()


def outcome_of(status: str, error: str, counts: dict[str, int]) -> tuple[str, str]:
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


def rule_json_of(p: dict[str, Any]) -> str:
    when = dict(p["when"])
    return json.dumps(when)
