"""Brokers start for real; the MQTT adapter reconnects and re-subscribes by itself."""

from __future__ import annotations

import aiomqtt
import anyio
import pytest

from broadcaster.broker.mosquitto import find_mosquitto, mosquitto_config
from broadcaster.broker.process import Broker, free_port, start_broker
from devices.transport import LinkOptions, MqttLink
from loa.clock import SystemClock
from loa.errors import BrokerError


async def roundtrip(host: str, port: int) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    arrived = anyio.Event()

    async def handler(topic: str, payload: bytes) -> None:
        got.append((topic, payload))
        arrived.set()

    link = MqttLink(
        LinkOptions(host, port, "rt-sub", subscriptions=(("loa/v1/#", 1),)), handler, SystemClock()
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(link.run)
        await link.wait_connected(10)
        async with aiomqtt.Client(host, port, identifier="rt-pub") as pub:
            await pub.publish("loa/v1/xa/audio/all", "Xin chào bà con".encode(), qos=1)
        with anyio.fail_after(5):
            await arrived.wait()
        tg.cancel_scope.cancel()
    return got


async def test_embedded_amqtt_broker_carries_messages() -> None:
    b = start_broker("amqtt")
    try:
        assert b.kind == "amqtt" and b.running
        got = await roundtrip(b.host, b.port)
        assert got == [("loa/v1/xa/audio/all", "Xin chào bà con".encode())]
    finally:
        b.stop()
    assert not b.running
    assert not b.workdir.exists()


async def test_session_broker_is_mosquitto_when_installed(broker: Broker) -> None:
    if find_mosquitto():
        assert broker.kind == "mosquitto"
    got = await roundtrip(broker.host, broker.port)
    assert len(got) == 1


def test_generated_mosquitto_config_is_loopback_only() -> None:
    conf = mosquitto_config(1234)
    assert "listener 1234 127.0.0.1" in conf and "persistence false" in conf


def test_unknown_mode_and_missing_binary_are_clear_errors() -> None:
    with pytest.raises(BrokerError, match="unknown broker mode"):
        start_broker("kafka")
    with pytest.raises(BrokerError, match="not installed"):
        start_broker("mosquitto", mosquitto="/nonexistent/mosquitto-xyz")


async def test_link_reconnects_and_resubscribes_after_broker_restart() -> None:
    port = free_port()
    b = start_broker("auto", port=port)
    got: list[bytes] = []
    arrived = anyio.Event()

    async def handler(topic: str, payload: bytes) -> None:
        got.append(payload)
        arrived.set()

    link = MqttLink(
        LinkOptions(
            b.host,
            port,
            "reconnector",
            backoff_min_s=0.05,
            backoff_max_s=0.2,
            subscriptions=(("loa/v1/+/dev/+/presence", 1),),
        ),
        handler,
        SystemClock(),
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(link.run)
            await link.wait_connected(10)
            b.stop()
            with anyio.fail_after(10):
                while link.connected:
                    await anyio.sleep(0.02)
            b = start_broker("auto", port=port)
            await link.wait_connected(10)
            assert link.connects == 2
            async with aiomqtt.Client(b.host, port, identifier="after-restart") as pub:
                await pub.publish("loa/v1/vi-tan/dev/vt-1/presence", b"again", qos=1)
            with anyio.fail_after(5):
                await arrived.wait()
            assert got == [b"again"]
            tg.cancel_scope.cancel()
    finally:
        b.stop()


async def test_publish_without_broker_fails_clearly() -> None:
    port = free_port()

    async def handler(topic: str, payload: bytes) -> None:  # pragma: no cover
        pass

    link = MqttLink(
        LinkOptions("127.0.0.1", port, "lonely", publish_timeout_s=0.3, backoff_min_s=0.05),
        handler,
        SystemClock(),
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(link.run)
        with pytest.raises(BrokerError, match="unreachable"):
            await link.publish("loa/v1/x/audio/all", b"x")
        tg.cancel_scope.cancel()
