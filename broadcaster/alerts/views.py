"""Reading alerts: one with its per-speaker and per-hamlet accountability, a commune's
list, and the red banner of what sounds now (read-only; the service changes them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loa.errors import LoaError

from .board import _public, hamlet_board, speaker_board
from .records import AlertRecords

Rows = list[dict[str, Any]]


class AlertViews:
    def __init__(self, records: AlertRecords) -> None:
        self.records = records
        self.store = records.store

    def by_key(self, commune: str, client_key: str) -> dict[str, Any] | None:
        """The alert a form already created with this key (None if none)."""
        if not client_key:
            return None
        rows = self.store.query(
            "SELECT id FROM alerts WHERE commune_id=? AND client_key=?", [commune, client_key]
        )
        return self.get(rows[0]["id"]) if rows else None

    def list(self, commune: str, limit: int = 50) -> Rows:
        self.store.require_commune(commune)
        rows = self.store.query(
            "SELECT * FROM alerts WHERE commune_id=? ORDER BY created_us DESC LIMIT ?",
            [commune, limit],
        )
        return [_public(r) for r in rows]

    def active(self, communes: Sequence[str]) -> Rows:
        """Alerts sounding now in these communes, as the red banner shows them: what,
        where (places by name), since when."""
        if not communes:
            return []
        marks = ",".join("?" * len(communes))
        rows = self.store.query(
            f"SELECT * FROM alerts WHERE status='active' AND commune_id IN ({marks})"  # noqa: S608
            " ORDER BY confirmed_us DESC",
            communes,
        )
        out = []
        for r in rows:
            a = _public(r)
            names = {h["id"]: h["name"] for h in self.store.hamlets(r["commune_id"])}
            commune = self.store.require_commune(r["commune_id"])["name"]
            places = [
                names.get(t.get("hamlet", ""), "") or t.get("zone") or t.get("device") or commune
                for t in a["targets"]
            ]
            out.append(
                {
                    "id": a["id"],
                    "commune_id": a["commune_id"],
                    "type_name": a["type_name"],
                    "risk": a["risk"],
                    "title": a["title"],
                    "where": ", ".join(dict.fromkeys(places)),
                    "since_us": a["confirmed_us"],
                }
            )
        return out

    def get(self, alert_id: str) -> dict[str, Any]:
        """The alert with per-speaker accountability and a per-hamlet board."""
        row = self.records.row(alert_id)
        a = _public(row)
        a["broadcasts"] = self.store.query(
            "SELECT ab.broadcast_id, ab.kind, ab.at_us, b.status, b.start_pts_us, b.end_pts_us"
            " FROM alert_broadcasts ab JOIN broadcasts b ON b.id = ab.broadcast_id"
            " WHERE ab.alert_id=? ORDER BY ab.at_us",
            [alert_id],
        )
        rows = self.store.query(
            "SELECT d.device_id, d.hamlet_id, d.online_at_start, d.outcome, d.started_us,"
            " d.frames_played, d.frames_missing, d.reason, ab.kind, ab.at_us"
            " FROM deliveries d JOIN alert_broadcasts ab ON ab.broadcast_id = d.broadcast_id"
            " WHERE ab.alert_id=? ORDER BY ab.at_us",
            [alert_id],
        )
        a["speakers"] = speaker_board(rows)
        try:
            devices = self.records.resolution(row).devices  # the stored row: targets as JSON
        except LoaError:  # a target removed since: the board shows what was delivered
            devices = ()
        expected: dict[str, int] = {}
        for d in devices:
            expected[d.hamlet_id] = expected.get(d.hamlet_id, 0) + 1
        names = {h["id"]: h["name"] for h in self.store.hamlets(a["commune_id"])}
        a["speaker_count"] = len(devices)
        a["hamlets"] = hamlet_board(a["speakers"], expected, names)
        a["events"] = self.store.query(
            "SELECT at_us, action, actor, detail FROM alert_events WHERE alert_id=?"
            " ORDER BY at_us, rowid",
            [alert_id],
        )
        return a
