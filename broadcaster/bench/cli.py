"""``loa bench NAME``: run one benchmark, print its table, update BENCHMARKS.md."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from rich.progress import Progress

from .plots import plot
from .report import Report, json_line, write_section


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="bench", required=True)
    for name, helptext in (
        ("sync", "how far apart speakers start the same audio"),
        ("bytes", "bytes on the air per hour by codec"),
        ("fleet", "largest fleet served on time; dispatcher CPU vs naive"),
        ("audio", "library ingest cost vs plain ffmpeg; live microphone latency"),
        ("alert", "confirm → first siren frame played, for 10, 100 and 1000 speakers"),
        ("ingest", "memory a 55-minute upload costs; refusing a 4-hour one"),
        ("loop", "event-loop lag while everything happens at once"),
        ("live", "microphone to speaker on the simulator's true clock"),
    ):
        b = sub.add_parser(name, help=helptext)
        b.add_argument(
            "--json", action="store_true", help="end with one JSON object of the figures"
        )
        b.add_argument(
            "--benchmarks",
            type=Path,
            default=Path("BENCHMARKS.md"),
            help="file to update (default BENCHMARKS.md)",
        )
        b.add_argument(
            "--plots", type=Path, default=Path("docs/bench"), help="folder for PNG plots"
        )
        b.add_argument("--no-write", action="store_true", help="print only")
        b.add_argument("--trials", type=int, default=3, help="repeated trials")
        if name == "sync":
            b.add_argument("--devices", type=int, default=50)
            b.add_argument(
                "--settle",
                type=float,
                default=300.0,
                help="seconds of clock sync before the first broadcast",
            )
            b.add_argument(
                "--sync-interval",
                type=float,
                default=0.5,
                help="seconds between a speaker's clock-sync exchanges",
            )
            b.add_argument(
                "--converge",
                action="store_true",
                help="measure the time to converge at the shipped sync interval instead",
            )
            b.add_argument("--budget", type=float, default=3600.0, help="--converge: seconds")
            b.add_argument("--probe-every", type=float, default=120.0, help="--converge: seconds")
        if name == "bytes":
            b.add_argument(
                "--seconds", type=float, default=120.0, help="seconds of speech per trial"
            )
        if name == "audio":
            b.add_argument(
                "--seconds", type=float, default=300.0, help="seconds of speech to ingest"
            )
            b.add_argument(
                "--live-seconds", type=float, default=30.0, help="seconds of live audio per trial"
            )
        if name == "alert":
            b.add_argument(
                "--sizes",
                default="10,100,1000",
                help="comma-separated fleet sizes (default 10,100,1000)",
            )
            b.add_argument(
                "--leads",
                default="50,100,150,250",
                help="stream.emergency_lead_ms values swept at the largest size (ms)",
            )
        if name == "live":
            b.add_argument("--seconds", type=float, default=30.0, help="seconds per session")
        if name == "loop":
            b.add_argument("--speakers", type=int, default=3000, help="speakers in the storm")
            b.add_argument(
                "--upload-minutes", type=float, default=55.0, help="length of the big upload"
            )
        if name == "fleet":
            b.add_argument("--max-speakers", type=int, default=5000)
            b.add_argument("--processes", type=int, default=2, help="simulator processes")
            b.add_argument(
                "--cpu-only",
                action="store_true",
                help="only the dispatcher CPU comparison (its own section)",
            )


def run(args: argparse.Namespace) -> int:
    with Progress(transient=True) as progress:
        task = progress.add_task(f"loa bench {args.bench}", total=None)

        def tick() -> None:
            progress.advance(task)

        report = _dispatch(args, tick)
    report.print()
    if not args.no_write:
        for path in plot(report, args.plots):  # linked relative to BENCHMARKS.md
            report.plots.append(os.path.relpath(path.resolve(), args.benchmarks.resolve().parent))
        write_section(args.benchmarks, report)
        print(f"updated {args.benchmarks}")
    if args.json:
        print(json_line(report))
    return 0


def _dispatch(args: argparse.Namespace, tick: Callable[[], None]) -> Report:
    with tempfile.TemporaryDirectory(prefix=f"loa-bench-{args.bench}-") as tmp:
        work = Path(tmp)
        if args.bench == "sync" and args.converge:
            from . import sync

            return sync.converge(
                work,
                devices=args.devices,
                budget_s=args.budget,
                probe_every_s=args.probe_every,
                progress=tick,
            )
        if args.bench == "sync":
            from . import sync

            report, _ = sync.run(
                work,
                devices=args.devices,
                trials=args.trials,
                settle_s=args.settle,
                sync_interval_s=args.sync_interval,
                progress=tick,
            )
            return report
        if args.bench == "bytes":
            from . import bytes as bytes_bench

            return bytes_bench.run(seconds=args.seconds, trials=args.trials)
        if args.bench == "alert":
            from . import alert

            sizes = tuple(int(x) for x in args.sizes.split(",") if x.strip())
            leads = tuple(int(x) for x in args.leads.split(",") if x.strip())
            return alert.run(work, sizes=sizes, leads=leads, trials=args.trials, progress=tick)
        if args.bench == "live":
            from . import audio

            return audio.run_live(work, seconds=args.seconds, trials=args.trials)
        if args.bench == "loop":
            from . import loop

            return loop.run(
                work,
                speakers=args.speakers,
                trials=args.trials,
                upload_min=args.upload_minutes,
                progress=tick,
            )
        if args.bench == "ingest":
            from . import ingest

            return ingest.run(work, trials=args.trials, progress=tick)
        if args.bench == "audio":
            from . import audio

            return audio.run(
                work, seconds=args.seconds, trials=args.trials, live_s=args.live_seconds
            )
        from . import fleet

        return fleet.run(
            work,
            max_speakers=args.max_speakers,
            processes=args.processes,
            trials=args.trials,
            progress=tick,
            cpu_only=args.cpu_only,
        )
