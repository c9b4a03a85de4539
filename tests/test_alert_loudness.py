"""Alerts are loud enough: the siren, the message and the all-clear, as stored for the
air, measure −14 ± 1 LUFS (EBU R128, ffmpeg's ebur128 filter run here, independently of
Loa's own measuring) with true peaks limited — never quieter than the bulletins."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from audio.ffmpeg import find_ffmpeg
from broadcaster.settings import Settings, build
from loa.errors import LoaError
from tests.conftest import Running
from tests.test_alerts import FLOOD, act, create, targets

CAP = Path(__file__).parent / "cap"


def ebur128(path: str) -> tuple[float, float]:
    """(integrated LUFS, true peak dBFS) of an audio file, by ffmpeg's ebur128 filter."""
    out = subprocess.run(
        [
            find_ffmpeg(""),
            "-hide_banner",
            "-nostats",
            "-i",
            path,
            "-af",
            "ebur128=peak=true",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stderr
    summary = out[out.rindex("Summary:") :]
    lufs = float(re.search(r"I:\s*(-?[\d.]+) LUFS", summary).group(1))  # type: ignore[union-attr]
    peak = float(re.search(r"Peak:\s*(-?[\d.]+) dBFS", summary).group(1))  # type: ignore[union-attr]
    return lufs, peak


def media_path(r: Running, media_id: str) -> str:
    row: dict[str, Any] = r.services.store.media_row(media_id)
    return str(row["path"])


async def test_siren_message_and_all_clear_measure_minus_14_lufs(running: Running) -> None:
    measured = {}
    flood = await create(running, {**FLOOD, "siren": "wail", "targets": targets("ap-1")})
    measured["siren + message"] = ebur128(media_path(running, flood["media_id"]))
    english = await running.client.post(
        "/api/communes/vi-tan/alerts/cap",
        content=(CAP / "en-nws-flood.xml").read_bytes(),
        headers={"content-type": "application/cap+xml"},
    )
    assert english.status_code == 201, english.text  # siren only, until Vietnamese is written
    measured["siren"] = ebur128(media_path(running, english.json()["alert"]["media_id"]))
    await act(running, flood["id"], "confirm")
    cleared = await act(running, flood["id"], "all-clear")
    clear_bid = next(b for b in cleared["broadcasts"] if b["kind"] == "all_clear")["broadcast_id"]
    media_id = running.services.store.query(
        "SELECT media_id FROM broadcasts WHERE id=?", [clear_bid]
    )[0]["media_id"]
    measured["all-clear"] = ebur128(media_path(running, media_id))
    print("alert loudness (LUFS, true peak dBFS):", measured)
    for what, (lufs, peak) in measured.items():
        assert -15.0 <= lufs <= -13.0, (what, lufs)
        assert peak <= 0.0, (what, peak)  # limited: never clipping


def test_alerts_are_never_set_quieter_than_bulletins() -> None:
    assert Settings().alerts.loudness_lufs == -14.0 >= Settings().audio.loudness_lufs
    with pytest.raises(LoaError, match="never quieter"):
        build({"alerts": {"loudness_lufs": -20.0}}, source="test")
    assert build({"alerts": {"loudness_lufs": -12.0}}, source="test").alerts.loudness_lufs == -12
