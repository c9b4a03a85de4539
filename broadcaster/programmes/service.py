"""Programmes on a commune's schedule: saved, checked for conflicts, approved, read
back as a calendar and a history; the schedule engine (:mod:`schedules.engine`) fires
them, wired here to the store, the dispatcher, the relay and the prefetcher.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import anyio
import anyio.abc

from devices.frames import Priority
from loa.clock import Clock, SystemClock
from loa.errors import Conflict, FieldError, InvalidInput, NotFound
from schedules.engine import Engine
from schedules.occurrences import Due, dt_of, us_of
from schedules.recurrence import (
    Rule,
    fires_between,
    next_fire,
    rule_from_dict,
    rule_from_json,
    rule_json,
    validate,
)

from ..broadcasts.prefetch import Prefetcher
from ..places.directory import resolve_in
from ..places.targeting import Target
from ..settings import SchedulerSettings
from ..store.store import Store
from .ahead import AheadPlanner
from .conflicts import conflicts
from .firing import Launcher, Player, RelayStarter
from .rows import OccurrenceRows


class ProgrammeService:
    """A commune's programmes, and the engine that fires them (started by :meth:`run`)."""

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
        self.prefetcher = prefetcher
        self.store = store
        self.db = store.db
        self.clock = clock
        self.settings = settings
        self.audit = audit
        self.ahead = AheadPlanner(store, prefetcher, clock, settings)
        self.engine = Engine(
            OccurrenceRows(store, prefetcher),
            Launcher(store, player, relay=relay, prefetcher=prefetcher),
            clock,
            settings,
            call_off=self._call_off,
            on_fired=self._fired,
        )

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
        self.store.require_commune(commune)
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
        self.engine.wake()
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
            self.engine.wake()
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
        self.ahead.call_off_future(programme_id, now)
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
        nxt = next_fire(rule_from_json(p["rule"]), dt_of(self.clock.now_us()))
        out["next_fire_us"] = us_of(nxt) if nxt else None
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
            rule = rule_from_dict(p["when"])
            for t in fires_between(rule, dt_of(start_us), dt_of(end_us)):
                key = (p["id"], us_of(t))
                row = recorded.pop(key, None)
                out.append(
                    {
                        "programme_id": p["id"],
                        "title": p["title"],
                        "priority": p["priority"],
                        "fire_us": us_of(t),
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
        return conflicts(self.store, self._row(programme_id), programme_id, self.clock.now_us())

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
        return conflicts(self.store, row, "", self.clock.now_us())

    def _call_off(self, due: Due) -> None:
        self.ahead.call_off(due.key, Priority[due.programme["priority"].upper()])

    def _fired(self, due: Due, broadcast_id: str) -> None:
        self.audit("programme.fire", programme=due.programme_id, broadcast=broadcast_id)

    # --- firing (the schedule engine) ----------------------------------------------------

    def follow_timezone(self, commune: str, old: str, new: str) -> int:
        """The commune's time zone changed (set wrong at first, say): its programmes that
        followed the commune's zone now fire at the same local times in the new one —
        their future firings written ahead are dropped (called off where pushed) and
        written again. A programme given its own zone keeps it. Returns how many moved."""
        if old == new:
            return 0
        now = self.clock.now_us()
        moved = 0
        with self.db.atomic():
            for row in self.store.query(
                "SELECT id, rule FROM programmes WHERE commune_id=? AND deleted_us IS NULL",
                [commune],
            ):
                rule = rule_from_json(row["rule"])
                if rule.timezone != old:
                    continue
                self.db.table("programmes").update(
                    row["id"], {"rule": rule_json(replace(rule, timezone=new))}
                )
                self._drop_future(row["id"], now)
                moved += 1
        if moved:
            self.audit("programme.timezone", commune=commune, moved=moved, zone=new)
            self.materialize()
            self.engine.wake()
        return moved

    def materialize(self) -> int:
        """Write the rows of every approved programme's firings up to the horizon."""
        return self.engine.materialize()

    def recover(self) -> dict[str, int]:
        """At start-up: interrupted firings are marked so, old ones missed (none replayed)."""
        return self.engine.recover()

    def tick(self) -> int:
        """Materialize, start what is due, record what finished; returns how many started."""
        return self.engine.tick()

    async def push_ahead(self) -> int:
        """Call off dropped firings, then push the next ``prefetch_s`` of audio ahead."""
        return await self.ahead.push_ahead()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Recover, then tick whenever APScheduler's alarm or the periodic tick says so;
        audio is pushed ahead after every tick."""
        await self.engine.run(
            machine_now=SystemClock().now, after_tick=self.push_ahead, task_status=task_status
        )
