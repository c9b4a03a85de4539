"""Dispatcher behaviour on real parts: offline speakers, pre-emption, a dying broker."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from broadcaster.broadcasts.legs import mp3_alignment_us
from broadcaster.broker.process import Broker, start_broker
from broadcaster.places import demo_data
from tests.conftest import Running, fleet_of, make_settings, serve, wav
from tests.test_e2e import wait_final, wait_online

COMMUNE = demo_data.COMMUNE[0]


async def upload(r: Running, seconds: float) -> str:
    resp = await r.client.post(
        f"/api/communes/{COMMUNE}/media", files={"file": ("b.wav", wav(seconds), "audio/wav")}
    )
    assert resp.status_code == 201, resp.text
    media_id: str = resp.json()["media"]["id"]
    return media_id


async def start(
    r: Running, media_id: str, targets: list[dict[str, str]], priority: str = "normal"
) -> str:
    resp = await r.client.post(
        "/api/broadcasts", json={"media_id": media_id, "targets": targets, "priority": priority}
    )
    assert resp.status_code == 202, resp.text
    bid: str = resp.json()["broadcast"]["id"]
    return bid


def outcomes(b: dict[str, Any]) -> dict[str, str]:
    return {d["device_id"]: d["outcome"] for d in b["deliveries"]}


async def test_offline_speaker_is_recorded_offline(running: Running) -> None:
    specs = [s for s in demo_data.fleet_specs() if s.hamlet == "ap-1" and s.id != "vt-ap-1-3"]
    async with fleet_of(running, specs):
        await wait_online(running, 2)
        b = await wait_final(
            running,
            await start(
                running, await upload(running, 0.5), [{"commune": COMMUNE, "hamlet": "ap-1"}]
            ),
        )
    assert outcomes(b) == {"vt-ap-1-1": "played", "vt-ap-1-2": "played", "vt-ap-1-3": "offline"}
    assert b["summary"][f"{COMMUNE}/ap-1"] == {
        "targeted": 3,
        "played": 2,
        "partial": 0,
        "missed": 0,
        "offline": 1,
        "pending": 0,
        "untargeted": 0,
    }


async def test_speaker_that_leaves_is_marked_offline(running: Running) -> None:
    specs = [s for s in demo_data.fleet_specs() if s.hamlet == "ap-5"]
    async with fleet_of(running, specs):
        await wait_online(running, 3)
    with anyio.fail_after(10):
        while True:
            devs = (await running.client.get(f"/api/communes/{COMMUNE}/devices")).json()
            if not any(d["online"] for d in devs["devices"] if d["hamlet"] == "ap-5"):
                break
            await anyio.sleep(0.05)


async def test_priority_bulletin_preempts_normal_on_shared_speakers(running: Running) -> None:
    specs = [s for s in demo_data.fleet_specs() if s.hamlet in ("ap-1", "ap-2")]
    async with fleet_of(running, specs) as fleet:
        await wait_online(running, 6)
        long_media, short_media = await upload(running, 4.0), await upload(running, 0.5)
        first = await start(running, long_media, [{"commune": COMMUNE}])
        with anyio.fail_after(10):  # wait until every speaker is really playing it
            while {e["device"] for e in fleet.log.of("play")} != {s.id for s in specs}:
                await anyio.sleep(0.02)
        second = await start(
            running, short_media, [{"commune": COMMUNE, "hamlet": "ap-1"}], priority="priority"
        )
        b2 = await wait_final(running, second)
        b1 = await wait_final(running, first)
        # The normal bulletin kept playing until the priority one began, then stopped;
        # its trailing frames are ignored, not mistaken for replays.
        for device in demo_data.device_ids("ap-1"):
            old = [e for e in fleet.log.of("play", device=device, stream=b1["stream_id"])]
            new = [e for e in fleet.log.of("play", device=device, stream=b2["stream_id"])]
            assert old and new
            assert max(e["pts_us"] for e in old) < min(e["pts_us"] for e in new)
            assert max(e["true_us"] for e in old) > b2["created_us"]  # played during the lead
        assert all(sp.counters["refused"] == 0 for sp in fleet.speakers.values()), fleet.log.of(
            "refused"
        )
        assert sum(sp.counters["ignored"] for sp in fleet.speakers.values()) > 0
    assert set(outcomes(b2).values()) == {"played"}
    assert b2["status"] == "done"
    # The pre-empted bulletin's record says so: not "done" over speakers it lost.
    assert b1["status"] == "partial" and "3 preempted" in b1["error"], b1["error"]
    o1 = outcomes(b1)
    assert {o1[d] for d in demo_data.device_ids("ap-1")} == {"preempted"}
    assert {o1[d] for d in demo_data.device_ids("ap-2")} == {"played"}
    running_ids = {s.id for s in specs}
    assert all(d["frames_played"] > 0 for d in b1["deliveries"] if d["device_id"] in running_ids)
    assert {o for d, o in o1.items() if d not in running_ids} == {"offline"}


async def test_broadcast_fails_cleanly_when_the_broker_dies(tmp_path: Path) -> None:
    own: Broker = start_broker("auto")  # amqtt where mosquitto is missing
    settings = make_settings(
        tmp_path,
        own,
        mqtt={"publish_timeout_s": 1.0, "backoff_max_s": 0.5},
        stream={"outage_grace_s": 2.0},  # rides out shorter outages (tests/test_fault_outage)
    )
    try:
        async with serve(settings) as r:
            media = await upload(r, 3.0)
            bid = await start(r, media, [{"commune": COMMUNE}])
            own.stop()
            b = await wait_final_or_failed(r, bid)
            assert b["status"] == "interrupted"
            assert "unreachable for more than 2 s" in b["error"]
            assert {d["outcome"] for d in b["deliveries"]} <= {"offline", "no_report"}
            health = (await r.client.get("/api/health")).json()
            assert health["ok"] is True and health["mqtt"] is False
    finally:
        own.stop()


async def wait_final_or_failed(r: Running, bid: str) -> dict[str, Any]:
    with anyio.fail_after(30):
        while True:
            b: dict[str, Any] = (await r.client.get(f"/api/broadcasts/{bid}")).json()["broadcast"]
            if b["status"] not in ("streaming", "finishing"):
                return b
            await anyio.sleep(0.1)


async def test_mp3_only_speakers_get_an_mp3_stream_in_step(running: Running) -> None:
    specs = [
        replace(s, codecs=("mp3",)) if s.id == "vt-ap-1-2" else s
        for s in demo_data.fleet_specs()
        if s.hamlet in ("ap-1", "ap-2")
    ]
    async with fleet_of(running, specs) as fleet:
        await wait_online(running, len(specs))
        b = await wait_final(
            running,
            await start(
                running,
                await upload(running, 1.0),
                [{"commune": COMMUNE, "hamlet": "ap-1"}, {"commune": COMMUNE, "hamlet": "ap-2"}],
            ),
        )
    assert set(outcomes(b).values()) == {"played"}
    streams = {s["codec"]: s["stream_id"] for s in b["streams"]}
    assert set(streams) == {"opus", "mp3"}
    mp3_players = {e["device"] for e in fleet.log.of("play", stream=streams["mp3"])}
    opus_players = {e["device"] for e in fleet.log.of("play", stream=streams["opus"])}
    assert mp3_players == {"vt-ap-1-2"}
    assert opus_players == {s.id for s in specs} - {"vt-ap-1-2"}
    # Both legs' first programme sample sounds at the same moment (protocol v1.1): the
    # MP3 timeline sits earlier by LAME's delay less Opus's muted pre-skip (312 samples).
    first = {e["device"]: e["pts_us"] for e in fleet.log.of("play") if e["seq"] == 1}
    opus_first = {t for d, t in first.items() if d != "vt-ap-1-2"}
    assert len(opus_first) == 1
    assert first["vt-ap-1-2"] - opus_first.pop() == mp3_alignment_us(312, 48000)
    # The MP3 leg went only to Ấp 1's group (the only one with an MP3-only speaker): two
    # Opus groups and one MP3 group, each START + frames + END.
    chunks = {st["codec"]: st["chunks"] for st in b["streams"]}
    assert running.services.dispatcher.publishes == 2 * (chunks["opus"] + 2) + (chunks["mp3"] + 2)
    assert all(d["frames_missing"] == 0 for d in b["deliveries"])
