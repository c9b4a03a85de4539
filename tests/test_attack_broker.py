"""Issue 16, findings 5 and 6 on the broker (real Mosquitto), and the relay SSRF guard."""

from __future__ import annotations

import subprocess
from pathlib import Path

import aiomqtt
import anyio
import pytest

from broadcaster.broadcasts.relay import check_source
from broadcaster.broker.mosquitto import find_mosquitto
from broadcaster.broker.process import free_port, start_broker
from loa.errors import InvalidInput
from tests.test_broker_acl import ME, PEER, C, Setup

needs_mosquitto = pytest.mark.skipif(find_mosquitto() is None, reason="needs mosquitto")


@needs_mosquitto
async def test_5_another_speakers_client_id_cannot_kick_it_off(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    try:
        host, port = setup.broker.host, setup.broker.port
        real = aiomqtt.Client(
            host, port, username=ME, password=setup.passwords[ME], identifier=f"loa-sim-{ME}"
        )
        async with real:
            for _ in range(3):  # PEER's credentials, ME's (and the controller's) client id
                for ident in (f"loa-sim-{ME}", ME, "loa-controller"):
                    async with aiomqtt.Client(
                        host, port, username=PEER, password=setup.passwords[PEER], identifier=ident
                    ):
                        pass
            with anyio.fail_after(5):  # the real speaker's session is still up
                await real.publish(f"{C}/dev/{ME}/telemetry", b"{}", qos=1)
    finally:
        setup.close()


@needs_mosquitto
def test_6_mosquitto_does_not_run_as_root(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    try:
        pid = setup.broker.process.pid
        user = subprocess.run(
            ["ps", "-o", "user=", "-p", str(pid)], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert user and user != "root"
        setup.access.provision(ME)  # a reload reaches the files it may read
        assert setup.broker.running
    finally:
        setup.close()


@needs_mosquitto
async def test_6_with_tls_the_plaintext_listener_is_loopback_and_controller_only(
    tmp_path: Path,
) -> None:
    from broadcaster.broker.access import CONTROLLER_USER, BrokerAccess
    from broadcaster.broker.tls import demo_ca
    from broadcaster.places import demo_data
    from broadcaster.store.store import Store
    from loa.clock import SystemClock

    store = Store(tmp_path / "loa.db")
    demo_data.seed(store)
    access = BrokerAccess(store, SystemClock(), tmp_path / "broker")
    password = access.provision(ME)
    files = demo_ca(tmp_path / "broker" / "tls", SystemClock())
    broker = start_broker(
        "mosquitto", port=free_port(), auth_dir=tmp_path / "broker", tls=(free_port(), files)
    )
    try:
        conf = (broker.workdir / "mosquitto.conf").read_text()
        assert f"listener {broker.port} 127.0.0.1" in conf
        with pytest.raises(aiomqtt.MqttError):  # a speaker on plaintext: refused
            async with aiomqtt.Client(broker.host, broker.port, username=ME, password=password):
                pass
        async with aiomqtt.Client(
            broker.host,
            broker.port,
            username=CONTROLLER_USER,
            password=access.controller_password(),
        ):
            pass
    finally:
        broker.stop()
        store.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/api/health",
        "http://localhost/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
        "http://0.0.0.0:22/",
        "http://[::ffff:127.0.0.1]/",
    ],
)
async def test_5_relays_cannot_reach_inside_addresses(url: str) -> None:
    with pytest.raises(InvalidInput, match=r"relay\.allowed_hosts"):
        await check_source(url, ())


async def test_5_an_allowed_local_source_is_accepted_without_its_password() -> None:
    safe = await check_source("http://u:secret@127.0.0.1:8000/s.mp3", ("127.0.0.1",))
    assert safe == "http://127.0.0.1:8000/s.mp3"
    assert await check_source("http://127.0.0.1:9/x", ("127.0.0.0/8",))


@needs_mosquitto
async def test_6_a_speakers_retained_telemetry_is_cleared_not_kept(tmp_path: Path) -> None:
    from broadcaster.app import SUBSCRIPTIONS
    from broadcaster.broker.access import CONTROLLER_USER
    from devices.topics import device_filter, retain_refused
    from devices.transport import LinkOptions, MqttLink
    from loa.clock import SystemClock

    setup = Setup(tmp_path)
    try:
        host, port = setup.broker.host, setup.broker.port
        async with aiomqtt.Client(
            host, port, username=ME, password=setup.passwords[ME], identifier=ME
        ) as dev:
            await dev.publish(f"{C}/dev/{ME}/telemetry", b'{"v":1,"stale":true}', retain=True)
            await dev.publish(f"{C}/dev/{ME}/presence", b'{"v":1,"state":"online"}', retain=True)
        seen: list[tuple[str, bytes]] = []

        async def handler(topic: str, payload: bytes) -> None:
            seen.append((topic, payload))

        link = MqttLink(
            LinkOptions(
                host=host,
                port=port,
                client_id=CONTROLLER_USER,
                username=CONTROLLER_USER,
                password=setup.access.controller_password(),
                subscriptions=tuple((device_filter(t), 1) for t in SUBSCRIPTIONS),
                retained_refused=retain_refused,
            ),
            handler,
            SystemClock(),
        )
        swept = tuple(device_filter(t) for t in SUBSCRIPTIONS if t.value != "presence")
        async with anyio.create_task_group() as tg:
            tg.start_soon(link.run)
            tg.start_soon(link.sweep_retained, swept, 0.3)
            with anyio.fail_after(10):  # left before the controller came: found at connect
                while link.retained_cleared < 1 or not seen:
                    await anyio.sleep(0.05)
            async with aiomqtt.Client(  # left while it runs: found by the sweep
                host, port, username=ME, password=setup.passwords[ME], identifier=ME
            ) as dev:
                await dev.publish(f"{C}/dev/{ME}/report", b'{"v":1,"forged":1}', retain=True)
            with anyio.fail_after(10):
                while link.retained_cleared < 2:
                    await anyio.sleep(0.05)
            await anyio.sleep(0.3)  # the clearing's echo, if it were let through
            tg.cancel_scope.cancel()
        # presence is kept; the live report was delivered once (not retained on the way)
        assert [t for t, _ in seen] == [f"{C}/dev/{ME}/presence", f"{C}/dev/{ME}/report"]
        # nothing is retained there any more: a fresh subscriber gets nothing
        got: list[bytes] = []
        async with setup.client(CONTROLLER_USER) as c:
            await c.subscribe(f"{C}/dev/{ME}/telemetry", qos=1)
            await c.subscribe(f"{C}/dev/{ME}/report", qos=1)
            with anyio.move_on_after(1.0):
                async for m in c.messages:
                    got.append(bytes(m.payload))  # type: ignore[arg-type]
        assert got == []
    finally:
        setup.close()


def test_5_a_failing_relay_says_why_without_echoing_what_a_server_said() -> None:
    import httpx

    from broadcaster.broadcasts.relay import _describe

    said = _describe(httpx.RemoteProtocolError("HTTP/1.1 500 secret-internal-banner"))
    assert "secret" not in said and said
    assert "secret" not in _describe(RuntimeError("db password=secret"))
    assert _describe(httpx.ConnectError("x")) == "cannot connect to the stream"


async def test_5_a_public_source_is_accepted_even_if_unresolvable_now() -> None:
    """The README's example: a station name this machine cannot resolve (no internet)
    is not refused when saved; it is checked again before each connection."""
    url = "http://radio.example.vn/vov1.mp3"
    assert await check_source(url, ()) == url
