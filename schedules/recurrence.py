"""When a programme fires (pure): one-off, daily, chosen weekdays, every N days, monthly.

A rule is a local time of day in the commune's time zone (Asia/Ho_Chi_Minh by
default) plus a pattern of days, between an optional start and end date, minus
exception dates. :func:`next_fire` gives the first firing strictly after an instant.

Local times that do not exist (a spring-forward gap in zones with daylight saving)
fire at the first valid minute after the gap; times that occur twice (fall-back) fire
once, at the first occurrence. Vietnam has no DST, but a province server may run
communes' schedules for other zones, and the property tests cover several.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from loa.errors import FieldError, InvalidInput

Kind = Literal["once", "daily", "weekly", "every_n_days", "monthly"]
KINDS: tuple[Kind, ...] = ("once", "daily", "weekly", "every_n_days", "monthly")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_SEARCH_DAYS = 366 * 4 + 1  # a monthly rule on the 31st, or a weekly rule, finds one sooner


@dataclass(frozen=True)
class Rule:
    kind: Kind
    at: str  # "HH:MM", local time
    timezone: str = "Asia/Ho_Chi_Minh"
    start: date | None = None  # first day it may fire (for "once": the day)
    end: date | None = None  # last day it may fire
    weekdays: frozenset[int] = field(default_factory=frozenset)  # 0 = Monday … 6 = Sunday
    every_days: int = 1  # every_n_days: counted from ``start``
    month_day: int = 1  # monthly: 1–31 (months without that day are skipped)
    exceptions: frozenset[date] = field(default_factory=frozenset)


def _bad(field_name: str, message: str, code: str = "invalid") -> InvalidInput:
    return InvalidInput(message, errors=[FieldError(field_name, message, code)])


def validate(rule: Rule) -> Rule:
    """Refuse an impossible rule with a message naming the field; return it unchanged."""
    if rule.kind not in KINDS:
        raise _bad("when.kind", f"unknown repetition {rule.kind!r}; use {', '.join(KINDS)}")
    if not _HHMM.match(rule.at):
        raise _bad("when.at", f"the time must be HH:MM (00:00–23:59), not {rule.at!r}", "time")
    try:
        ZoneInfo(rule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad("when.timezone", f"unknown time zone {rule.timezone!r}", "timezone") from None
    if rule.kind == "once" and rule.start is None:
        raise _bad("when.start", "a one-off programme needs its date", "required")
    if rule.start and rule.end and rule.end < rule.start:
        raise _bad("when.end", "the end date is before the start date", "order")
    if rule.kind == "weekly" and (not rule.weekdays or not rule.weekdays <= set(range(7))):
        raise _bad("when.weekdays", "choose weekdays from 0 (Monday) to 6 (Sunday)", "weekdays")
    if rule.kind == "every_n_days" and not 1 <= rule.every_days <= 366:
        raise _bad("when.every_days", "repeat every 1 to 366 days", "range")
    if rule.kind == "every_n_days" and rule.start is None:
        raise _bad("when.start", "'every N days' counts from a start date", "required")
    if rule.kind == "monthly" and not 1 <= rule.month_day <= 31:
        raise _bad("when.month_day", "the day of the month is 1 to 31", "range")
    first_day = rule.start or date(2000, 1, 1)
    if next_fire(rule, datetime.combine(first_day, time(), UTC) - timedelta(days=2)) is None:
        raise _bad("when", "this schedule never fires (every day it could is excluded)", "never")
    return rule


def parse_date(value: str, name: str) -> date:
    """YYYY-MM-DD, refusing dates that do not exist (February 30)."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _bad(name, f"{value!r} is not a real date (YYYY-MM-DD)", "date") from None


def _fires_on(rule: Rule, day: date) -> bool:
    if rule.start and day < rule.start:
        return False
    if rule.end and day > rule.end:
        return False
    if day in rule.exceptions:
        return False
    if rule.kind == "once":
        return day == rule.start
    if rule.kind == "daily":
        return True
    if rule.kind == "weekly":
        return day.weekday() in rule.weekdays
    if rule.kind == "every_n_days":
        assert rule.start is not None
        return (day - rule.start).days % rule.every_days == 0
    return day.day == rule.month_day


def _local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time, moved past a DST gap if it does not exist."""
    local = datetime.combine(day, at, tzinfo=tz)  # fold=0: the first of a repeated hour
    back = local.astimezone(UTC).astimezone(tz)
    if back.replace(tzinfo=None) != local.replace(tzinfo=None):
        # in a gap: the wall time does not exist; fire when the clocks reach past it
        local = back
    return local.astimezone(UTC)


def next_fire(rule: Rule, after: datetime) -> datetime | None:
    """The first firing strictly after ``after`` (aware), in UTC; None if there is none."""
    tz = ZoneInfo(rule.timezone)
    hh, mm = (int(x) for x in rule.at.split(":"))
    at = time(hh, mm)
    after_utc = after.astimezone(UTC)
    day = max(after_utc.astimezone(tz).date() - timedelta(days=1), date.min)
    if rule.start and day < rule.start:
        day = rule.start
    for _ in range(MAX_SEARCH_DAYS):
        if rule.end and day > rule.end:
            return None
        if _fires_on(rule, day):
            instant = _local_instant(day, at, tz)
            if instant > after_utc:
                return instant
        if day == date.max:
            return None
        day += timedelta(days=1)
    return None


def fires_between(
    rule: Rule, start: datetime, end: datetime, limit: int = 10_000
) -> list[datetime]:
    """Every firing in (start, end], in order (for calendars and conflict checks)."""
    out: list[datetime] = []
    t = next_fire(rule, start)
    while t is not None and t <= end and len(out) < limit:
        out.append(t)
        t = next_fire(rule, t)
    return out


# --- stored form --------------------------------------------------------------------------


def rule_dict(rule: Rule) -> dict[str, Any]:
    """A rule as plain JSON values (dates as YYYY-MM-DD, sets as sorted lists)."""
    d = asdict(rule)
    d["start"] = rule.start.isoformat() if rule.start else None
    d["end"] = rule.end.isoformat() if rule.end else None
    d["weekdays"] = sorted(rule.weekdays)
    d["exceptions"] = sorted(x.isoformat() for x in rule.exceptions)
    return d


def rule_from_dict(d: dict[str, Any]) -> Rule:
    """The inverse of :func:`rule_dict` (for rules this code stored; not a validator)."""
    return Rule(
        kind=d["kind"],
        at=d["at"],
        timezone=d["timezone"],
        start=date.fromisoformat(d["start"]) if d["start"] else None,
        end=date.fromisoformat(d["end"]) if d["end"] else None,
        weekdays=frozenset(d["weekdays"]),
        every_days=d["every_days"],
        month_day=d["month_day"],
        exceptions=frozenset(date.fromisoformat(x) for x in d["exceptions"]),
    )


def rule_json(rule: Rule) -> str:
    return json.dumps(rule_dict(rule))


def rule_from_json(text: str) -> Rule:
    return rule_from_dict(json.loads(text))
