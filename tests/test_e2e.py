"""The whole path on real parts: HTTP → SQLite → dispatcher → Mosquitto → speakers → ledger."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from broadcaster.places import demo_data
from firmware_sim.playlog import read_log
from firmware_sim.spec import dump_fleet
from tests.conftest import Running, fleet_of, wav

pytestmark = pytest.mark.e2e
COMMUNE = demo_data.COMMUNE[0]


async def wait_online(r: Running, count: int, timeout: float = 20) -> None:
    with anyio.fail_after(timeout):
        while True:
            devs = (await r.client.get(f"/api/communes/{COMMUNE}/devices")).json()["devices"]
            if sum(d["online"] for d in devs) >= count:
                return
            await anyio.sleep(0.1)


async def wait_final(r: Running, bid: str, timeout: float = 30) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        while True:
            b: dict[str, Any] = (await r.client.get(f"/api/broadcasts/{bid}")).json()["broadcast"]
            if b["status"] not in ("streaming", "finishing"):  # final (done, partial, ...)
                return b
            await anyio.sleep(0.2)


async def broadcast(r: Running, media_id: str, targets: list[dict[str, str]]) -> dict[str, Any]:
    resp = await r.client.post(
        "/api/broadcasts", json={"media_id": media_id, "targets": targets, "title": "Thông báo thử"}
    )
    assert resp.status_code == 202, resp.text
    return await wait_final(r, resp.json()["broadcast"]["id"])


async def test_upload_and_broadcast_to_hamlet_then_commune(running: Running, tmp_path: Path):
    specs = demo_data.fleet_specs()
    assert len(specs) >= 20
    fleet_file = tmp_path / "fleet.json"
    fleet_file.write_text(dump_fleet(specs))
    log_path = tmp_path / "plays.jsonl"
    settings = running.services.settings
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware_sim",
            "--fleet",
            str(fleet_file),
            "--host",
            settings.mqtt.host,
            "--port",
            str(settings.mqtt.port),
            "--pubkey",
            running.services.signer.public_hex(),
            "--play-log",
            str(log_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        await wait_online(running, len(specs))
        up = await running.client.post(
            f"/api/communes/{COMMUNE}/media",
            files={"file": ("thong-bao.wav", wav(2.0), "audio/wav")},
            data={"title": "Thông báo lịch tiêm chủng"},
        )
        assert up.status_code == 201, up.text
        media = up.json()["media"]
        assert media["renditions"][1]["codec"] == "opus" and 2500 < media["duration_ms"] < 4500
        assert media["title"] == "Thông báo lịch tiêm chủng"

        hamlet = await broadcast(running, media["id"], [{"commune": COMMUNE, "hamlet": "ap-1"}])
        targeted = {d["device_id"] for d in hamlet["deliveries"] if d["targeted"]}
        assert targeted == set(demo_data.device_ids("ap-1"))
        assert all(d["outcome"] == "played" for d in hamlet["deliveries"]), hamlet["deliveries"]
        assert all(d["targeted"] for d in hamlet["deliveries"])
        assert all(d["frames_missing"] == 0 and d["frames_late"] == 0 for d in hamlet["deliveries"])

        whole = await broadcast(running, media["id"], [{"commune": COMMUNE}])
        assert {d["device_id"] for d in whole["deliveries"]} == {s.id for s in specs}
        assert all(d["outcome"] == "played" for d in whole["deliveries"]), whole["deliveries"]
        assert whole["summary"][f"{COMMUNE}/ap-7"]["played"] == 3

        # Ground truth from the simulator: nobody outside Ấp 1 played the first broadcast.
        plays = [e for e in read_log(log_path) if e["event"] == "play"]
        reported = {
            e["stream"]
            for e in read_log(log_path)
            if e["event"] == "report" and e["device"] == "vt-ap-1-1"
        }
        assert reported == {hamlet["stream_id"], whole["stream_id"]}
        by_stream: dict[str, set[str]] = {}
        for e in plays:
            by_stream.setdefault(e["stream"], set()).add(e["device"])
        assert by_stream[hamlet["stream_id"]] == set(demo_data.device_ids("ap-1"))
        leg_streams = {st["codec"]: st["stream_id"] for st in whole["streams"]}
        assert by_stream[leg_streams["opus"]] == {s.id for s in specs} - demo_data.MP3_ONLY
        assert by_stream[leg_streams["mp3"]] == set(demo_data.MP3_ONLY)
        assert running.services.facts.untargeted_reports == 0
        # One publish per group per frame, never one per device.
        # Ấp 1: one Opus group; whole commune: one Opus group + one MP3 group (Ấp 7 has a
        # speaker that decodes only MP3, vt-ap-7-3).
        legs = {s["codec"]: s["chunks"] for s in whole["streams"]}
        assert {s["codec"] for s in hamlet["streams"]} == {"opus"}
        assert running.services.dispatcher.publishes == (
            hamlet["chunks"] + 2 + legs["opus"] + 2 + legs["mp3"] + 2
        )
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        if proc.returncode not in (0, -15):
            print(out.decode(errors="replace"))


async def test_targets_zone_and_single_device(running: Running) -> None:
    specs = [s for s in demo_data.fleet_specs() if s.hamlet in ("ap-1", "ap-2", "ap-3")]
    async with fleet_of(running, specs) as fleet:
        await wait_online(running, len(specs))
        up = await running.client.post(
            f"/api/communes/{COMMUNE}/media", files={"file": ("a.wav", wav(1.0), "audio/wav")}
        )
        media_id = up.json()["media"]["id"]
        b = await broadcast(
            running,
            media_id,
            [
                {"commune": COMMUNE, "zone": demo_data.MARKET_ZONE[0]},
                {"commune": COMMUNE, "device": "vt-ap-3-2"},
            ],
        )
    expected = {*demo_data.MARKET_ZONE[2], "vt-ap-3-2"}
    assert {d["device_id"] for d in b["deliveries"]} == expected
    assert all(d["outcome"] == "played" for d in b["deliveries"])
    played = {e["device"] for e in fleet.log.of("play", stream=b["stream_id"])}
    assert played == expected
