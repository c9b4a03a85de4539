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
from dataclasses import dataclass, field


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


@dataclass
class DriftTracker:
    """Offset as a straight line over the device's own time, from successive estimates.

    A crystal 100 ppm off drifts 6 ms a minute; predicting the offset between re-syncs
    from the slope of the last ``window`` estimates keeps speakers in step.
    """

    window: int = 12
    max_ppm: float = 500.0
    points: list[tuple[int, int]] = field(default_factory=list)

    def add(self, local_us: int, offset_us: int) -> None:
        self.points.append((local_us, offset_us))
        del self.points[: -self.window]

    @property
    def drift_ppm(self) -> float:
        """Slope of offset over local time (µs per second = ppm); 0 with < 2 points."""
        pts = self.points
        if len(pts) < 2:
            return 0.0
        x0 = pts[0][0]
        xs = [(x - x0) / 1e6 for x, _ in pts]
        ys = [float(y) for _, y in pts]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx <= 0:
            return 0.0
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
        return max(-self.max_ppm, min(self.max_ppm, slope))

    def predict(self, local_us: int) -> int | None:
        """The offset to use at ``local_us`` (device clock); None before any estimate."""
        if not self.points:
            return None
        ppm = self.drift_ppm
        xs = [x for x, _ in self.points]
        ys = [y for _, y in self.points]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        return round(my + ppm * (local_us - mx) / 1e6)
