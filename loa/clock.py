"""Time, injected.

``datetime.now`` and ``time.time`` are read in this module only. Everything else gets
a :class:`Clock` and asks it. Times on the wire are integer microseconds since the
Unix epoch on the controller's clock (see docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

US = 1_000_000


def to_us(dt: datetime) -> int:
    """Aware datetime → integer µs since the epoch."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime: attach a time zone before converting")
    return int(round(dt.timestamp() * US))


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / US, tz=UTC)


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC wall-clock time."""

    def now_us(self) -> int:
        """Wall-clock time in µs since the epoch."""

    def monotonic(self) -> float:
        """Seconds on a clock that never steps backwards."""

    async def sleep(self, seconds: float) -> None:
        """Sleep at least ``seconds`` of this clock's time."""


class SystemClock:
    """The real clock of this machine."""

    def now(self) -> datetime:
        return datetime.now(tz=UTC)

    def now_us(self) -> int:
        return time.time_ns() // 1000

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when told to; sleepers wake when time passes them.

    Time is kept in integer µs so that ten steps of 0.1 s are exactly one second.
    """

    def __init__(self, start_us: int = 1_767_225_600 * US) -> None:  # 2026-01-01T00:00Z
        self._now_us = start_us
        self._mono_us = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return from_us(self._now_us)

    def now_us(self) -> int:
        return self._now_us

    def monotonic(self) -> float:
        return self._mono_us / US

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._mono_us + round(seconds * US), fut))
        try:
            await fut
        finally:
            self._waiters = [(t, f) for t, f in self._waiters if f is not fut]

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed."""
        if seconds < 0:
            raise ValueError("a FakeClock never goes backwards; use step_wall() for that")
        step = round(seconds * US)
        self._mono_us += step
        self._now_us += step
        for deadline, fut in list(self._waiters):
            if deadline <= self._mono_us and not fut.done():
                fut.set_result(None)

    def step_wall(self, seconds: float) -> None:
        """Step the wall clock only (an NTP correction), leaving monotonic time alone."""
        self._now_us += round(seconds * US)

    @property
    def sleepers(self) -> int:
        return sum(1 for _, f in self._waiters if not f.done())


class SkewedClock:
    """A device's own clock: a true clock plus a fixed offset and a linear drift.

    ``local = true + offset + drift_ppm·1e-6·(true − t0)``. Used by the simulator so
    that each simulated speaker has a wrong clock, as real ones do.
    """

    def __init__(self, true: Clock, *, offset_s: float = 0.0, drift_ppm: float = 0.0) -> None:
        self._true = true
        self._offset_us = int(round(offset_s * US))
        self._drift = drift_ppm * 1e-6
        self._t0_us = true.now_us()

    def _local_us(self, true_us: int) -> int:
        return true_us + self._offset_us + round((true_us - self._t0_us) * self._drift)

    def now(self) -> datetime:
        return from_us(self.now_us())

    def now_us(self) -> int:
        return self._local_us(self._true.now_us())

    def true_of(self, local_us: int) -> int:
        """The true time at which this clock reads ``local_us`` (simulator truth)."""
        return round((local_us - self._offset_us + self._drift * self._t0_us) / (1.0 + self._drift))

    def true_us(self) -> int:
        """The simulator's ground truth; a real device could not read this."""
        return self._true.now_us()

    def step(self, seconds: float) -> None:
        """Step this clock's wall time (an operator or NTP setting it), monotonic
        time untouched: fault injection for clock-step tests."""
        self._offset_us += int(round(seconds * US))

    def monotonic(self) -> float:
        return self._true.monotonic() * (1.0 + self._drift)

    async def sleep(self, seconds: float) -> None:
        await self._true.sleep(seconds / (1.0 + self._drift))
