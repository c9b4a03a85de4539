"""Clock offset estimation, NTP-style, from four timestamps per exchange (pure).

t1: device sends request (device clock)     t2: controller receives (controller clock)
t3: controller sends answer (controller)    t4: device receives answer (device clock)

offset = ((t2 − t1) + (t3 − t4)) / 2   (controller − device)
delay  = (t4 − t1) − (t3 − t2)         (round trip on the network)

Like snapcast's time provider, keep many samples and take the median offset of the
lowest-delay ones: queueing only ever adds delay, so low-delay samples are the honest
ones.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    t1: int
    t2: int
    t3: int
    t4: int

    @property
    def offset(self) -> float:
        return ((self.t2 - self.t1) + (self.t3 - self.t4)) / 2

    @property
    def delay(self) -> int:
        return (self.t4 - self.t1) - (self.t3 - self.t2)


@dataclass(frozen=True)
class Estimate:
    offset_us: int  # add to the device clock to get controller time
    delay_us: int  # median round trip of the samples used
    samples: int


def estimate(samples: Sequence[Sample], keep_fraction: float = 0.5) -> Estimate | None:
    """Median offset of the lowest-delay ``keep_fraction`` of valid samples."""
    valid = [s for s in samples if s.delay >= 0 and s.t4 >= s.t1 and s.t3 >= s.t2]
    if not valid:
        return None
    valid.sort(key=lambda s: s.delay)
    keep = valid[: max(1, int(len(valid) * keep_fraction))]
    return Estimate(
        offset_us=int(round(statistics.median(s.offset for s in keep))),
        delay_us=int(statistics.median(s.delay for s in keep)),
        samples=len(keep),
    )
