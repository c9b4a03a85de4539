"""The schedule engine's occurrence store on Loa's SQLite store (``occurrences``,
joined with ``programmes``, ``broadcasts``, ``deliveries`` and the prefetch tables)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from schedules.occurrences import Approved, Due, Finished, Key, Occurrence
from schedules.recurrence import rule_from_json

from ..broadcasts.prefetch import Prefetcher
from ..places.directory import resolve_in
from ..places.targeting import Target
from ..store.store import Store


def targets_of(row: Mapping[str, Any]) -> list[Target]:
    """A programme row's stored targets."""
    return [Target(**t) for t in json.loads(row["targets"])]


class OccurrenceRows:
    """:class:`schedules.occurrences.OccurrenceStore` over the ``occurrences`` table."""

    def __init__(self, store: Store, prefetcher: Prefetcher | None = None) -> None:
        self.store = store
        self.db = store.db
        self.prefetcher = prefetcher

    def approved_rules(self) -> list[Approved]:
        return [
            Approved(p["id"], p["commune_id"], rule_from_json(p["rule"]), p["approved_us"])
            for p in self.store.query(
                "SELECT id, commune_id, rule, approved_us FROM programmes"
                " WHERE status='approved' AND deleted_us IS NULL"
            )
        ]

    def write_ahead(self, firings: Sequence[Occurrence]) -> None:
        rows = [
            {
                "programme_id": f.programme_id,
                "fire_us": f.fire_us,
                "commune_id": f.commune_id,
                "status": "scheduled",
                "late_ms": 0,
                "broadcast_id": None,
                "reason": "",
                "started_us": None,
            }
            for f in firings
        ]
        with self.db.atomic():
            self.db.table("occurrences").insert_all(
                rows, pk=("programme_id", "fire_us"), ignore=True
            )

    def due(self, now_us: int) -> list[Due]:
        return [
            Due(o["programme_id"], o["fire_us"], o["p_status"] == "approved", o["reason"], o)
            for o in self.store.query(
                "SELECT o.*, p.title, p.what, p.media_id, p.relay_url, p.relay_duration_s,"
                " p.priority, p.volume, p.targets, p.status AS p_status"
                " FROM occurrences o JOIN programmes p ON p.id = o.programme_id"
                " WHERE o.status='scheduled' AND o.fire_us <= ? ORDER BY o.fire_us",
                [now_us],
            )
        ]

    def next_fire(self, now_us: int) -> int | None:
        rows = self.store.query(
            "SELECT MIN(fire_us) AS t FROM occurrences WHERE status='scheduled' AND fire_us>?",
            [now_us],
        )
        t = rows[0]["t"] if rows else None
        return None if t is None else int(t)

    def armed_at(self, due: Due) -> int | None:
        """When the speakers that armed this firing's pushed PLAY sound it."""
        if self.prefetcher is None or due.programme["what"] == "relay":
            return None
        cached = self.prefetcher.prefetched(due.key)
        return cached.at_us if cached is not None and cached.armed else None

    def busy(self, due: Due, now_us: int) -> bool:
        """Queue policy: a same-class broadcast still plays on one of these speakers."""
        devices = [d.id for d in resolve_in(self.store, targets_of(due.programme)).devices]
        if not devices:
            return False
        busy = {
            r["device_id"]
            for r in self.store.query(
                "SELECT d.device_id FROM broadcasts b JOIN deliveries d"
                " ON d.broadcast_id = b.id WHERE b.status IN ('streaming', 'finishing')"
                " AND b.priority=? AND b.end_pts_us>?",
                [due.programme["priority"], now_us],
            )
        }
        return not busy.isdisjoint(devices)

    def mark_started(
        self, key: Key, broadcast_id: str, *, started_us: int, late_ms: int, reason: str
    ) -> bool:
        cur = self.db.execute(
            "UPDATE occurrences SET status='started', broadcast_id=?, started_us=?,"
            " late_ms=?, reason=? WHERE programme_id=? AND fire_us=? AND status='scheduled'",
            [broadcast_id, started_us, late_ms, reason, *key],
        )
        return bool(cur.rowcount)

    def settle(self, key: Key, status: str, reason: str) -> None:
        self.db.execute(
            "UPDATE occurrences SET status=?, reason=? WHERE programme_id=? AND fire_us=?",
            [status, reason, *key],
        )

    def note(self, key: Key, reason: str) -> None:
        self.db.execute(
            "UPDATE occurrences SET reason=? WHERE programme_id=? AND fire_us=?",
            [reason, *key],
        )

    def recover(self, missed_before_us: int) -> tuple[int, int]:
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
                [missed_before_us],
            ).rowcount
        return interrupted, missed

    def finished(self, since_us: int) -> list[Finished]:
        out = []
        for o in self.store.query(
            "SELECT o.programme_id, o.fire_us, o.status, o.reason, b.status AS b_status,"
            " b.error FROM occurrences o JOIN broadcasts b ON b.id = o.broadcast_id"
            " WHERE b.status NOT IN ('streaming', 'finishing') AND (o.status='started'"
            " OR (o.status IN ('played', 'partial', 'preempted', 'skipped')"
            " AND o.started_us > ?))",
            [since_us],
        ):
            counts = {
                r["outcome"]: r["n"]
                for r in self.store.query(
                    "SELECT d.outcome, count(*) AS n FROM deliveries d JOIN occurrences o"
                    " ON o.broadcast_id = d.broadcast_id WHERE o.programme_id=? AND o.fire_us=?"
                    " GROUP BY d.outcome",
                    [o["programme_id"], o["fire_us"]],
                )
            }
            out.append(
                Finished(
                    o["programme_id"],
                    o["fire_us"],
                    o["status"],
                    o["reason"],
                    o["b_status"],
                    o["error"],
                    counts,
                )
            )
        return out
