"""The injected clock: FakeClock wakes sleepers on time, SkewedClock is off as configured."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loa.clock import US, FakeClock, SkewedClock, SystemClock, from_us, to_us

START_US = 1_767_225_600 * US  # FakeClock's default start, 2026-01-01T00:00Z


async def _settle() -> None:
    """Let woken tasks run (yields to the loop; no time passes)."""
    for _ in range(3):
        await asyncio.sleep(0)


def _run(coro):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


# --- FakeClock ----------------------------------------------------------------------


def test_fake_clock_starts_at_2026() -> None:
    clock = FakeClock()
    assert clock.now_us() == START_US
    assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC)
    assert clock.monotonic() == 0.0
    assert clock.sleepers == 0
    assert FakeClock(start_us=5).now_us() == 5


async def test_sleepers_wake_at_their_deadline_and_not_before() -> None:
    clock = FakeClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in [("a", 1.0), ("b", 2.5), ("c", 2.5)]]
    await _settle()
    assert clock.sleepers == 3
    clock.advance(0.75)
    await _settle()
    assert woke == []
    clock.advance(0.25)  # exactly at a's deadline
    await _settle()
    assert woke == ["a"]
    assert clock.sleepers == 2
    clock.advance(1.25)
    await _settle()
    assert woke == ["a"]
    clock.advance(10)
    await _settle()
    assert sorted(woke) == ["a", "b", "c"]
    assert clock.sleepers == 0
    assert all(t.done() for t in tasks)


async def test_sleep_counts_from_the_current_monotonic_time() -> None:
    clock = FakeClock()
    clock.advance(100)
    task = asyncio.create_task(clock.sleep(2))
    await _settle()
    clock.advance(1.5)
    await _settle()
    assert not task.done()
    clock.advance(0.5)
    await _settle()
    assert task.done()


@pytest.mark.parametrize("seconds", [0, -1, -0.5])
async def test_non_positive_sleep_returns_at_once(seconds: float) -> None:
    clock = FakeClock()
    await asyncio.wait_for(clock.sleep(seconds), timeout=5)
    assert clock.sleepers == 0
    assert clock.monotonic() == 0.0


async def test_cancelled_sleeper_is_not_counted_and_advance_copes() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(1))
    await _settle()
    assert clock.sleepers == 1
    task.cancel()
    await _settle()
    assert clock.sleepers == 0
    clock.advance(2)  # must not try to wake the cancelled future
    assert task.cancelled()


@settings(max_examples=50, deadline=None)
@given(
    deadlines=st.lists(st.integers(1, 40), min_size=1, max_size=8),
    steps=st.lists(st.integers(0, 12), min_size=1, max_size=10),
)
def test_sleepers_wake_exactly_when_time_passes_them(
    deadlines: list[int], steps: list[int]
) -> None:
    """Deadlines and steps in eighths of a second: exact in binary floating point."""

    async def scenario() -> None:
        clock = FakeClock()
        tasks = [asyncio.create_task(clock.sleep(d / 8)) for d in deadlines]
        await _settle()
        elapsed = 0
        for step in steps:
            clock.advance(step / 8)
            elapsed += step
            await _settle()
            assert [t.done() for t in tasks] == [d <= elapsed for d in deadlines]
            assert clock.sleepers == sum(d > elapsed for d in deadlines)
            assert clock.monotonic() == elapsed / 8
            assert clock.now_us() == START_US + elapsed * US // 8
        for t in tasks:
            t.cancel()
        await _settle()

    _run(scenario())


async def test_sleeper_wakes_after_ten_tenths() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(1.0))
    await _settle()
    for _ in range(10):
        clock.advance(0.1)
    await _settle()
    assert clock.now_us() == START_US + US
    done = task.done()
    task.cancel()
    await _settle()
    assert done


def test_advance_refuses_negative() -> None:
    clock = FakeClock()
    clock.advance(1)
    with pytest.raises(ValueError, match="never goes backwards"):
        clock.advance(-0.001)
    assert clock.monotonic() == 1.0
    assert clock.now_us() == START_US + US


def test_advance_moves_wall_and_monotonic_together() -> None:
    clock = FakeClock()
    clock.advance(1.5)
    clock.advance(0.000_001)
    assert clock.now_us() == START_US + 1_500_001
    assert clock.now() == datetime(2026, 1, 1, 0, 0, 1, 500_001, tzinfo=UTC)
    assert clock.monotonic() == pytest.approx(1.500_001)


async def test_step_wall_changes_now_but_not_monotonic() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(5))
    await _settle()
    clock.step_wall(3600)
    await _settle()
    assert clock.now() == datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
    assert clock.now_us() == START_US + 3600 * US
    assert clock.monotonic() == 0.0
    assert not task.done()  # a wall-clock step wakes nobody
    clock.step_wall(-7200)  # backwards is allowed for the wall clock
    assert clock.now() == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)
    assert clock.monotonic() == 0.0
    clock.advance(5)
    await _settle()
    assert task.done()
    assert clock.now_us() == START_US - 3600 * US + 5 * US


# --- SkewedClock --------------------------------------------------------------------


def test_skewed_clock_offset_and_drift() -> None:
    true = FakeClock()
    dev = SkewedClock(true, offset_s=2.5, drift_ppm=100)
    assert dev.now_us() == START_US + 2_500_000
    assert dev.true_us() == START_US
    true.advance(1000)
    # 1000 s at +100 ppm: 0.1 s gained on top of the 2.5 s offset
    assert dev.true_us() == START_US + 1000 * US
    # (int() truncates 99_999.99999999999 from the float drift: allow that 1 µs)
    assert abs(dev.now_us() - (START_US + 1000 * US + 2_500_000 + 100_000)) <= 1
    assert dev.now() == from_us(dev.now_us())
    assert dev.monotonic() == pytest.approx(1000 * 1.0001)


def test_skewed_clock_slow_and_behind() -> None:
    true = FakeClock()
    true.advance(50)  # t0 is when the skewed clock is made, not the epoch
    dev = SkewedClock(true, offset_s=-1.0, drift_ppm=-50)
    true.advance(10_000)
    assert abs(dev.now_us() - (true.now_us() - US - 500_000)) <= 1


def test_skewed_clock_without_skew_is_the_true_clock() -> None:
    true = FakeClock()
    dev = SkewedClock(true)
    true.advance(12.25)
    assert dev.now_us() == true.now_us()
    assert dev.monotonic() == true.monotonic()


@settings(max_examples=150)
@given(
    offset_s=st.floats(-10_000, 10_000),
    drift_ppm=st.floats(-500, 500),
    before=st.integers(0, 10**6),
    elapsed=st.integers(0, 10**7),
)
def test_skewed_clock_error_grows_linearly(
    offset_s: float, drift_ppm: float, before: int, elapsed: int
) -> None:
    true = FakeClock()
    true.advance(before)
    dev = SkewedClock(true, offset_s=offset_s, drift_ppm=drift_ppm)
    true.advance(elapsed)
    error_us = dev.now_us() - dev.true_us()
    expected = offset_s * US + elapsed * US * drift_ppm * 1e-6
    assert abs(error_us - expected) <= 1.5
    assert dev.true_us() == true.now_us()


async def test_skewed_clock_sleeps_in_its_own_seconds() -> None:
    true = FakeClock()
    dev = SkewedClock(true, drift_ppm=1000)  # runs 0.1 % fast
    task = asyncio.create_task(dev.sleep(10.0))
    await _settle()
    true.advance(10 / 1.001 - 0.001)
    await _settle()
    assert not task.done()
    true.advance(0.002)
    await _settle()
    assert task.done()
    # by the device's own (fast) clock, about ten seconds went by
    assert dev.monotonic() == pytest.approx(10.0, abs=0.005)
    assert true.monotonic() == pytest.approx(10 / 1.001, abs=0.005)


# --- conversions and the system clock ------------------------------------------------


def test_to_us_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        to_us(datetime(2026, 1, 1))


def test_to_us_respects_time_zones() -> None:
    hanoi = ZoneInfo("Asia/Ho_Chi_Minh")
    assert to_us(datetime(2026, 1, 1, 7, 0, tzinfo=hanoi)) == START_US
    assert to_us(datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5)))) == (
        START_US + 5 * 3600 * US
    )
    assert to_us(datetime(1970, 1, 1, tzinfo=UTC)) == 0


@settings(max_examples=200)
@given(st.integers(0, 4_102_444_800 * US))  # 1970 .. 2100
def test_from_us_to_us_round_trip(us: int) -> None:
    dt = from_us(us)
    assert dt.tzinfo is UTC
    assert to_us(dt) == us


async def test_system_clock() -> None:
    clock = SystemClock()
    now = clock.now()
    assert now.tzinfo is not None
    assert abs(clock.now_us() - to_us(now)) < 60 * US
    a = clock.monotonic()
    await clock.sleep(-5)  # clamped to zero: returns at once
    await clock.sleep(0)
    assert clock.monotonic() >= a
