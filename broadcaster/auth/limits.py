"""Sliding-window rate limits, per key (a client address, an account) — pure, in memory."""

from __future__ import annotations

from collections import deque

from loa.clock import Clock
from loa.errors import TooManyRequests


class RateLimit:
    def __init__(self, clock: Clock, per_minute: int, what: str) -> None:
        self.clock = clock
        self.per_minute = per_minute
        self.what = what
        self._hits: dict[str, deque[int]] = {}

    def hit(self, key: str) -> None:
        """Count one attempt; TooManyRequests (nothing counted) when over the limit."""
        now = self.clock.now_us()
        q = self._hits.setdefault(key, deque())
        while q and q[0] <= now - 60_000_000:
            q.popleft()
        if len(q) >= self.per_minute:
            wait = (q[0] + 60_000_000 - now) / 1e6
            raise TooManyRequests(
                f"too many {self.what}: at most {self.per_minute} a minute; "
                f"try again in {max(1, round(wait))} s",
                retry_after_s=wait,
            )
        q.append(now)
        if len(self._hits) > 10_000:  # forget idle keys
            for k in [k for k, v in self._hits.items() if not v][:5000]:
                del self._hits[k]
