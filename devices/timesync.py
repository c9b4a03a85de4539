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

import math
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


def _lower_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The lower convex hull of ``points`` sorted by x: where ``min(y − s·x)`` lies, for
    every slope s (monotone chain)."""
    hull: list[tuple[float, float]] = []
    for x, y in points:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) > 0:
                break  # a left turn: hull[-1] stays
            hull.pop()
        hull.append((x, y))
    return hull


def _floor(hull: list[tuple[float, float]], slope: float) -> float:
    return min(y - slope * x for x, y in hull)


@dataclass
class OffsetModel:
    """Offset as a straight line over the device's own time, from every exchange kept.

    Each exchange gives two one-way differences, ``A = t2 − t1 = up + θ`` and
    ``B = t4 − t3 = down − θ``, where θ is controller − device. Queueing only ever adds
    delay, so for a drift ``s`` (θ changing by s per µs) the floors
    ``a(s) = min(A − s·τ)`` and ``b(s) = min(B + s·τ)`` are the cleanest measurements of
    each direction, and ``θ ≈ (a(s) − b(s)) / 2`` even when every single exchange is
    skewed by jitter (the minimum of each leg separately uses far more of the data than
    picking the few exchanges that were fast both ways).

    The drift is not known, and with exchanges 10 s apart it cannot be read off a few
    of them: a 2 s burst says nothing about it, and for minutes a fitted slope is mostly
    jitter. So it is weighed, not picked: each candidate slope is scored by how tightly
    it packs both legs onto their floors (queueing as exponential delays above a floor,
    whose scale and floor are integrated out: the score is
    ``−p·(ln R_A(s) + ln R_B(s))`` with ``R`` the summed excess delay of a leg above its
    floor, counting the n exchanges as ``p = (n − 1) / 2`` independent ones, since
    queueing comes in bursts) against a Gaussian prior of ``prior_ppm`` (a crystal's
    tolerance). θ now and the drift are the averages over that posterior: while the
    drift is unknown, θ stays at what the floors say with the drift unknown, instead of
    extrapolating a slope fitted to jitter; as the baseline grows the posterior narrows
    to the line.
    """

    history_s: float = 600.0
    max_ppm: float = 500.0
    prior_ppm: float = 100.0
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

    def _solve(self) -> tuple[float, float, float] | None:
        if not self.samples:
            return None
        rows = sorted(self.samples)
        t_ref = float(rows[-1][0])
        n = len(rows)
        taus = [t - t_ref for t, _, _ in rows]
        hull_a = _lower_hull([(x, float(r[1])) for x, r in zip(taus, rows, strict=True)])
        hull_b = _lower_hull([(x, float(r[2])) for x, r in zip(taus, rows, strict=True)])
        sum_a, sum_b, sum_t = sum(r[1] for r in rows), sum(r[2] for r in rows), sum(taus)
        power = max(1.0, (n - 1) / 2)
        prior = self.prior_ppm * 1e-6
        limit = self.max_ppm * 1e-6

        def score(s: float) -> tuple[float, float, float]:
            """(slope, log posterior, θ at t_ref) for drift ``s``."""
            a, b = _floor(hull_a, s), _floor(hull_b, -s)
            excess_a = max(sum_a - s * sum_t - n * a, 1.0)  # µs above the floor, summed
            excess_b = max(sum_b + s * sum_t - n * b, 1.0)
            logp = -power * (math.log(excess_a) + math.log(excess_b)) - 0.5 * (s / prior) ** 2
            return s, logp, (a - b) / 2

        lo, hi = -limit, limit
        theta = slope = 0.0
        for _ in range(6):  # a grid over the slopes, narrowed onto the posterior's mass
            scored = [score(lo + (hi - lo) * k / 32) for k in range(33)]
            top = max(logp for _, logp, _ in scored)
            weights = [math.exp(logp - top) for _, logp, _ in scored]
            total = sum(weights)
            slope = sum(w * s for w, (s, _, _) in zip(weights, scored, strict=True)) / total
            theta = sum(w * th for w, (_, _, th) in zip(weights, scored, strict=True)) / total
            var = sum(w * (s - slope) ** 2 for w, (s, _, _) in zip(weights, scored, strict=True))
            half = max(6 * math.sqrt(var / total), (hi - lo) / 16)
            if 2 * half >= 0.9 * (hi - lo):
                break  # the grid already spans the posterior
            lo, hi = max(-limit, slope - half), min(limit, slope + half)
        return (t_ref, theta, max(-limit, min(limit, slope)))

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
