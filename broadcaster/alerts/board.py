"""The alert board (pure): per speaker over every airing, per hamlet, and the public
shape of an alert row."""

from __future__ import annotations

import json
from typing import Any

from .model import RISK_LEVELS, TYPE_NAMES, AlertType


def speaker_board(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per speaker, over every airing: first play (controller clock), frames, state (pure)."""
    board: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = board.setdefault(
            r["device_id"],
            {
                "device_id": r["device_id"],
                "hamlet_id": r["hamlet_id"],
                "state": "pending",
                "first_played_us": None,
                "frames_played": 0,
                "frames_missing": 0,
                "reason": "",
            },
        )
        s["frames_played"] += r["frames_played"] or 0
        s["frames_missing"] += r["frames_missing"] or 0
        if r["outcome"] in ("played", "partial") and r["started_us"]:
            first = s["first_played_us"]
            s["first_played_us"] = r["started_us"] if first is None else min(first, r["started_us"])
        s["state"] = _better(s["state"], r["outcome"])
        if r["reason"] and s["state"] not in ("played", "partial"):
            s["reason"] = r["reason"]
    return sorted(board.values(), key=lambda s: (s["hamlet_id"], s["device_id"]))


_RANK = ["pending", "no_report", "offline", "missed", "refused", "preempted", "partial", "played"]


def _better(current: str, outcome: str) -> str:
    """The best outcome so far (a speaker that played any airing has heard the alert)."""
    rank = {o: i for i, o in enumerate(_RANK)}
    if current == "pending":
        return outcome
    if outcome == "pending":
        return current
    return max(current, outcome, key=lambda o: rank.get(o, 0))


def hamlet_board(
    speakers: list[dict[str, Any]],
    expected: dict[str, int] | None = None,
    names: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """A hamlet is *delivered* only when a speaker there reports playing the alert (pure).

    ``expected`` (hamlet → speakers targeted) puts every targeted hamlet on the board
    from the start, so a sounding alert never reads 0 of 0 before reports arrive;
    ``names`` adds each hamlet's name."""
    out: dict[str, dict[str, Any]] = {}

    def row(hamlet: str) -> dict[str, Any]:
        return out.setdefault(
            hamlet,
            {
                "hamlet_id": hamlet,
                "name": (names or {}).get(hamlet, hamlet),
                "speakers": 0,
                "played": 0,
                "pending": 0,
                "not_played": [],
            },
        )

    for s in speakers:
        h = row(s["hamlet_id"])
        h["speakers"] += 1
        if s["state"] == "pending":
            h["pending"] += 1
        if s["state"] in ("played", "partial"):
            h["played"] += 1
        elif s["state"] != "pending":
            h["not_played"].append(s["device_id"])
    for hamlet, count in (expected or {}).items():
        h = row(hamlet)
        if h["speakers"] < count:  # targeted speakers with no delivery row yet
            h["pending"] += count - h["speakers"]
            h["speakers"] = count
    for h in out.values():
        h["delivered"] = h["played"] > 0
    return sorted(out.values(), key=lambda h: h["hamlet_id"])


def _severity(level: int) -> str:
    return {5: "Extreme", 4: "Severe", 3: "Moderate"}.get(level, "Minor")


def _public(r: dict[str, Any]) -> dict[str, Any]:
    out = dict(r)
    out["fields"] = json.loads(r["fields"] or "{}")
    out["targets"] = json.loads(r["targets"] or "[]")
    out["test"] = bool(r["test"])
    level = RISK_LEVELS[r["risk_level"]]
    out["risk"] = {
        "level": r["risk_level"],
        "colour_vi": level[0],
        "colour_en": level[1],
        "css": level[2],
    }
    out["type_name"] = {
        "vi": TYPE_NAMES[AlertType(r["type"])][0],
        "en": TYPE_NAMES[AlertType(r["type"])][1],
    }
    return out
