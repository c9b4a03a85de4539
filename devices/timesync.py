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
class OffsetModel:
    """Offset as a straight line over the device's own time, from many exchanges.

    Each exchange gives two one-way differences, ``A = t2 − t1 = up + θ`` and
    ``B = t4 − t3 = down − θ``, where θ is controller − device. Queueing only ever adds
    delay, so the *smallest* A and the smallest B seen in a stretch of time are the
    cleanest measurements of each direction, and ``θ ≈ (min A − min B) / 2`` even when
    every single exchange is skewed by jitter (taking the minimum of each leg
    separately uses far more of the data than picking the few exchanges that were fast
    both ways). A crystal drifts (100 ppm is 6 ms a minute), so θ is a line: its slope
    comes from per-bin minima over the whole history (up to ``history_s``), its value
    now from the minima of the last ``recent_s`` once detrended by that slope.
    """

    history_s: float = 600.0
    recent_s: float = 60.0
    bin_s: float = 30.0
    max_ppm: float = 500.0
    max_samples: int = 2000
    samples: list[tuple[int, int, int]] = field(default_factory=list)  # (t1, A, B)
    _fit: tuple[float, float, float] | None = None  # (t_ref, θ at t_ref, slope)

    def add(self, sample: Sample) -> None:
        if sample.delay < 0 or sample.t4 < sample.t1 or sample.t3 < sample.t2:
            return
        self.samples.append((sample.t1, sample.t2 - sample.t1, sample.t4 - sample.t3))
        horizon = sample.t1 - int(self.history_s * 1e6)
        while self.samples and (
            self.samples[0][0] < horizon or len(self.samples) > self.max_samples
        ):
            self.samples.pop(0)
        self._fit = None

    def _theta(self, rows: list[tuple[int, int, int]], slope: float, t_ref: float) -> float:
        a = min(r[1] - slope * (r[0] - t_ref) for r in rows)
        b = min(r[2] + slope * (r[0] - t_ref) for r in rows)
        return (a - b) / 2

    def _slope(self, t_ref: float) -> float:
        slope = 0.0
        start = self.samples[0][0]
        # Bins of ``bin_s``; while the history is shorter than three of them, narrower
        # ones (a third of it), so drift is modelled from the first minutes, not after
        # 90 exchanges (at 10 s a speaker drifting 100 ppm was 30 ms off for 15 min).
        span = self.samples[-1][0] - start
        width = max(1.0, min(self.bin_s * 1e6, span / 3))
        for _ in range(2):  # fit, detrend, fit the residual
            bins: dict[int, list[float]] = {}  # bin → [min A', min B', sum t, count]
            for t, a, b in self.samples:
                da = a - slope * (t - t_ref)
                db = b + slope * (t - t_ref)
                acc = bins.setdefault(int((t - start) // width), [da, db, 0.0, 0.0])
                acc[0], acc[1] = min(acc[0], da), min(acc[1], db)
                acc[2] += t
                acc[3] += 1
            points = [
                (acc[2] / acc[3], (acc[0] - acc[1]) / 2) for acc in bins.values() if acc[3] >= 5
            ]
            if len(points) < 3:
                break
            tm = sum(p[0] for p in points) / len(points)
            ym = sum(p[1] for p in points) / len(points)
            sxx = sum((p[0] - tm) ** 2 for p in points)
            slope += sum((p[0] - tm) * (p[1] - ym) for p in points) / sxx
            limit = self.max_ppm * 1e-6
            slope = max(-limit, min(limit, slope))
        return slope

    def _solve(self) -> tuple[float, float, float] | None:
        if not self.samples:
            return None
        t_ref = float(self.samples[-1][0])
        slope = self._slope(t_ref)
        recent = [r for r in self.samples if r[0] >= t_ref - self.recent_s * 1e6]
        return (t_ref, self._theta(recent, slope, t_ref), slope)

    @property
    def drift_ppm(self) -> float:
        if self._fit is None:
            self._fit = self._solve()
        return 0.0 if self._fit is None else self._fit[2] * 1e6

    def predict(self, local_us: int) -> int | None:
        """Controller − device offset to use at ``local_us`` (device clock); None if empty."""
        if self._fit is None:
            self._fit = self._solve()
        if self._fit is None:
            return None
        t_ref, theta, slope = self._fit
        return round(theta + slope * (local_us - t_ref))
