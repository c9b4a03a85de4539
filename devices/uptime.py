"""Uptime as pure arithmetic over presence history and the controller's own runs.

A speaker is *online* or *offline* as its presence events say; but while the
controller itself was not running nobody was watching, so that time is *unknown* —
neither up nor down. ``ratio`` is online / (online + offline), never above 1, and the
three durations add up over adjacent periods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Interval = tuple[int, int]


@dataclass(frozen=True)
class Uptime:
    online_us: int
    offline_us: int
    unknown_us: int

    @property
    def ratio(self) -> float | None:
        """Share of the watched time the speaker was online; None if nothing was watched."""
        watched = self.online_us + self.offline_us
        return self.online_us / watched if watched else None

    def __add__(self, other: Uptime) -> Uptime:
        return Uptime(
            self.online_us + other.online_us,
            self.offline_us + other.offline_us,
            self.unknown_us + other.unknown_us,
        )

    def as_dict(self) -> dict[str, float | None]:
        return {
            "online_s": self.online_us / 1e6,
            "offline_s": self.offline_us / 1e6,
            "unknown_s": self.unknown_us / 1e6,
            "uptime": None if self.ratio is None else round(self.ratio, 6),
        }


def clip(intervals: Sequence[Interval], start: int, end: int) -> list[Interval]:
    """Intervals cut to [start, end), merged, sorted."""
    cut = sorted((max(a, start), min(b, end)) for a, b in intervals if b > start and a < end)
    out: list[Interval] = []
    for a, b in cut:
        if a >= b:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def overlap(xs: Sequence[Interval], ys: Sequence[Interval]) -> int:
    """Total length of the intersection of two sorted, merged interval lists."""
    total, i, j = 0, 0, 0
    while i < len(xs) and j < len(ys):
        a, b = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if b > a:
            total += b - a
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return total


def online_intervals(
    events: Sequence[tuple[int, bool]], before: bool, start: int, end: int
) -> list[Interval]:
    """When the speaker was online in [start, end): ``before`` is its state at ``start``
    (its last event before it), ``events`` its (time, online) changes, in time order."""
    out: list[Interval] = []
    state, since = before, start
    for when, online in sorted(events):
        at = min(max(when, start), end)
        if online == state:
            continue
        if state:
            out.append((since, at))
        state, since = online, at
    if state:
        out.append((since, end))
    return clip(out, start, end)


def uptime(
    events: Sequence[tuple[int, bool]],
    before: bool,
    watched: Sequence[Interval],
    start: int,
    end: int,
) -> Uptime:
    """Online, offline and unknown time of one speaker in [start, end); ``watched`` is
    when the controller was running (its runs, from start to last sign of life)."""
    if end <= start:
        return Uptime(0, 0, 0)
    known = clip(watched, start, end)
    known_us = sum(b - a for a, b in known)
    online = overlap(online_intervals(events, before, start, end), known)
    return Uptime(online, known_us - online, (end - start) - known_us)
