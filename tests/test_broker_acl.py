"""Broker access with a real Mosquitto: no anonymous clients, wrong passwords refused,
devices confined to their own topics, a revoked device cut off without a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import anyio
import pytest

from broadcaster.broker.access import CONTROLLER_USER, BrokerAccess, mosquitto_hash
from broadcaster.broker.mosquitto import find_mosquitto
from broadcaster.broker.process import Broker, free_port, start_broker
from broadcaster.places import demo_data
from broadcaster.store.store import Store
from loa.clock import SystemClock

pytestmark = pytest.mark.skipif(find_mosquitto() is None, reason="needs mosquitto")
C = "loa/v1/vi-tan"
ME, PEER = "vt-ap-1-1", "vt-ap-2-1"


class Setup:
    def __init__(self, tmp: Path) -> None:
        self.store = Store(tmp / "loa.db")
        demo_data.seed(self.store)
        self.access = BrokerAccess(self.store, SystemClock(), tmp / "broker")
        self.passwords = {d: self.access.provision(d) for d in (ME, PEER)}
        self.broker: Broker = start_broker("mosquitto", port=free_port(), auth_dir=tmp / "broker")
        self.access.reload = self.broker.reload

    def close(self) -> None:
        self.broker.stop()
        self.store.close()

    def client(self, user: str | None, password: str | None = None) -> aiomqtt.Client:
        if user is not None and password is None:
            password = (
                self.access.controller_password()
                if user == CONTROLLER_USER
                else self.passwords[user]
            )
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=user,
            password=password,
            identifier=f"t-{user}-{free_port()}",
        )


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    yield s
    s.close()


def test_password_hash_is_mosquittos_format() -> None:
    salt = bytes(range(12))
    h = mosquitto_hash("secretpass", salt)
    assert h.startswith("$7$1000$AAECAwQFBgcICQoL$") and len(h.split("$")[4]) == 88


@pytest.mark.parametrize(("user", "password"), [(None, None), (ME, "wrong"), ("nobody", "x")])
async def test_no_or_wrong_credentials_cannot_connect(
    setup: Setup, user: str | None, password: str | None
) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with setup.client(user, password):
            pass


@asynccontextmanager
async def collecting(setup: Setup, user: str, topics: list[str]) -> AsyncIterator[list[str]]:
    got: list[str] = []
    async with setup.client(user) as c:
        for t in topics:
            await c.subscribe(t, qos=1)

        async def pump() -> None:
            async for m in c.messages:
                got.append(m.topic.value)

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            yield got
            await anyio.sleep(0.5)
            tg.cancel_scope.cancel()


async def test_a_device_publishes_only_on_its_own_topics(setup: Setup) -> None:
    async with collecting(setup, CONTROLLER_USER, ["loa/#"]) as seen, setup.client(ME) as dev:
        for topic in (
            f"{C}/audio/all",  # a forged broadcast to the whole commune
            f"{C}/alert/hamlet/ap-1",
            f"{C}/dev/{PEER}/presence",  # pretending to be another speaker
            f"{C}/dev/{ME}/cmd",  # commands come only from the controller
            f"{C}/dev/{ME}/telemetry",  # its own: allowed
        ):
            await dev.publish(topic, b"{}", qos=1)
        await anyio.sleep(0.3)
    assert seen == [f"{C}/dev/{ME}/telemetry"]


async def test_a_device_reads_only_its_groups_and_its_own_inbox(setup: Setup) -> None:
    wanted = [
        f"{C}/dev/{PEER}/cmd",
        f"{C}/dev/{PEER}/config",
        f"{C}/audio/hamlet/ap-2",
        f"{C}/audio/all",
        f"{C}/dev/{ME}/cmd",
        "loa/#",
    ]
    async with collecting(setup, ME, wanted) as seen, setup.client(CONTROLLER_USER) as ctl:
        for topic in wanted[:5]:
            await ctl.publish(topic, b"x", qos=1)
        await anyio.sleep(0.3)
    assert sorted(seen) == sorted([f"{C}/audio/all", f"{C}/dev/{ME}/cmd"])


async def test_a_revoked_device_is_cut_off_without_restarting_the_broker(setup: Setup) -> None:
    pid = setup.broker.process.pid
    async with setup.client(ME) as dev:
        await dev.publish(f"{C}/dev/{ME}/telemetry", b"{}", qos=1)
        setup.access.revoke(ME)
        with anyio.fail_after(5), pytest.raises(aiomqtt.MqttError):
            while True:
                await dev.publish(f"{C}/dev/{ME}/telemetry", b"{}", qos=1)
                await anyio.sleep(0.1)
    with pytest.raises(aiomqtt.MqttError):
        async with setup.client(ME):
            pass
    async with setup.client(PEER):  # the others are untouched
        pass
    assert setup.broker.process.pid == pid and setup.broker.running


async def test_a_tls_listener_with_the_demo_ca(tmp_path: Path) -> None:
    import ssl

    from broadcaster.broker.tls import demo_ca

    store = Store(tmp_path / "loa.db")
    demo_data.seed(store)
    access = BrokerAccess(store, SystemClock(), tmp_path / "broker")
    password = access.provision(ME)
    files = demo_ca(tmp_path / "broker" / "tls", SystemClock())
    assert demo_ca(tmp_path / "broker" / "tls", SystemClock()) == files  # made once, reused
    tls_port = free_port()
    broker = start_broker(
        "mosquitto", port=free_port(), auth_dir=tmp_path / "broker", tls=(tls_port, files)
    )
    try:
        trusted = ssl.create_default_context(cafile=str(files.ca))
        async with aiomqtt.Client(
            broker.host, tls_port, username=ME, password=password, tls_context=trusted
        ) as c:
            await c.publish(f"{C}/dev/{ME}/telemetry", b"{}", qos=1)
        untrusted = ssl.create_default_context()  # the system CAs do not know the demo CA
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(
                broker.host, tls_port, username=ME, password=password, tls_context=untrusted
            ):
                pass
    finally:
        broker.stop()
        store.close()
