"""loa bench: the statistics, the BENCHMARKS.md writer and the JSON line are right."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from broadcaster.bench.fleet import late_fraction
from broadcaster.bench.report import Figure, Report, json_line, percentile, spread, write_section
from broadcaster.bench.sync import chunk_spreads, deviations, handover_late_ms
from devices.topics import mqtt_publish_overhead


def test_percentile_and_spread() -> None:
    xs = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(xs, 0) == 1 and percentile(xs, 100) == 5 and percentile(xs, 50) == 3
    assert percentile([1.0, 2.0], 50) == 1.5
    assert spread([3.0, 1.0, 2.0]) == (1.0, 2.0, 3.0)


def report(value: float) -> Report:
    return Report(
        "demo",
        "Demo bench",
        "loa bench demo",
        [Figure("speed_x", "speed", value, "x", [1.0, value, 9.0])],
        notes=["a note"],
    )


def test_sections_are_replaced_not_duplicated(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    write_section(path, report(2.0))
    write_section(path, Report("other", "Other", "loa bench other", [Figure("k", "k", 1, "")]))
    write_section(path, report(7.5))
    text = path.read_text()
    assert text.count("<!-- bench:demo -->") == 1 and text.count("<!-- bench:other -->") == 1
    assert "**7.5** x" in text and "**2** x" not in text
    assert "Command: `loa bench demo`" in text and "Machine:" in text and "Date:" in text
    assert re.search(r"1 / 7\.5 / 9", text)


def test_json_line_has_every_key() -> None:
    assert json.loads(json_line(report(3.0))) == {"speed_x": 3.0}


def test_a_figure_nothing_measured_is_null_in_json_and_n_a_in_the_table() -> None:
    r = Report("x", "X", "loa bench x", [Figure("p99_ms", "p99", percentile([], 99), "ms")])
    assert json.loads(json_line(r)) == {"p99_ms": None}  # strict JSON: no NaN
    assert "**n/a** ms" in r.table()


def test_chunk_spreads_and_deviations() -> None:
    events = [
        {"event": "play", "stream": "s", "seq": 1, "device": d, "true_play_us": t}
        for d, t in (("a", 1_000), ("b", 3_000), ("c", 2_000))
    ] + [{"event": "play", "stream": "other", "seq": 1, "device": "a", "true_play_us": 0}]
    assert chunk_spreads(events, {"s"}) == {"s": [2.0]}
    assert sorted(deviations(events, {"s"})) == [-1.0, 0.0, 1.0]


def test_handover_lateness_separates_the_simulators_wake_up_from_the_clock_model() -> None:
    events = [
        {"event": "play", "stream": "s", "seq": 1, "device": d, "true_play_us": m, **h}
        for d, m, h in (
            ("a", 1_000, {"handed_true_us": 1_400}),
            ("b", 3_000, {"handed_true_us": 4_200}),
            ("c", 2_000, {}),  # a log from before hand-over times were recorded
        )
    ] + [{"event": "play", "stream": "x", "seq": 1, "device": "a", "true_play_us": 0}]
    assert handover_late_ms(events, {"s"}) == [0.4, 1.2]
    # the spread of what was handed over, and of the model alone
    assert chunk_spreads(events, {"s"}) == {"s": [2.8]}  # 4.2 - 1.4 ms
    assert chunk_spreads(events, {"s"}, "true_play_us") == {"s": [2.0]}


def test_late_fraction_counts_late_missing_and_silent_speakers() -> None:
    rows = [
        {
            "targeted": True,
            "online_at_start": True,
            "outcome": "played",
            "frames_late": 0,
            "frames_missing": 0,
        },
        {
            "targeted": True,
            "online_at_start": True,
            "outcome": "partial",
            "frames_late": 1,
            "frames_missing": 1,
        },
        {
            "targeted": True,
            "online_at_start": True,
            "outcome": "no_report",
            "frames_late": 0,
            "frames_missing": 0,
        },
        {
            "targeted": True,
            "online_at_start": False,
            "outcome": "offline",
            "frames_late": 0,
            "frames_missing": 0,
        },
    ]
    assert late_fraction({"chunks": 10, "deliveries": rows}) == pytest.approx(12 / 30)


@pytest.mark.parametrize(("payload", "expected"), [(0, 2 + 2 + 9 + 2), (200, 3 + 2 + 9 + 2)])
def test_mqtt_publish_overhead(payload: int, expected: int) -> None:
    # fixed header byte + remaining-length bytes + topic length + topic + packet id
    assert mqtt_publish_overhead("loa/v1/xa", payload) == expected


def run_bench(tmp_path: Path, name: str, *args: str) -> dict[str, Any]:
    """``loa bench NAME ARGS --json`` in a subprocess; the figures of its last line."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "broadcaster.cli",
            "bench",
            name,
            *args,
            "--json",
            "--benchmarks",
            str(tmp_path / "B.md"),
            "--plots",
            str(tmp_path / "plots"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    figures: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    assert f"<!-- bench:{name} -->" in (tmp_path / "B.md").read_text()
    return figures


@pytest.mark.e2e
def test_bench_bytes_prints_json_with_the_documented_keys(tmp_path: Path) -> None:
    figures = run_bench(tmp_path, "bytes", "--seconds", "30", "--trials", "1")
    assert {"opus24_bytes_per_hour", "mp3_128_bytes_per_hour", "overhead_ratio"} <= set(figures)
    assert figures["mp3_128_bytes_per_hour"] > 3 * figures["opus24_bytes_per_hour"]
    assert 0 < figures["overhead_ratio"] < 0.06
    assert (tmp_path / "plots" / "bytes-per-hour.png").stat().st_size > 1000


def test_bench_audio_prints_json_with_the_documented_keys(tmp_path: Path) -> None:
    figures = run_bench(
        tmp_path, "audio", "--seconds", "20", "--live-seconds", "4", "--trials", "1"
    )
    keys = {"ingest_ratio_vs_ffmpeg", "opus24_bytes_per_hour", "mp3_128_bytes_per_hour"}
    assert keys <= set(figures)
    assert figures["ingest_ratio_vs_ffmpeg"] > 1  # more work than a plain transcode
    assert figures["mp3_128_bytes_per_hour"] > 3 * figures["opus24_bytes_per_hour"]
    # 24 kb/s is 10.8 MB/h of audio; the Ogg container adds a little.
    assert 9e6 < figures["opus24_bytes_per_hour"] < 13e6
    assert 0 < figures["live_latency_p50_ms"] <= figures["live_latency_max_ms"]
    assert (tmp_path / "plots" / "live-latency.png").stat().st_size > 1000


def test_bench_alert_prints_json_with_the_documented_keys(tmp_path: Path) -> None:
    figures = run_bench(tmp_path, "alert", "--sizes", "5", "--leads", "100,250", "--trials", "1")
    assert {"speakers", "p50_ms", "p99_ms", "max_ms", "played_fraction"} <= set(figures)
    assert {"arrival_p50_ms", "arrival_p99_ms", "min_lead_ms_all_on_time"} <= set(figures)
    assert figures["speakers"] == 5 and figures["played_fraction"] == 1.0
    # the deliberate 250 ms lead, plus a little; never before the confirm
    assert 200 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"] < 5000
    # frames arrive after the confirm and before they play
    assert 0 < figures["arrival_p50_ms"] <= figures["arrival_p99_ms"] < figures["p50_ms"]
    assert figures["min_lead_ms_all_on_time"] in (100, 250)  # 5 speakers: the smaller
    assert figures["on_time_share_lead_250"] == 1.0
    assert figures["p99_ms_lead_100"] < figures["p99_ms_lead_250"]  # the lead is honoured
    assert (tmp_path / "plots" / "alert-latency.png").stat().st_size > 1000
