"""Garbage from (or pretending to be) speakers, through the real broker into the running app.

Every bad message is dropped and counted by the router; the app keeps serving, device
rows stay as they were, and a good message afterwards still gets through.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
import anyio

from broadcaster.places import demo_data
from devices.frames import FrameType, decode_frame
from devices.messages import Presence, Telemetry, TimeRequest, TimeResponse, dump, parse
from devices.router import Router
from devices.signing import Verifier
from devices.topics import DeviceTopic, device_topic
from tests.conftest import Running

COMMUNE = demo_data.COMMUNE[0]
DEVICE = "vt-ap-1-1"
BIG = 100 * 1024


def topic(which: DeviceTopic, device: str = DEVICE, commune: str = COMMUNE) -> str:
    return f"loa/v1/{commune}/dev/{device}/{which.value}"


def router_of(r: Running) -> Router:
    router = r.services.link._handler
    assert isinstance(router, Router)
    return router


@asynccontextmanager
async def mqtt(r: Running) -> AsyncIterator[aiomqtt.Client]:
    s = r.services.settings.mqtt
    async with aiomqtt.Client(
        s.host, s.port, identifier=f"garbage-{uuid.uuid4().hex[:10]}"
    ) as client:
        yield client


async def devices(r: Running) -> list[dict[str, Any]]:
    resp = await r.client.get(f"/api/communes/{COMMUNE}/devices")
    assert resp.status_code == 200
    rows: list[dict[str, Any]] = resp.json()["devices"]
    return rows


async def wait_dropped(router: Router, base: Counter[str], want: Counter[str]) -> None:
    """Poll until the router has dropped at least ``want`` more messages than ``base``."""
    with anyio.fail_after(10):
        while True:
            now = Counter(router.dropped)
            if all(now[k] - base[k] >= n for k, n in want.items()):
                return
            await anyio.sleep(0.05)


async def assert_healthy(r: Running) -> None:
    resp = await r.client.get("/api/health")
    assert resp.status_code == 200
    assert resp.json()["ok"] is True
    assert resp.json()["mqtt"] is True


PRESENCE_GARBAGE: list[bytes] = [
    b"not json at all",
    b"\xff\xfe\x00garbage",  # not UTF-8
    b"[]",
    b"null",
    b'"online"',
    b"{",
    b"{}",  # state missing
    b'{"state": "maybe"}',
    b'{"state": true}',
    b'{"state": "online", "fw": 5}',
    b'{"state": "online", "codecs": "opus"}',
    b'{"state": "online", "codecs": ["flac"]}',
    b'{"state": "online", "at_us": -1}',
    b'{"state": "online", "at_us": 1.5}',
    b'{"state": "online", "at_us": NaN}',
    b'{"state": "online", "unexpected": 1}',
    b'{"v": 2, "state": "online"}',
    b'{"state": "online", "fw": "' + b"x" * 65 + b'"}',
    b"x" * BIG,
    b'{"state": "online", "reason": "' + b"a" * BIG + b'"}',
]

TELEMETRY_GARBAGE: list[bytes] = [
    b"",
    b"garbage",
    b'{"at_us": 1}',
    b'{"at_us": 1, "uptime_s": 1, "volume": 101}',
    b'{"at_us": 1, "uptime_s": 1, "volume": "50"}',
    b'{"at_us": 1, "uptime_s": -5, "volume": 50}',
    b'{"at_us": 1, "uptime_s": 1, "volume": 50, "temperature_c": Infinity}',
    b'{"at_us": 1, "uptime_s": 1, "volume": 50, "counters": {"played": -1}}',
    b'{"at_us": 1, "uptime_s": 1, "volume": 50, "rssi_dbm": 10}',
    b"{" + b'"a": 1, ' * (BIG // 8) + b'"b": 2}',
]

#: Well formed, but for a stream nobody ever sent: counted by the ledger, not the router.
UNKNOWN_STREAM_REPORT = b'{"stream": "' + str(uuid.uuid4()).encode() + b'", "outcome": "played"}'

REPORT_GARBAGE: list[bytes] = [
    b"{{{",
    b'{"stream": "not-a-uuid", "outcome": "played"}',
    b'{"stream": "' + str(uuid.uuid4()).encode() + b'", "outcome": "exploded"}',
    b'{"stream": "' + str(uuid.uuid4()).encode() + b'", "outcome": "played", "frames_played": -3}',
    b"r" * BIG,
]

TIME_GARBAGE: list[bytes] = [
    b"",
    b"12345",
    b'{"id": -1, "t1_us": 0}',
    b'{"id": "1", "t1_us": 0}',
    b'{"id": 1}',
    b'{"id": 1, "t1_us": 0, "t2_us": 5}',
    b"t" * BIG,
]


async def test_garbage_is_dropped_and_ingest_survives(running: Running):
    router = router_of(running)
    base = Counter(router.dropped)
    with anyio.fail_after(5):  # retained presence from earlier runs, written in a batch
        while running.services.facts.queued:
            await anyio.sleep(0.05)
    before = await devices(running)
    assert not next(d for d in before if d["id"] == DEVICE)["online"]
    unknown_before = running.services.facts.unknown_devices["vt-ghost-9"]

    good_presence = dump(Presence(state="online", fw="sim-2.0", codecs=["opus"]))
    async with mqtt(running) as client:
        # A cleared retained presence is ignored quietly (not garbage, not a change).
        await client.publish(topic(DeviceTopic.PRESENCE), b"", qos=1)
        for payload in PRESENCE_GARBAGE:
            await client.publish(topic(DeviceTopic.PRESENCE), payload, qos=1)
        for payload in TELEMETRY_GARBAGE:
            await client.publish(topic(DeviceTopic.TELEMETRY), payload, qos=1)
        for payload in REPORT_GARBAGE:
            await client.publish(topic(DeviceTopic.REPORT), payload, qos=1)
        for payload in TIME_GARBAGE:
            await client.publish(topic(DeviceTopic.TIME_REQ), payload, qos=1)
        # Valid messages from places that do not exist.
        await client.publish(topic(DeviceTopic.PRESENCE, device="vt-ghost-9"), good_presence, qos=1)
        await client.publish(topic(DeviceTopic.PRESENCE, commune="xa-khac"), good_presence, qos=1)
        await client.publish(topic(DeviceTopic.PRESENCE, device="BAD"), good_presence, qos=1)
        await client.publish(
            topic(DeviceTopic.TELEMETRY, device="vt-ap-1-1 x"), good_presence, qos=1
        )

        want = Counter(
            {
                DEVICE: len(PRESENCE_GARBAGE)
                + len(TELEMETRY_GARBAGE)
                + len(REPORT_GARBAGE)
                + len(TIME_GARBAGE)
                + 1,  # the right device in the wrong commune
                "vt-ghost-9": 1,
                "(bad topic)": 2,
            }
        )
        await wait_dropped(router, base, want)
        await assert_healthy(running)
        after = Counter(router.dropped)
        assert after[DEVICE] - base[DEVICE] == want[DEVICE]  # the empty presence was not counted
        assert running.services.facts.unknown_devices["vt-ghost-9"] == unknown_before + 1
        assert running.services.link.handler_errors == 0
        assert await devices(running) == before

        facts = running.services.facts
        unknown = facts.unknown_reports
        await client.publish(topic(DeviceTopic.REPORT), UNKNOWN_STREAM_REPORT, qos=1)
        with anyio.fail_after(10):
            while facts.unknown_reports == unknown:
                await anyio.sleep(0.05)

        # Ingest still works: a valid presence and telemetry for the same device.
        await client.publish(topic(DeviceTopic.PRESENCE), good_presence, qos=1)
        telemetry = Telemetry(at_us=1, uptime_s=60, volume=70, rssi_dbm=-70, fw="sim-2.0")
        await client.publish(topic(DeviceTopic.TELEMETRY), dump(telemetry), qos=1)
        with anyio.fail_after(10):
            while True:
                row = next(d for d in await devices(running) if d["id"] == DEVICE)
                if row["online"] and row["telemetry"] is not None:
                    break
                await anyio.sleep(0.05)
    assert row["firmware"] == "sim-2.0"
    assert row["codecs"] == ["opus"]
    assert row["telemetry"]["volume"] == 70
    assert row["telemetry"]["rssi_dbm"] == -70
    # Nobody else changed.
    others_before = [d for d in before if d["id"] != DEVICE]
    others_after = [d for d in await devices(running) if d["id"] != DEVICE]
    assert others_after == others_before
    communes = (await running.client.get("/api/communes")).json()["communes"]
    assert communes[0]["online"] == 1
    assert Counter(router.dropped)[DEVICE] == after[DEVICE]  # the good ones were not dropped
    await assert_healthy(running)


def verifier(running: Running) -> Verifier:
    return Verifier([running.services.signer.public])


async def test_time_request_gets_a_response(running: Running):
    """The answer is a signed TIME frame: a forged answer cannot shift a speaker's clock."""
    resp_topic = device_topic(COMMUNE, DEVICE, DeviceTopic.TIME_RESP)
    async with mqtt(running) as client:
        await client.subscribe(resp_topic, qos=1)
        for i in range(3):
            t1 = time.time_ns() // 1000
            req = TimeRequest(id=100 + i, t1_us=t1)
            await client.publish(topic(DeviceTopic.TIME_REQ), dump(req), qos=1)
            with anyio.fail_after(10):
                message = await anext(client.messages)
            assert message.topic.value == resp_topic
            assert isinstance(message.payload, bytes)
            frame = decode_frame(message.payload, verifier(running), resp_topic)
            assert frame.type is FrameType.TIME
            resp = parse(TimeResponse, frame.payload)
            assert resp.id == 100 + i
            assert resp.t1_us == t1
            assert resp.t2_us <= resp.t3_us
            assert t1 <= resp.t2_us <= time.time_ns() // 1000  # same host clock
            assert resp.t3_us - resp.t2_us < 1_000_000
            assert json.loads(frame.payload)["v"] == 1
    await assert_healthy(running)


async def test_garbage_time_request_gets_no_response(running: Running):
    router = router_of(running)
    base = Counter(router.dropped)
    resp_topic = device_topic(COMMUNE, DEVICE, DeviceTopic.TIME_RESP)
    async with mqtt(running) as client:
        await client.subscribe(resp_topic, qos=1)
        await client.publish(topic(DeviceTopic.TIME_REQ), b'{"id": "x", "t1_us": 1}', qos=1)
        good = TimeRequest(id=9, t1_us=5)
        await client.publish(topic(DeviceTopic.TIME_REQ), dump(good), qos=1)
        with anyio.fail_after(10):
            message = await anext(client.messages)
        # The first answer is for the good request: the garbage one got none.
        assert isinstance(message.payload, bytes)
        frame = decode_frame(message.payload, verifier(running), resp_topic)
        assert parse(TimeResponse, frame.payload).id == 9
    assert Counter(router.dropped)[DEVICE] - base[DEVICE] == 1


async def test_deeply_nested_json_is_counted_as_dropped(running: Running):
    """Deeply nested JSON (RecursionError in json.loads) is dropped and counted."""
    router = router_of(running)
    base = Counter(router.dropped)
    errors_before = running.services.link.handler_errors
    nested = b"[" * 8000 + b"]" * 8000  # under the 16 KB message limit
    async with mqtt(running) as client:
        await client.publish(topic(DeviceTopic.PRESENCE), nested, qos=1)
        await client.publish(topic(DeviceTopic.PRESENCE), b"marker", qos=1)
        await wait_dropped(router, base, Counter({DEVICE: 1}))
        # Ingest survived either way.
        await client.publish(topic(DeviceTopic.PRESENCE), dump(Presence(state="online")), qos=1)
        with anyio.fail_after(10):
            while not next(d for d in await devices(running) if d["id"] == DEVICE)["online"]:
                await anyio.sleep(0.05)
    await assert_healthy(running)
    dropped = Counter(router.dropped)[DEVICE] - base[DEVICE]
    escaped = running.services.link.handler_errors - errors_before
    # What the module promises: garbage raises ProtocolError and is dropped and counted.
    assert (dropped, escaped) == (2, 0), (
        "nested JSON escaped the router as RecursionError and was logged as a handler "
        "failure instead of being dropped and counted"
    )
