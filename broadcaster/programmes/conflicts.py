"""Conflicts: where a programme's firings overlap another's on a common speaker.

Shown, not refused: the commune fits its schedule together, and the class of each
programme decides what plays when they meet.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from schedules.occurrences import dt_of, us_of
from schedules.recurrence import fires_between, rule_from_json

from ..places.directory import resolve_in
from ..places.targeting import Target
from ..store.store import Store

#: Conflicts are looked for this far ahead.
CONFLICT_WINDOW_DAYS = 14


def conflicts(
    store: Store, me: dict[str, Any], programme_id: str, now: int
) -> list[dict[str, Any]]:
    """Overlaps in the next two weeks between ``me`` (a programme row, saved or not)
    and the commune's other live programmes on a common speaker."""
    mine = _intervals(store, me, now)
    if not mine:
        return []
    my_devices = _devices(store, me)
    out = []
    for other in store.query(
        "SELECT * FROM programmes WHERE commune_id=? AND id!=? AND deleted_us IS NULL"
        " AND status != 'returned'",
        [me["commune_id"], programme_id],
    ):
        shared = my_devices & _devices(store, other)
        if not shared:
            continue
        for a0, a1 in mine:
            for b0, b1 in _intervals(store, other, now):
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


def _devices(store: Store, p: dict[str, Any]) -> set[str]:
    targets = [Target(**t) for t in json.loads(p["targets"])]
    return {d.id for d in resolve_in(store, targets).devices}


def _duration_us(store: Store, p: dict[str, Any]) -> int:
    if p["what"] == "relay":
        return int((p["relay_duration_s"] or 0) * 1e6)
    if p["media_id"]:
        return int(store.media(p["media_id"]).duration_ms) * 1000
    return 0


def _intervals(store: Store, p: dict[str, Any], now: int) -> list[tuple[int, int]]:
    length = _duration_us(store, p)
    rule = rule_from_json(p["rule"])
    end = dt_of(now) + timedelta(days=CONFLICT_WINDOW_DAYS)
    return [(us_of(t), us_of(t) + length) for t in fires_between(rule, dt_of(now), end)]
