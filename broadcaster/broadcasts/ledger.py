"""Broadcasts and their per-device deliveries: the proof-of-play ledger."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from devices.messages import PlayReport, parse
from loa.errors import NotFound, ProtocolError

from ..store.rows import DeviceRow
from ..store.store import Store
from .outcome import COMPUTED, RUNNING, final_status, notes_of

#: Proof of play for a stream no broadcast row names yet is kept this long.
PENDING_KEEP_US = 24 * 3600 * 1_000_000
PENDING_MAX = 100_000


class Ledger:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    def create(
        self,
        broadcast: dict[str, Any],
        communes: list[str],
        deliveries: list[dict[str, Any]],
        streams: list[dict[str, Any]] | None = None,
        also: Callable[[str], object] | None = None,
    ) -> None:
        """Insert a broadcast, its streams and one pending delivery per device, atomically.

        ``also`` runs in the same transaction (a firing marks its occurrence started: both
        or neither). Proof of play that arrived before the row existed is applied now.
        """
        if streams is None:
            streams = [
                {
                    "stream_id": broadcast["stream_id"],
                    "broadcast_id": broadcast["id"],
                    "codec": "opus",
                    "chunks": broadcast.get("chunks", 0),
                }
            ]
        with self.db.atomic():
            self.db.table("broadcasts").insert(broadcast, pk="id")
            self.db.table("streams").insert_all(streams, pk="stream_id")
            self.db.table("broadcast_communes").insert_all(
                [{"broadcast_id": broadcast["id"], "commune_id": c} for c in communes]
            )
            self.db.table("deliveries").insert_all(deliveries, pk=("broadcast_id", "device_id"))
            if also is not None:
                also(str(broadcast["id"]))
            self._reconcile([str(st["stream_id"]) for st in streams])

    def set_stream_chunks(self, stream_id: str, chunks: int) -> None:
        """How many AUDIO frames a stream turned out to have (a live one, once over)."""
        self.db.table("streams").update(stream_id, {"chunks": chunks})

    def online_now(self, device_ids: list[str]) -> set[str]:
        """Which of these speakers are online now (a cached resolution may be older)."""
        online = {r["id"] for r in self.store.query("SELECT id FROM devices WHERE online=1")}
        return online.intersection(device_ids)

    def add_deliveries(self, deliveries: list[dict[str, Any]]) -> None:
        """One pending row per targeted speaker; a report that came first is kept, and its
        row becomes a targeted one."""
        with self.db.atomic():
            for d in deliveries:
                self.db.execute(
                    "INSERT INTO deliveries (broadcast_id, device_id, commune_id, hamlet_id,"
                    " targeted, online_at_start, outcome) VALUES (?, ?, ?, ?, 1, ?, ?)"
                    " ON CONFLICT (broadcast_id, device_id) DO UPDATE SET targeted=1,"
                    " online_at_start=1",
                    [
                        d["broadcast_id"],
                        d["device_id"],
                        d["commune_id"],
                        d["hamlet_id"],
                        d["online_at_start"],
                        d["outcome"],
                    ],
                )

    def update(self, broadcast_id: str, **values: Any) -> None:
        self.db.table("broadcasts").update(broadcast_id, values)

    def by_stream(self, stream_id: str) -> dict[str, Any] | None:
        rows = self.store.query(
            "SELECT b.* FROM streams s JOIN broadcasts b ON b.id = s.broadcast_id"
            " WHERE s.stream_id=?",
            [stream_id],
        )
        return rows[0] if rows else None

    def record_report(
        self, device_id: str, commune_id: str, hamlet_id: str, report: PlayReport, now_us: int
    ) -> str:
        """Apply a device's proof of play; returns 'recorded', 'untargeted' or 'pending'
        (no broadcast names the stream yet: kept, and applied when one does)."""
        b = self.by_stream(report.stream)
        if b is None:
            self.db.table("pending_reports").insert(
                {
                    "stream_id": report.stream,
                    "device_id": device_id,
                    "commune_id": commune_id,
                    "report": report.model_dump_json(),
                    "at_us": now_us,
                },
                pk=("stream_id", "device_id"),
                replace=True,
            )
            return "pending"
        values = {
            "outcome": report.outcome,
            "started_us": report.started_us,
            "ended_us": report.ended_us,
            "frames_played": report.frames_played,
            "frames_missing": report.frames_missing,
            "frames_late": report.frames_late,
            "reason": report.reason,
            "reported_us": now_us,
            "source": report.source,
        }
        with self.db.atomic():
            assignments = ", ".join(f"{k}=?" for k in values)
            sql = f"UPDATE deliveries SET {assignments} WHERE broadcast_id=? AND device_id=?"  # noqa: S608
            cur = self.db.execute(sql, [*values.values(), b["id"], device_id])
            if cur.rowcount:
                if b["status"] not in RUNNING:  # proof that came after the close counts too
                    self._recompute(b)
                return "recorded"
            self.db.table("deliveries").insert(
                {
                    "broadcast_id": b["id"],
                    "device_id": device_id,
                    "commune_id": commune_id,
                    "hamlet_id": hamlet_id,
                    "targeted": 0,
                    "online_at_start": 1,
                    **values,
                },
                pk=("broadcast_id", "device_id"),
            )
        return "untargeted"

    def _reconcile(self, stream_ids: list[str]) -> int:
        """Apply kept reports for these streams (their broadcast row now exists)."""
        marks = ",".join("?" * len(stream_ids))
        rows = self.store.query(
            f"SELECT * FROM pending_reports WHERE stream_id IN ({marks})",  # noqa: S608
            stream_ids,
        )
        for r in rows:
            try:
                report = parse(PlayReport, r["report"].encode())
            except ProtocolError:
                continue
            hamlet = self.store.device_hamlet(r["device_id"])
            self.record_report(r["device_id"], r["commune_id"], hamlet, report, r["at_us"])
        self.db.execute(f"DELETE FROM pending_reports WHERE stream_id IN ({marks})", stream_ids)  # noqa: S608
        return len(rows)

    def prune_pending(self, now_us: int) -> int:
        """Drop kept reports nobody claimed within a day (and keep the table bounded)."""
        cur = self.db.execute(
            "DELETE FROM pending_reports WHERE at_us < ? OR rowid NOT IN"
            " (SELECT rowid FROM pending_reports ORDER BY at_us DESC LIMIT ?)",
            [now_us - PENDING_KEEP_US, PENDING_MAX],
        )
        return int(cur.rowcount)

    def _recompute(self, b: dict[str, Any]) -> None:
        rows = self.store.query(
            "SELECT targeted, online_at_start, outcome FROM deliveries WHERE broadcast_id=?",
            [b["id"]],
        )
        ending = "done" if b["status"] in COMPUTED else b["status"]
        status, reason = final_status(ending, "", rows, notes_of(b["error"] or ""))
        self.update(b["id"], status=status, error=reason)

    def close(self, broadcast_id: str, ending: str, error: str, notes: str = "") -> str:
        """Close the deliveries nobody reported on, then the broadcast, its status
        computed from its deliveries (:func:`broadcaster.broadcasts.outcome.final_status`)."""
        with self.db.atomic():
            self.finalize(broadcast_id)
            rows = self.store.query(
                "SELECT targeted, online_at_start, outcome FROM deliveries WHERE broadcast_id=?",
                [broadcast_id],
            )
            status, reason = final_status(ending, error, rows, notes)
            self.update(broadcast_id, status=status, error=reason)
        return status

    def sweep_interrupted(self) -> int:
        """At start-up: broadcasts a previous run left streaming are closed as interrupted."""
        rows = self.store.query(
            "SELECT id FROM broadcasts WHERE status IN ('streaming', 'finishing')"
        )
        for r in rows:
            self.finalize(r["id"])
            self.update(
                r["id"], status="interrupted", error="the controller stopped during the broadcast"
            )
        return len(rows)

    def finalize(self, broadcast_id: str) -> None:
        """Close deliveries nobody reported on: offline at start, or no report."""
        with self.db.atomic():
            self.db.execute(
                "UPDATE deliveries SET outcome=CASE WHEN online_at_start=1 THEN 'no_report'"
                " ELSE 'offline' END, reason=CASE WHEN online_at_start=1"
                " THEN 'no proof of play received' ELSE 'speaker was offline' END"
                " WHERE broadcast_id=? AND outcome='pending'",
                [broadcast_id],
            )

    def outcome_counts(self, broadcast_id: str) -> dict[str, int]:
        """How many targeted speakers ended with each outcome (for the log)."""
        return {
            r["outcome"]: r["n"]
            for r in self.store.query(
                "SELECT outcome, count(*) AS n FROM deliveries WHERE broadcast_id=?"
                " GROUP BY outcome",
                [broadcast_id],
            )
        }

    def get(self, broadcast_id: str) -> dict[str, Any]:
        rows = self.store.query("SELECT * FROM broadcasts WHERE id=?", [broadcast_id])
        if not rows:
            raise NotFound(f"broadcast {broadcast_id!r} does not exist")
        b = rows[0]
        b["targets"] = json.loads(b["targets"])
        b["communes"] = [
            r["commune_id"]
            for r in self.store.query(
                "SELECT commune_id FROM broadcast_communes WHERE broadcast_id=?", [broadcast_id]
            )
        ]
        b["streams"] = self.store.query(
            "SELECT stream_id, codec, chunks FROM streams WHERE broadcast_id=? ORDER BY codec DESC",
            [broadcast_id],
        )
        b["deliveries"] = self.store.query(
            "SELECT device_id, commune_id, hamlet_id, targeted, online_at_start, outcome,"
            " started_us, ended_us, frames_played, frames_missing, frames_late, reason, source"
            " FROM deliveries WHERE broadcast_id=? ORDER BY commune_id, hamlet_id, device_id",
            [broadcast_id],
        )
        for d in b["deliveries"]:
            d["targeted"] = bool(d["targeted"])
            d["online_at_start"] = bool(d["online_at_start"])
        b["summary"] = summarize(b["deliveries"])
        return b

    def recent(self, commune_id: str, limit: int = 50) -> list[dict[str, Any]]:
        return self.store.query(
            "SELECT b.id, b.title, b.priority, b.status, b.created_us, b.start_pts_us,"
            " b.end_pts_us FROM broadcasts b JOIN broadcast_communes bc ON bc.broadcast_id=b.id"
            " WHERE bc.commune_id=? ORDER BY b.created_us DESC LIMIT ?",
            [commune_id, limit],
        )


def summarize(deliveries: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per hamlet (``commune/hamlet``): targeted, played, missed, pending, untargeted."""
    out: dict[str, dict[str, int]] = {}
    for d in deliveries:
        key = f"{d['commune_id']}/{d['hamlet_id']}"
        s = out.setdefault(
            key,
            {
                "targeted": 0,
                "played": 0,
                "partial": 0,
                "missed": 0,
                "offline": 0,
                "pending": 0,
                "untargeted": 0,
            },
        )
        if not d["targeted"]:
            s["untargeted"] += 1
            continue
        s["targeted"] += 1
        outcome = d["outcome"]
        if outcome == "played":
            s["played"] += 1
        elif outcome == "partial":
            s["partial"] += 1
        elif outcome == "offline":
            s["offline"] += 1
        elif outcome == "pending":
            s["pending"] += 1
        else:
            s["missed"] += 1
    return out


def delivery_row(broadcast_id: str, device: DeviceRow, online: set[str]) -> dict[str, Any]:
    """A pending delivery: one per targeted speaker of a broadcast."""
    return {
        "broadcast_id": broadcast_id,
        "device_id": device.id,
        "commune_id": device.commune_id,
        "hamlet_id": device.hamlet_id,
        "targeted": 1,
        "online_at_start": int(device.id in online),
        "outcome": "pending",
    }
