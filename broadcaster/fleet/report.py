"""The commune's monthly (or any period's) report, and the province roll-up.

Every figure comes from facts — what speakers reported playing (deliveries) and when
they were online (presence history) — never from what was only scheduled.

* Airtime of a hamlet: for each broadcast, the longest stretch any of its speakers
  reported playing (so three speakers playing the same bulletin count once), by kind:
  ``news`` (scheduled programmes), ``relay``, ``live``, ``alert``, ``notice`` (the rest).
* Alert delivery rate: speakers that played an alert / speakers targeted and online.
* Uptime: :mod:`devices.uptime` (controller downtime is unknown).
* Top faults: alarms raised in the period, by kind.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from typing import Any

from ..store.store import Store
from .service import FleetService

KIND_ORDER = ("news", "notice", "relay", "live", "alert")
PLAYED = ("played", "partial", "preempted")


def _kind(row: dict[str, Any]) -> str:
    if row["is_alert"]:
        return "alert"
    if row["is_programme"]:
        return "news"
    if row["kind"] in ("relay", "live"):
        return str(row["kind"])
    return "notice"


def airtime(store: Store, commune: str, start: int, end: int) -> dict[str, dict[str, float]]:
    """hamlet → kind → hours on air (played facts, clipped to the period)."""
    rows = store.query(
        "SELECT d.broadcast_id, d.hamlet_id, b.kind,"
        " MAX(MIN(d.ended_us, ?) - MAX(d.started_us, ?)) AS span,"
        " EXISTS(SELECT 1 FROM alert_broadcasts a WHERE a.broadcast_id = b.id) AS is_alert,"
        " EXISTS(SELECT 1 FROM occurrences o WHERE o.broadcast_id = b.id) AS is_programme"
        " FROM deliveries d JOIN broadcasts b ON b.id = d.broadcast_id"
        " WHERE d.commune_id=? AND d.outcome IN ('played', 'partial', 'preempted')"
        " AND d.started_us IS NOT NULL AND d.ended_us IS NOT NULL"
        " AND d.ended_us > ? AND d.started_us < ?"
        " GROUP BY d.broadcast_id, d.hamlet_id",
        [end, start, commune, start, end],
    )
    out: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(KIND_ORDER, 0.0))
    for r in rows:
        out[r["hamlet_id"]][_kind(r)] += max(0, r["span"] or 0) / 3600e6
    return {h: {k: round(v, 4) for k, v in kinds.items()} for h, kinds in sorted(out.items())}


def alert_delivery(store: Store, commune: str, start: int, end: int) -> dict[str, Any]:
    alerts = store.query(
        "SELECT COUNT(*) AS n FROM alerts WHERE commune_id=? AND created_us>=? AND created_us<?",
        [commune, start, end],
    )[0]["n"]
    d = store.query(
        "SELECT SUM(d.outcome IN ('played', 'partial')) AS played, COUNT(*) AS reachable"
        " FROM deliveries d JOIN alert_broadcasts a ON a.broadcast_id = d.broadcast_id"
        " JOIN broadcasts b ON b.id = d.broadcast_id"
        " WHERE d.commune_id=? AND d.targeted=1 AND d.online_at_start=1"
        " AND b.created_us>=? AND b.created_us<?",
        [commune, start, end],
    )[0]
    reachable = d["reachable"] or 0
    return {
        "alerts": alerts,
        "speakers_reached": d["played"] or 0,
        "speakers_targeted_online": reachable,
        "delivery_rate": round((d["played"] or 0) / reachable, 4) if reachable else None,
    }


def faults(store: Store, commune: str, start: int, end: int) -> list[dict[str, Any]]:
    return store.query(
        "SELECT kind, COUNT(*) AS alarms, COUNT(DISTINCT device_id) AS speakers FROM alarms"
        " WHERE commune_id=? AND raised_us>=? AND raised_us<? GROUP BY kind"
        " ORDER BY alarms DESC, kind",
        [commune, start, end],
    )


def _province_name(store: Store, province: str) -> str:
    rows = store.query("SELECT name FROM provinces WHERE id=?", [province])
    return str(rows[0]["name"]) if rows else ""


def commune_report(
    store: Store, fleet: FleetService, commune: str, start: int, end: int
) -> dict[str, Any]:
    c = store.require_commune(commune)
    hours = airtime(store, commune, start, end)
    up = fleet.area_uptime(commune, start, end, store)
    hamlets = []
    for h in store.hamlets(commune):
        kinds = hours.get(h["id"], dict.fromkeys(KIND_ORDER, 0.0))
        hamlets.append(
            {
                "hamlet": h["id"],
                "name": h["name"],
                "hours": kinds,
                "hours_total": round(sum(kinds.values()), 4),
                "uptime": up["hamlets"].get(h["id"]),
            }
        )
    return {
        "commune": commune,
        "name": c["name"],
        "province_name": _province_name(store, c["province_id"]),
        "from_us": start,
        "to_us": end,
        "hamlets": hamlets,
        "alerts": alert_delivery(store, commune, start, end),
        "uptime": up["commune"],
        "top_faults": faults(store, commune, start, end),
    }


def as_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["hamlet", *(f"hours_{k}" for k in KIND_ORDER), "hours_total", "uptime"])
    for h in report["hamlets"]:
        up = (h["uptime"] or {}).get("uptime")
        w.writerow([h["hamlet"], *(h["hours"][k] for k in KIND_ORDER), h["hours_total"], up])
    a = report["alerts"]
    w.writerow([])
    w.writerow(["alerts", a["alerts"], "delivery_rate", a["delivery_rate"]])
    w.writerow(["commune_uptime", report["uptime"]["uptime"]])
    for f in report["top_faults"]:
        w.writerow(["fault", f["kind"], f["alarms"], f["speakers"]])
    return out.getvalue()


def province_rollup(store: Store, province: str, start: int, end: int) -> list[dict[str, Any]]:
    """Per commune: speaker clusters by state now, bulletins and airtime in the period."""
    out = []
    for c in store.query(
        "SELECT id, name FROM communes WHERE province_id=? ORDER BY id", [province]
    ):
        state = store.query(
            "SELECT COUNT(*) AS n, SUM(online) AS up,"
            " SUM(EXISTS(SELECT 1 FROM alarms a WHERE a.device_id = d.id"
            " AND a.cleared_us IS NULL AND a.kind != 'offline')) AS fault"
            " FROM devices d WHERE d.commune_id=?",
            [c["id"]],
        )[0]
        bulletins = store.query(
            "SELECT COUNT(DISTINCT b.id) AS n FROM broadcasts b JOIN broadcast_communes bc"
            " ON bc.broadcast_id = b.id WHERE bc.commune_id=? AND b.created_us>=?"
            " AND b.created_us<? AND b.status IN ('done', 'partial', 'stopped')",
            [c["id"], start, end],
        )[0]["n"]
        hours = airtime(store, c["id"], start, end)
        out.append(
            {
                "commune": c["id"],
                "name": c["name"],
                "speakers": state["n"],
                "online": state["up"] or 0,
                "offline": state["n"] - (state["up"] or 0),
                "fault": state["fault"] or 0,
                "bulletins": bulletins,
                "airtime_hours": round(sum(sum(k.values()) for k in hours.values()), 4),
            }
        )
    return out


def rollup_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    fields = ["commune", "name", "speakers", "online", "offline", "fault", "bulletins"]
    w = csv.DictWriter(out, fieldnames=[*fields, "airtime_hours"])
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()
