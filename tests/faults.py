"""Helpers for the fault tests (issue 18): the simulator as its own process, waits."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from broadcaster.broadcasts.outcome import RUNNING
from broadcaster.places import demo_data
from firmware_sim.spec import DeviceSpec, dump_fleet
from tests.conftest import Running

COMMUNE = demo_data.COMMUNE[0]


def sim_process(
    tmp: Path, host: str, port: int, pubkey: str, specs: Sequence[DeviceSpec], *extra: str
) -> subprocess.Popen[bytes]:
    """``python -m firmware_sim`` (``loa sim``) with these speakers; play log in tmp."""
    fleet = tmp / "fleet.json"
    fleet.write_text(dump_fleet(list(specs)))
    argv = [
        sys.executable,
        "-m",
        "firmware_sim",
        "--fleet",
        str(fleet),
        "--host",
        host,
        "--port",
        str(port),
        "--pubkey",
        pubkey,
        "--play-log",
        str(tmp / "plays.jsonl"),
        *extra,
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=(tmp / "sim.log").open("ab"))


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def wait_online(r: Running, ids: Sequence[str], timeout: float = 30) -> None:
    with anyio.fail_after(timeout):
        while True:
            devs = (await r.client.get(f"/api/communes/{COMMUNE}/devices")).json()["devices"]
            if {d["id"] for d in devs if d["online"]} >= set(ids):
                return
            await anyio.sleep(0.2)


async def upload(r: Running, wav_bytes: bytes, title: str = "Thông báo mất điện") -> str:
    up = await r.client.post(
        f"/api/communes/{COMMUNE}/media",
        files={"file": ("thong-bao.wav", wav_bytes, "audio/wav")},
        data={"title": title},
    )
    assert up.status_code == 201, up.text
    media: str = up.json()["media"]["id"]
    return media


async def start(r: Running, media: str, hamlet: str) -> str:
    resp = await r.client.post(
        "/api/broadcasts",
        json={"media_id": media, "targets": [{"commune": COMMUNE, "hamlet": hamlet}]},
    )
    assert resp.status_code == 202, resp.text
    bid: str = resp.json()["broadcast"]["id"]
    return bid


async def final(r: Running, bid: str, timeout: float = 90) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        while True:
            b: dict[str, Any] = (await r.client.get(f"/api/broadcasts/{bid}")).json()["broadcast"]
            if b["status"] not in RUNNING:
                return b
            await anyio.sleep(0.3)
