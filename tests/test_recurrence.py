"""Recurrence rules: next_fire is monotone, never early, honours days, exceptions, ends
and daylight saving; impossible rules are refused with a message."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loa.errors import InvalidInput
from schedules.recurrence import (
    Rule,
    fires_between,
    next_fire,
    parse_date,
    rule_from_json,
    rule_json,
    validate,
)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
ZONES = ["Asia/Ho_Chi_Minh", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0, tz: ZoneInfo = VN) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=tz)


def test_daily_news_at_six() -> None:
    rule = Rule("daily", "06:00")
    assert next_fire(rule, at(2026, 11, 24, 5, 59)) == at(2026, 11, 24, 6, 0)
    assert next_fire(rule, at(2026, 11, 24, 6, 0)) == at(2026, 11, 25, 6, 0)


def test_market_days_weekly() -> None:
    rule = Rule("weekly", "07:30", weekdays=frozenset({1, 4}))  # Tue, Fri
    got = fires_between(rule, at(2026, 11, 23), at(2026, 11, 30))
    assert [t.astimezone(VN).strftime("%a %H:%M") for t in got] == ["Tue 07:30", "Fri 07:30"]


def test_every_three_days_from_start_with_an_exception_and_end() -> None:
    rule = Rule(
        "every_n_days",
        "17:00",
        start=date(2026, 11, 1),
        end=date(2026, 11, 13),
        every_days=3,
        exceptions=frozenset({date(2026, 11, 7)}),
    )
    days = [t.astimezone(VN).day for t in fires_between(rule, at(2026, 10, 1), at(2027, 1, 1))]
    assert days == [1, 4, 10, 13]


def test_monthly_on_the_31st_skips_short_months() -> None:
    rule = Rule("monthly", "08:00", month_day=31)
    got = fires_between(rule, at(2027, 1, 1), at(2027, 6, 1))
    assert [t.astimezone(VN).month for t in got] == [1, 3, 5]


def test_once() -> None:
    rule = Rule("once", "09:15", start=date(2026, 12, 1))
    assert next_fire(rule, at(2026, 11, 1)) == at(2026, 12, 1, 9, 15)
    assert next_fire(rule, at(2026, 12, 1, 9, 15)) is None


def test_a_time_lost_to_daylight_saving_fires_after_the_gap() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    rule = Rule("daily", "02:30", timezone="Europe/Berlin")
    got = next_fire(rule, at(2027, 3, 28, 0, 0, berlin))  # clocks jump 02:00 → 03:00
    assert got is not None and got.astimezone(berlin).strftime("%H:%M") == "03:30"
    # and a repeated hour fires once
    fall = fires_between(rule, at(2027, 10, 30, 12, 0, berlin), at(2027, 11, 1, 0, 0, berlin))
    assert len(fall) == 1  # 31 October's 02:30 happens twice on the wall; it fires once
    assert fall[0].astimezone(berlin).utcoffset() == timedelta(hours=2)  # the first one


rules = st.one_of(
    st.builds(
        Rule,
        kind=st.sampled_from(["daily", "weekly", "every_n_days", "monthly"]),
        at=st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59)),
        timezone=st.sampled_from(ZONES),
        start=st.dates(date(2025, 1, 1), date(2027, 1, 1)),
        end=st.none() | st.dates(date(2027, 1, 1), date(2029, 1, 1)),
        weekdays=st.frozensets(st.integers(0, 6), min_size=1),
        every_days=st.integers(1, 40),
        month_day=st.integers(1, 31),
        exceptions=st.frozensets(st.dates(date(2025, 1, 1), date(2029, 1, 1)), max_size=20),
    )
)
instants = st.datetimes(datetime(2024, 6, 1), datetime(2029, 6, 1), timezones=st.just(UTC))


@given(rules, instants)
@settings(max_examples=300, deadline=None)
def test_next_fire_is_after_on_a_valid_day_and_at_the_local_time(
    rule: Rule, after: datetime
) -> None:
    t = next_fire(rule, after)
    if t is None:
        return
    assert t > after
    local = t.astimezone(ZoneInfo(rule.timezone))
    day = local.date()
    assert day not in rule.exceptions
    assert rule.start is None or day >= rule.start
    assert rule.end is None or day <= rule.end
    hh, mm = (int(x) for x in rule.at.split(":"))
    # on the hour asked for, or just after a DST gap that swallowed it
    shift = (local.hour * 60 + local.minute) - (hh * 60 + mm)
    assert 0 <= shift <= 120


@given(rules, instants)
@settings(max_examples=200, deadline=None)
def test_next_fire_is_monotone_and_skips_nothing(rule: Rule, after: datetime) -> None:
    first = next_fire(rule, after)
    if first is None:
        return
    # nothing fires between `after` and the answer
    assert next_fire(rule, after) == first
    second = next_fire(rule, first)
    if second is not None:
        assert second > first
        # any instant in between gives the second
        mid = first + (second - first) / 2
        assert next_fire(rule, mid) == second


@pytest.mark.parametrize(
    ("rule", "field", "message"),
    [
        (Rule("daily", "24:00"), "when.at", "HH:MM"),
        (Rule("daily", "6h"), "when.at", "HH:MM"),
        (Rule("daily", "06:00", timezone="Mars/Olympus"), "when.timezone", "unknown time zone"),
        (Rule("once", "06:00"), "when.start", "date"),
        (
            Rule("daily", "06:00", start=date(2026, 12, 1), end=date(2026, 11, 1)),
            "when.end",
            "before the start",
        ),
        (Rule("weekly", "06:00"), "when.weekdays", "weekdays"),
        (Rule("weekly", "06:00", weekdays=frozenset({7})), "when.weekdays", "weekdays"),
        (
            Rule("every_n_days", "06:00", start=date(2026, 1, 1), every_days=0),
            "when.every_days",
            "1 to 366",
        ),
        (Rule("monthly", "06:00", month_day=32), "when.month_day", "1 to 31"),
        (
            Rule(
                "once", "06:00", start=date(2026, 12, 1), exceptions=frozenset({date(2026, 12, 1)})
            ),
            "when",
            "never fires",
        ),
    ],
)
def test_impossible_rules_are_refused(rule: Rule, field: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as err:
        validate(rule)
    assert err.value.errors[0].field == field


@pytest.mark.parametrize("value", ["2027-02-30", "2026-13-01", "30/02/2027", ""])
def test_dates_that_do_not_exist_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="not a real date"):
        parse_date(value, "when.start")


def test_week_of_fires_is_exact() -> None:
    rule = Rule("daily", "17:00")
    got = fires_between(rule, at(2026, 11, 23), at(2026, 11, 30))
    assert got == [at(2026, 11, d, 17, 0).astimezone(UTC) for d in range(23, 30)]
    assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(got))


@given(rules | st.builds(Rule, kind=st.just("once"), at=st.just("06:00"), start=st.dates()))
def test_a_stored_rule_reads_back_equal(rule: Rule) -> None:
    text = rule_json(rule)
    assert rule_from_json(text) == rule
    assert rule_json(rule_from_json(text)) == text  # one stored form per rule
