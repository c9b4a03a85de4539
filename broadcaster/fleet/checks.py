"""The fleet check's reads, set-based: a handful of queries for the whole fleet, not a
handful per speaker. Runs on a reader connection in a worker thread
(:meth:`broadcaster.store.store.Store.read`); the alarms it implies are written on
the loop."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..settings import FleetSettings
from ..store.store import Store
from .alarms import SpeakerState

FAILED = ("no_report", "missed")


@dataclass(frozen=True)
class Snapshot:
    devices: list[dict[str, Any]]
    states: dict[str, SpeakerState]  # per speaker id


def _latest_failures(store: Store, since: int, link: str) -> dict[str, str]:
    """Per device, its latest targeted delivery of a programme (``occurrences``) or an
    alert (``alert_broadcasts``) since ``since`` — if that one failed, what it was."""
    rows = store.query(
        "SELECT device_id, outcome, reason, title FROM ("  # noqa: S608 (link is ours)
        " SELECT d.device_id, d.outcome, d.reason, b.title, ROW_NUMBER() OVER ("
        "  PARTITION BY d.device_id ORDER BY b.created_us DESC) AS rn"
        " FROM deliveries d JOIN broadcasts b ON b.id = d.broadcast_id"
        " WHERE d.targeted=1 AND d.outcome NOT IN ('pending', 'offline') AND b.created_us>?"
        f" AND d.broadcast_id IN (SELECT broadcast_id FROM {link})"
        ") WHERE rn=1",
        [since],
    )
    return {
        r["device_id"]: f"{r['title']}: {r['reason'] or r['outcome']}"
        for r in rows
        if r["outcome"] in FAILED
    }


def _weak_since(store: Store, weak_dbm: float, weak: set[str]) -> dict[str, int]:
    """For speakers whose last signal was weak: when the current weak run began (the
    first report after their last good one)."""
    if not weak:
        return {}
    rows = store.query(
        "SELECT t.device_id, MIN(t.at_us) AS first FROM telemetry t LEFT JOIN ("
        " SELECT device_id, MAX(at_us) AS good FROM telemetry WHERE rssi_dbm>=?"
        " GROUP BY device_id) g ON g.device_id = t.device_id"
        " WHERE t.at_us > COALESCE(g.good, 0) GROUP BY t.device_id",
        [weak_dbm],
    )
    return {r["device_id"]: r["first"] for r in rows if r["device_id"] in weak}


def gather(store: Store, settings: FleetSettings, now: int, run: int | None) -> Snapshot:
    """Everything the alarm rules need, for every speaker, in six queries."""
    devices = store.query("SELECT * FROM devices")
    last = {
        r["device_id"]: json.loads(r["payload"])
        for r in store.query("SELECT device_id, payload FROM telemetry_last")
    }
    weak = {
        d
        for d, t in last.items()
        if t.get("rssi_dbm") is not None and t["rssi_dbm"] < settings.weak_rssi_dbm
    }
    weak_since = _weak_since(store, settings.weak_rssi_dbm, weak)
    since = now - int(settings.delivery_window_h * 3600e6)
    missed = _latest_failures(store, since, "occurrences")
    failed_alerts = _latest_failures(store, since, "alert_broadcasts")
    states = {}
    for d in devices:
        t = last.get(d["id"], {})
        states[d["id"]] = SpeakerState(
            online=bool(d["online"]),
            presence_changed_us=d["presence_changed_us"],
            last_seen_us=d["last_seen_us"],
            amp_fault=bool(t.get("amp_fault")),
            temperature_c=t.get("temperature_c"),
            weak_since_us=weak_since.get(d["id"]),
            missed_programme=missed.get(d["id"], ""),
            failed_alert=failed_alerts.get(d["id"], ""),
            watching_since_us=run,
        )
    return Snapshot(devices, states)
