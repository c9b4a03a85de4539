"""Password hashing off the event loop, a few at once, and a login back-off that slows
an attacker without locking the owner out.

- :class:`Hashing` runs argon2 in worker threads, at most ``workers`` at once; up to
  ``queue`` more wait their turn, and beyond that a login is refused at once with 429
  ("busy, try again") instead of piling up: a flood of logins costs the flood, never
  the event loop that streams audio.
- :class:`Backoff` counts wrong passwords per (client address, user name). After
  ``free`` failures in a row that pair must wait 1 s, then 2, 4 … up to ``cap`` s before
  its next try is even checked. Another address (the owner's) is not affected, and the
  answer does not depend on whether the user exists, so it tells nothing about names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio

from loa.clock import Clock
from loa.errors import TooManyRequests

T = TypeVar("T")


class Busy(TooManyRequests):
    """Refused before any password was checked: the hash workers are all taken."""


class Hashing:
    def __init__(self, workers: int, queue: int) -> None:
        self.limiter = anyio.CapacityLimiter(workers)
        self.queue = queue
        self.waiting = 0
        self.refused = 0  # logins turned away busy (counted, not audited one by one)

    def full(self) -> bool:
        return self.waiting >= self.limiter.total_tokens + self.queue

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on a worker thread; :class:`Busy` (429) when too many wait."""
        if self.full():
            self.refused += 1
            raise Busy(
                "the server is busy checking other passwords; try again in a moment",
                retry_after_s=1.0,
            )
        self.waiting += 1
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)
        finally:
            self.waiting -= 1


class Backoff:
    def __init__(self, clock: Clock, free: int, cap_s: float) -> None:
        self.clock = clock
        self.free = free
        self.cap_us = int(cap_s * 1e6)
        self._state: dict[tuple[str, str], tuple[int, int]] = {}  # failures, next try µs

    def check(self, address: str, user: str) -> None:
        """TooManyRequests while this address must wait before trying this name again."""
        _, not_before = self._state.get((address, user), (0, 0))
        now = self.clock.now_us()
        if not_before > now:
            wait = (not_before - now) / 1e6
            raise TooManyRequests(
                f"too many wrong passwords from your address for this name; "
                f"try again in {max(1, round(wait))} s",
                retry_after_s=wait,
            )

    def failed(self, address: str, user: str) -> None:
        failures, _ = self._state.get((address, user), (0, 0))
        failures += 1
        wait = 0
        if failures >= self.free:
            wait = min(self.cap_us, 1_000_000 << min(failures - self.free, 40))
        self._state[(address, user)] = (failures, self.clock.now_us() + wait)
        if len(self._state) > 50_000:  # forget the oldest half
            for key in list(self._state)[:25_000]:
                del self._state[key]

    def succeeded(self, address: str, user: str) -> None:
        self._state.pop((address, user), None)
