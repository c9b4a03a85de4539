"""Uptime is arithmetic: never above 100 %, additive over adjacent periods, and time
the controller was down is unknown, not offline."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from devices.uptime import Uptime, uptime

T = 1_000_000  # one second in µs
times = st.integers(0, 10_000)
events = st.lists(st.tuples(times, st.booleans()), max_size=30).map(
    lambda xs: [(t * T, on) for t, on in sorted(xs)]
)
runs = st.lists(st.tuples(times, st.integers(1, 3000)), max_size=6).map(
    lambda xs: [(a * T, (a + n) * T) for a, n in xs]
)


@given(events, st.booleans(), runs, times, st.integers(1, 10_000))
def test_never_above_100_percent_and_adds_up(
    ev: list[tuple[int, bool]], before: bool, watched: list[tuple[int, int]], s: int, n: int
) -> None:
    start, end = s * T, (s + n) * T
    u = uptime(ev, before, watched, start, end)
    assert u.online_us >= 0 and u.offline_us >= 0 and u.unknown_us >= 0
    assert u.online_us + u.offline_us + u.unknown_us == end - start
    assert u.ratio is None or 0.0 <= u.ratio <= 1.0


@given(events, st.booleans(), runs, times, st.integers(1, 5000), st.integers(1, 5000))
def test_additive_over_adjacent_periods(
    ev: list[tuple[int, bool]],
    before: bool,
    watched: list[tuple[int, int]],
    s: int,
    a: int,
    b: int,
) -> None:
    start, mid, end = s * T, (s + a) * T, (s + a + b) * T
    whole = uptime(ev, before, watched, start, end)
    # the state at ``mid`` is what the events before it leave
    at_mid = before
    for t, on in ev:
        if t < mid:
            at_mid = on
    first = uptime([e for e in ev if e[0] < mid], before, watched, start, mid)
    second = uptime([e for e in ev if e[0] >= mid], at_mid, watched, mid, end)
    assert first + second == whole


def test_controller_downtime_is_unknown_not_offline() -> None:
    # online all along; the controller ran 0-100 s and 300-400 s only
    u = uptime([], True, [(0, 100 * T), (300 * T, 400 * T)], 0, 400 * T)
    assert u == Uptime(200 * T, 0, 200 * T) and u.ratio == 1.0
    # went offline at 50 s, back at 350 s, while the controller was down in between
    ev = [(50 * T, False), (350 * T, True)]
    u = uptime(ev, True, [(0, 100 * T), (300 * T, 400 * T)], 0, 400 * T)
    assert u == Uptime(100 * T, 100 * T, 200 * T) and u.ratio == 0.5
    assert uptime([], False, [], 0, 10 * T).ratio is None  # nothing watched
