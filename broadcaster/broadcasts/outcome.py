"""A broadcast's final status, computed from what its speakers reported (pure).

``done`` means every targeted speaker that was online when it started played all of
it; anything less is ``partial`` (some played) or ``missed`` (none did), with the
reason. A stream that failed, was interrupted or was stopped keeps that status; the
counts are added to its reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

FINAL = ("done", "partial", "missed", "stopped", "failed", "interrupted")
RUNNING = ("streaming", "finishing")
#: Statuses computed from deliveries (a late proof of play computes them again).
COMPUTED = ("done", "partial", "missed")
NOBODY_ONLINE = "no targeted speaker was online"


def shortfall(deliveries: Iterable[Mapping[str, Any]]) -> tuple[int, int, dict[str, int]]:
    """(online targeted speakers, of them played all, other outcomes counted). A speaker
    believed offline at the start that reported anyway (the broker was away) counts."""
    online = played = 0
    other: dict[str, int] = {}
    for d in deliveries:
        heard = d["outcome"] not in ("pending", "offline", "no_report")
        if not d["targeted"] or not (d["online_at_start"] or heard):
            continue  # offline when it started, and never heard from
        online += 1
        if d["outcome"] == "played":
            played += 1
        else:
            other[d["outcome"]] = other.get(d["outcome"], 0) + 1
    return online, played, other


def notes_of(reason: str) -> str:
    """The notes in a stored reason, without the counts :func:`final_status` wrote."""
    return "; ".join(
        p
        for p in reason.split("; ")
        if p and " online speakers played it all" not in p and p != NOBODY_ONLINE
    )


def final_status(
    ending: str, error: str, deliveries: Iterable[Mapping[str, Any]], notes: str = ""
) -> tuple[str, str]:
    """(status, error) of a broadcast whose stream ended as ``ending`` (done, stopped,
    failed, interrupted); ``notes`` (an outage, a late start) are kept in the reason."""
    online, played, other = shortfall(deliveries)
    parts = [p for p in (error, notes) if p]
    if online == 0:
        parts.append(NOBODY_ONLINE)
    elif played < online:
        detail = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(other.items()))
        parts.insert(0, f"{played} of {online} online speakers played it all ({detail})")
    reason = "; ".join(parts)
    if ending != "done":
        return ending, reason
    if online in (0, played):
        return "done", reason
    return ("partial" if played or other.get("partial") else "missed"), reason
