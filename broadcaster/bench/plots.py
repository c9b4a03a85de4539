"""PNG plots for BENCHMARKS.md (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure as MplFigure

from .report import Report


def plot(report: Report, folder: Path) -> list[Path]:
    """Draw the plots a report has data for; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    s = report.series
    if report.name == "sync" and s.get("deviation_ms"):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.hist(s["deviation_ms"], bins=60, color="#2a7ab0")
        ax.set_xlabel("speaker play time − median of all speakers, same chunk (ms)")
        ax.set_ylabel("chunks")
        ax.set_title("Speakers in step: skew between speakers")
        out.append(_save(fig, folder / "sync-skew.png"))
    if report.name == "bytes" and s:
        names = sorted(s, key=lambda k: sum(s[k]) / len(s[k]))
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.barh(names, [sum(s[k]) / len(s[k]) / 1e6 for k in names], color="#3c8d40")
        ax.set_xlabel("MB on the air per hour of speech, per speaker")
        ax.set_title("Bytes per hour by codec")
        out.append(_save(fig, folder / "bytes-per-hour.png"))
    if report.name == "audio" and s.get("live_latency_ms"):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.hist(s["live_latency_ms"], bins=40, color="#b0552a")
        ax.axvline(1000, color="red", lw=0.8)
        ax.set_xlabel("microphone → frame published (ms)")
        ax.set_ylabel("frames")
        ax.set_title("Live latency")
        out.append(_save(fig, folder / "live-latency.png"))
    if report.name == "alert" and s:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        lats = [kv for kv in s.items() if kv[0].startswith("lat_")]
        for key, values in sorted(lats, key=lambda kv: int(kv[0].split("_")[1])):
            if values:
                ax.hist(values, bins=40, alpha=0.6, label=f"{key.split('_')[1]} speakers")
        ax.axvline(300, color="red", lw=0.8)
        ax.set_xlabel("confirm → first siren frame played (ms)")
        ax.set_ylabel("speakers × trials")
        ax.set_title("Emergency alert latency")
        ax.legend()
        out.append(_save(fig, folder / "alert-latency.png"))
        arrs = sorted(
            ((k, v) for k, v in s.items() if k.startswith("arr_") and v),
            key=lambda kv: int(kv[0].split("_")[1]),
        )
        if arrs:
            fig, ax = plt.subplots(figsize=(7, 3.5))
            for key, values in arrs:
                ax.hist(values, bins=40, alpha=0.6, label=f"{key.split('_')[1]} speakers")
            ax.set_xlabel("confirm → first frame arrived at the speaker (ms)")
            ax.set_ylabel("speakers × trials")
            ax.set_title("Emergency alert: first-frame arrival")
            ax.legend()
            out.append(_save(fig, folder / "alert-arrival.png"))
    if report.name == "fleet" and s.get("fleet_size"):
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
        ax[0].plot(s["fleet_size"], s["late_pct"], "o-")
        ax[0].axhline(1.0, color="red", lw=0.8)
        ax[0].set_xscale("log")
        ax[0].set_xlabel("speakers")
        ax[0].set_ylabel("% frames late")
        ax[0].set_title("One broadcast to every speaker")
        ax[1].plot(s["cpu_size"], s["cpu_ours_ms"], "o-", label="one publish per group")
        ax[1].plot(s["cpu_size"], s["cpu_naive_ms"], "s-", label="one publish per speaker")
        ax[1].set_xscale("log")
        ax[1].set_yscale("log")
        ax[1].set_xlabel("speakers")
        ax[1].set_ylabel("dispatcher CPU per broadcast (ms)")
        ax[1].legend()
        out.append(_save(fig, folder / "fleet.png"))
    return out


def _save(fig: MplFigure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
