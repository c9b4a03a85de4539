"""Statistics, tables, plots and BENCHMARKS.md sections for ``loa bench``."""

from __future__ import annotations

import json
import math
import os
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loa.clock import Clock, SystemClock

from .harness import machine


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return math.nan
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(min, median, max) of repeated trials."""
    return (min(values), statistics.median(values), max(values))


@dataclass
class Figure:
    key: str  # JSON key
    label: str
    value: float
    unit: str
    trials: list[float] = field(default_factory=list)  # per-trial values, if repeated

    def row(self) -> str:
        if len(self.trials) > 1:
            lo, mid, hi = spread(self.trials)
            rng = f"{fmt(lo)} / {fmt(mid)} / {fmt(hi)}"
        else:
            rng = "—"
        return f"| {self.label} | **{fmt(self.value)}** {self.unit} | {rng} | `{self.key}` |"


def fmt(x: float) -> str:
    if isinstance(x, float) and not math.isfinite(x):
        return "n/a"  # nothing was measured (e.g. no speaker played)
    if isinstance(x, int) or (abs(x) >= 1000 and float(x).is_integer()):
        return f"{int(x):,}".replace(",", " ")
    if abs(x) >= 100:
        return f"{x:,.0f}".replace(",", " ")
    return f"{x:.3g}"


@dataclass
class Report:
    name: str
    title: str
    command: str
    figures: list[Figure]
    notes: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)  # raw data for plots

    def as_json(self) -> dict[str, Any]:
        """Figures by key; one that could not be measured is ``null`` (JSON has no NaN)."""
        return {
            f.key: None if isinstance(f.value, float) and not math.isfinite(f.value) else f.value
            for f in self.figures
        }

    def table(self) -> str:
        lines = [
            "| figure | value | min / median / max over trials | JSON key |",
            "|---|---|---|---|",
        ]
        lines += [f.row() for f in self.figures]
        return "\n".join(lines)

    def section(self, when: datetime) -> str:
        date = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        parts = [
            f"<!-- bench:{self.name} -->",
            f"## {self.title}",
            "",
            f"Command: `{self.command}`  ",
            f"Machine: {machine()}  ",
            f"Date: {date}  ",
            f"Load: {os.getloadavg()[0]:.1f} (1-minute load average when written; the "
            "machine is shared, so figures taken under load are worse than on a quiet one)",
            "",
            self.table(),
            "",
        ]
        parts += [f"- {n}" for n in self.notes]
        parts += [f"\n![{self.name}]({p})" for p in self.plots]
        parts.append(f"<!-- /bench:{self.name} -->")
        return "\n".join(parts)

    def print(self) -> None:
        print(self.table())
        for n in self.notes:
            print(f"  - {n}")


HEADER = """# Loa benchmarks

Figures measured by `loa bench` on real parts (Mosquitto, the controller, simulated
speakers in their own processes, real ffmpeg), each with its command, machine and date.
Re-run a section with its command; `--json` prints the figures as one JSON object on
the last line. These machines are small and noisy: repeated trials are reported as
min / median / max.
"""


def write_section(path: Path, report: Report, clock: Clock | None = None) -> None:
    """Replace (or append) this bench's section in BENCHMARKS.md."""
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    section = report.section((clock or SystemClock()).now())
    pattern = re.compile(rf"<!-- bench:{report.name} -->.*?<!-- /bench:{report.name} -->", re.S)
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else (text.rstrip() + "\n\n" + section + "\n")
    )
    path.write_text(text, encoding="utf-8")


def json_line(report: Report) -> str:
    return json.dumps(report.as_json(), sort_keys=True, allow_nan=False)
