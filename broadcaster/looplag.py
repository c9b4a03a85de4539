"""Event-loop lag, measured all the time: how late a short sleep wakes up.

A task sleeps ``interval_s`` over and over; whatever it wakes later than asked is time
the loop spent on something else (a synchronous store call, a CPU-bound step). The
figure is exported as ``loa_event_loop_lag_seconds`` (a histogram, with the largest
lag seen) on /metrics, and the recent samples are kept for ``loa bench`` to read.
"""

from __future__ import annotations

import logging
from collections import deque

from loa.clock import Clock

logger = logging.getLogger(__name__)

#: Histogram bucket bounds, seconds.
BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: A stall this long is logged (a 250 ms emergency lead does not survive it).
WARN_S = 0.1


class LoopLag:
    def __init__(self, interval_s: float = 0.05, keep: int = 20_000) -> None:
        self.interval_s = interval_s
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.total_s = 0.0
        self.samples = 0
        self.max_s = 0.0
        self.recent: deque[float] = deque(maxlen=keep)

    def record(self, lag_s: float) -> None:
        lag_s = max(0.0, lag_s)
        self.samples += 1
        self.total_s += lag_s
        self.max_s = max(self.max_s, lag_s)
        self.recent.append(lag_s)
        for i, bound in enumerate(BUCKETS):
            if lag_s <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus histogram buckets (cumulative), ending with +Inf."""
        out, running = [], 0
        for bound, n in zip((*map(str, BUCKETS), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def reset_recent(self) -> None:
        self.recent.clear()

    async def run(self, clock: Clock) -> None:
        """Measure until cancelled."""
        while True:
            t0 = clock.monotonic()
            await clock.sleep(self.interval_s)
            lag = clock.monotonic() - t0 - self.interval_s
            self.record(lag)
            if lag > WARN_S:
                logger.warning("event loop stalled for %.0f ms", lag * 1000)
