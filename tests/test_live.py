"""Live microphone over WebSocket and relay ("tiếp sóng") of an HTTP stream, end to end:
real app, real broker, real ffmpeg, simulated speakers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest
import websockets

from broadcaster.places import demo_data
from broadcaster.settings import Settings
from tests.conftest import Running, ffmpeg_make, fleet_of, make_settings, serve
from tests.test_api import COMMUNE, assert_error
from tests.test_dispatch import outcomes
from tests.test_e2e import wait_online

AP1 = [{"commune": COMMUNE, "hamlet": "ap-1"}]


def live_settings(tmp: Path, broker: Any, **stream: object) -> Settings:
    return make_settings(
        tmp,
        broker,
        stream={
            "lead_ms": 600,
            "chunk_ms": 500,
            "first_chunk_ms": 200,
            "report_grace_s": 1.0,
            "live_idle_timeout_s": 1.5,
            **stream,
        },
        relay={"allowed_hosts": ["127.0.0.1"]},  # the test radio is on loopback
    )


@pytest.fixture
def webm(tmp_path: Path) -> bytes:
    """4 s of a tone as a browser's MediaRecorder would send it (webm/opus)."""
    return ffmpeg_make(
        tmp_path,
        "mic.webm",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=4",
        "-c:a",
        "libopus",
        "-b:a",
        "32k",
    ).read_bytes()


def ws_url(r: Running) -> str:
    return r.url.replace("http://", "ws://") + f"/api/communes/{COMMUNE}/live"


async def wait_status(r: Running, bid: str, timeout: float = 30) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        while True:
            b: dict[str, Any] = (await r.client.get(f"/api/broadcasts/{bid}")).json()["broadcast"]
            if b["status"] not in ("streaming", "finishing"):
                return b
            await anyio.sleep(0.2)


async def messages_until_off_air(ws: Any) -> list[dict[str, Any]]:
    got = []
    with anyio.fail_after(20):
        async for raw in ws:
            msg = json.loads(raw)
            got.append(msg)
            if msg["type"] in ("off_air", "error"):
                break
    return got


async def send_paced(ws: Any, data: bytes, pieces: int, seconds: float) -> None:
    step = -(-len(data) // pieces)
    for i in range(0, len(data), step):
        await ws.send(data[i : i + step])
        await anyio.sleep(seconds / pieces)


async def test_live_microphone_plays_on_the_targeted_hamlet_only(
    tmp_path: Path, broker: Any, webm: bytes
) -> None:
    specs = [s for s in demo_data.fleet_specs() if s.hamlet in ("ap-1", "ap-2")]
    async with serve(live_settings(tmp_path, broker)) as r, fleet_of(r, specs) as fleet:
        await wait_online(r, len(specs))
        async with websockets.connect(ws_url(r), additional_headers=r.auth) as ws:
            await ws.send(json.dumps({"targets": AP1, "title": "Loa trực tiếp"}))
            first = json.loads(await ws.recv())
            assert first["type"] == "on_air", first
            await send_paced(ws, webm, pieces=16, seconds=4.0)
            await ws.send(json.dumps({"type": "stop"}))
            msgs = await messages_until_off_air(ws)
        assert msgs[-1]["type"] == "off_air" and msgs[-1]["reason"] == "stopped"
        b = await wait_status(r, first["broadcast"])
        played = {e["device"] for e in fleet.log.of("play")}
    assert b["status"] == "done" and b["kind"] == "live"
    assert b["title"] == "Loa trực tiếp" and b["media_id"] is None
    assert set(outcomes(b).values()) == {"played"}
    assert set(outcomes(b)) == set(demo_data.device_ids("ap-1"))
    assert played == set(demo_data.device_ids("ap-1"))
    assert b["chunks"] >= 15  # ~4 s in 200 ms frames
    assert b["gaps"] == 0


async def test_dead_man_takes_a_silent_microphone_off_air(
    tmp_path: Path, broker: Any, webm: bytes
) -> None:
    async with serve(live_settings(tmp_path, broker)) as r:
        async with websockets.connect(ws_url(r), additional_headers=r.auth) as ws:
            await ws.send(json.dumps({"targets": AP1}))
            first = json.loads(await ws.recv())
            await ws.send(webm[: len(webm) // 3])  # then the phone goes quiet
            started = time.monotonic()
            msgs = await messages_until_off_air(ws)
            waited = time.monotonic() - started
        assert msgs[-1]["type"] == "off_air"
        assert msgs[-1]["reason"] == "no audio for 1.5 s"
        assert 1.0 < waited < 10
        b = await wait_status(r, first["broadcast"])
    assert b["status"] == "done" and b["chunks"] > 0


async def test_live_maximum_duration_ends_the_broadcast(
    tmp_path: Path, broker: Any, webm: bytes
) -> None:
    async with serve(live_settings(tmp_path, broker, live_max_s=2.0)) as r:
        async with websockets.connect(ws_url(r), additional_headers=r.auth) as ws:
            await ws.send(json.dumps({"targets": AP1}))
            await ws.recv()
            with pytest.raises(websockets.ConnectionClosed):
                await send_paced(ws, webm * 3, pieces=60, seconds=12.0)
            # The server said why before it closed.
        assert await ws.wait_closed() is None


async def test_dropped_phone_ends_the_broadcast(tmp_path: Path, broker: Any, webm: bytes) -> None:
    async with serve(live_settings(tmp_path, broker)) as r:
        ws = await websockets.connect(ws_url(r), additional_headers=r.auth)
        await ws.send(json.dumps({"targets": AP1}))
        first = json.loads(await ws.recv())
        await ws.send(webm[: len(webm) // 2])
        ws.transport.abort()  # no close handshake: the phone lost its network
        b = await wait_status(r, first["broadcast"])
    assert b["status"] == "done"


@pytest.mark.parametrize(
    ("first", "message"),
    [
        (b"\x1aE\xdf\xa3 binary first", "as the first message"),
        ("not json", "not valid JSON"),
        (json.dumps({"targets": []}), "invalid fields"),
        (json.dumps({"targets": [{"commune": COMMUNE, "hamlet": "ap-99"}]}), "ap-99"),
        (json.dumps({"targets": [{"commune": "xa-khac"}]}), "only that commune"),
        (json.dumps({"targets": AP1, "priority": "emergency"}), "invalid fields"),
    ],
)
async def test_bad_live_requests_are_refused_and_nothing_is_recorded(
    running: Running, first: str | bytes, message: str
) -> None:
    async with websockets.connect(ws_url(running), additional_headers=running.auth) as ws:
        await ws.send(first)
        reply = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
    assert reply["type"] == "error" and message in reply["message"] + json.dumps(reply["errors"])
    listed = (await running.client.get(f"/api/communes/{COMMUNE}/broadcasts")).json()
    assert listed["broadcasts"] == []


async def test_garbage_audio_ends_the_live_broadcast_cleanly(tmp_path: Path, broker: Any) -> None:
    async with serve(live_settings(tmp_path, broker)) as r:
        async with websockets.connect(ws_url(r), additional_headers=r.auth) as ws:
            await ws.send(json.dumps({"targets": AP1}))
            first = json.loads(await ws.recv())
            await ws.send(b"this is not audio at all " * 2000)
            msgs = await messages_until_off_air(ws)
        assert msgs[-1]["type"] == "off_air"
        b = await wait_status(r, first["broadcast"])
        assert (await r.client.get("/api/health")).status_code == 200
    assert b["status"] in ("done", "failed") and b["chunks"] == 0


# --- relay -------------------------------------------------------------------------------


class Radio:
    """A local HTTP "radio station" serving an MP3 stream at real time.

    ``cut_after_s`` makes the first connection drop after that much audio, as a
    flaky upstream does; later connections play on.
    """

    def __init__(self, mp3: bytes, *, kbps: int = 64, cut_after_s: float | None = None) -> None:
        self.mp3, self.rate = mp3, kbps * 1000 // 8
        self.cut_after_s = cut_after_s
        self.connections = 0
        self.hosts: list[str] = []  # the Host header of each request
        radio = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                radio.connections += 1
                radio.hosts.append(self.headers.get("Host", ""))
                first = radio.connections == 1
                self.send_response(200)
                self.send_header("Content-Type", "audio/mpeg")
                self.end_headers()
                step = radio.rate // 10
                sent = 0
                try:
                    for i in range(0, len(radio.mp3), step):
                        self.wfile.write(radio.mp3[i : i + step])
                        self.wfile.flush()
                        sent += step
                        if first and radio.cut_after_s and sent >= radio.rate * radio.cut_after_s:
                            return  # the upstream drops
                        time.sleep(0.1)
                except (BrokenPipeError, ConnectionResetError):
                    return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/radio.mp3"

    @asynccontextmanager
    async def on_air(self) -> AsyncIterator[Radio]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def radio_mp3(tmp_path: Path) -> bytes:
    return ffmpeg_make(
        tmp_path,
        "radio.mp3",
        "-f",
        "lavfi",
        "-i",
        "sine=f=330:d=30",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "64k",
        "-ac",
        "1",
    ).read_bytes()


async def start_relay(r: Running, url: str, seconds: float) -> str:
    resp = await r.client.post(
        f"/api/communes/{COMMUNE}/relays",
        json={"url": url, "duration_s": seconds, "targets": AP1, "title": "Tiếp sóng VOV1"},
    )
    assert resp.status_code == 202, resp.text
    bid: str = resp.json()["broadcast"]["id"]
    return bid


async def relay_to_ap1(tmp: Path, broker: Any, url: str, seconds: float) -> dict[str, Any]:
    """Relay ``url`` (a radio on air) to hamlet ap-1's three speakers; the broadcast."""
    specs = [s for s in demo_data.fleet_specs() if s.hamlet == "ap-1"]
    async with serve(live_settings(tmp, broker)) as r, fleet_of(r, specs):
        await wait_online(r, 3)
        return await wait_status(r, await start_relay(r, url, seconds))


async def test_relay_plays_the_stream_for_its_duration(
    tmp_path: Path, broker: Any, radio_mp3: bytes
) -> None:
    async with Radio(radio_mp3).on_air() as radio:
        b = await relay_to_ap1(tmp_path, broker, radio.url, 4.0)
    assert b["status"] == "done" and b["kind"] == "relay"
    assert b["source"] == radio.url and b["error"] == ""
    assert 3_000 <= (b["end_pts_us"] - b["start_pts_us"]) / 1000 <= 5_000
    assert set(outcomes(b).values()) == {"played"}


async def test_relay_rides_out_an_upstream_drop_and_reports_the_gap(
    tmp_path: Path, broker: Any, radio_mp3: bytes
) -> None:
    async with (
        Radio(radio_mp3, cut_after_s=1.5).on_air() as radio,
        serve(live_settings(tmp_path, broker)) as r,
    ):
        b = await wait_status(r, await start_relay(r, radio.url, 7.0))
    assert radio.connections >= 2
    assert b["status"] == "done"
    assert b["gaps"] >= 1 and b["gap_ms"] > 0
    assert "upstream interrupted" in b["error"]


async def test_unreachable_relay_is_reported_not_silent(tmp_path: Path, broker: Any) -> None:
    from broadcaster.broker.process import free_port

    url = f"http://127.0.0.1:{free_port()}/none.mp3"
    async with serve(live_settings(tmp_path, broker)) as r:
        b = await wait_status(r, await start_relay(r, url, 2.5))
    assert b["status"] == "failed"
    assert "cannot connect" in b["error"]
    assert b["chunks"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "ftp://radio.example/stream"}, "url"),
        ({"url": "http://"}, "url"),
        ({"duration_s": 0}, "duration_s"),
        ({"duration_s": 10 * 3600}, "duration_s"),
        ({"targets": [{"commune": "xa-khac"}]}, "targets"),
    ],
)
async def test_bad_relays_are_refused_and_nothing_is_recorded(
    running: Running, body: dict[str, Any], field: str
) -> None:
    full = {"url": "http://127.0.0.1:9/radio.mp3", "duration_s": 60, "targets": AP1, **body}
    resp = await running.client.post(f"/api/communes/{COMMUNE}/relays", json=full)
    assert_error(resp, 400, "invalid_input", fields=[field])
    listed = (await running.client.get(f"/api/communes/{COMMUNE}/broadcasts")).json()
    assert listed["broadcasts"] == []


async def test_operator_stops_a_relay(tmp_path: Path, broker: Any, radio_mp3: bytes) -> None:
    async with Radio(radio_mp3).on_air() as radio, serve(live_settings(tmp_path, broker)) as r:
        bid = await start_relay(r, radio.url, 60.0)
        await anyio.sleep(2.0)
        resp = await r.client.post(f"/api/broadcasts/{bid}/stop")
        assert resp.status_code == 202, resp.text
        b = await wait_status(r, bid, timeout=15)
        again = await r.client.post(f"/api/broadcasts/{bid}/stop")
    assert b["status"] == "done" and (b["end_pts_us"] - b["start_pts_us"]) < 10_000_000
    assert_error(again, 400, "invalid_input")


async def test_relay_connects_to_the_address_it_checked_not_a_second_lookup(
    tmp_path: Path, broker: Any, radio_mp3: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a name checked as one address must not be connected to as another.
    Here the relay's own lookup says ``radio.invalid`` is the test radio on loopback
    (allowed); the system cannot resolve it (.invalid never resolves), so the stream
    plays only if the connection goes to the checked address, with the name as Host."""
    from broadcaster.broadcasts import relay as relay_mod

    async def lookup(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == "radio.invalid" else []

    monkeypatch.setattr(relay_mod, "addresses", lookup)
    async with Radio(radio_mp3).on_air() as radio:
        port = radio.url.split(":")[2].split("/")[0]
        url = radio.url.replace("127.0.0.1", "radio.invalid")
        b = await relay_to_ap1(tmp_path, broker, url, 3.0)
    assert b["status"] == "done" and b["error"] == "", b
    assert radio.hosts and set(radio.hosts) == {f"radio.invalid:{port}"}
    assert set(outcomes(b).values()) == {"played"}
