"""``loa demo``: broker + control plane + a simulated commune, on one machine."""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import uvicorn

from audio.tones import chime, to_wav, tone
from audio.tts import EspeakEngine
from devices.signing import Signer, Verifier
from firmware_sim.fleet import Fleet
from firmware_sim.spec import DeviceSpec
from loa.clock import SystemClock
from loa.errors import LoaError, ToolMissing

from . import demo_data
from .app import create_app
from .auth.accounts import first_admin_line, service_token
from .broker import Broker, find_mosquitto, start_broker
from .broker_access import CONTROLLER_USER, BrokerAccess
from .broker_supervisor import BrokerSupervisor
from .settings import Settings
from .store import Store
from .tls import demo_ca

logger = logging.getLogger(__name__)

BULLETIN_VI = (
    "Thông báo của Ủy ban nhân dân xã Vị Tân. "
    "Sáng mai, ấp Một và ấp Hai tạm ngừng cấp điện để bảo trì đường dây."
)


@dataclass
class DemoResult:
    ok: bool
    lines: list[str]


def bind(host: str, port: int) -> socket.socket:
    """The web server's listening socket, bound here so a busy port is a clear error."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LoaError(
            f"cannot listen on {host}:{port} ({exc.strerror}); "
            "is another Loa running? try --port 0 for any free port"
        ) from None
    sock.listen(128)
    return sock


def bulletin_wav() -> tuple[bytes, str]:
    try:
        return EspeakEngine("vi").synthesize(BULLETIN_VI), "ban-tin.wav"
    except ToolMissing:
        logger.warning("espeak-ng missing: the demo bulletin is a chime and a tone instead")
        return to_wav(chime() + tone(3.0, 440.0)), "chuong.wav"


def prepare(settings: Settings) -> tuple[Settings, Broker | None, list[DeviceSpec]]:
    """Seed the demo commune; start the broker (unless external) with access control:
    every simulated speaker gets its own credentials, anonymous clients are refused."""
    specs = demo_data.fleet_specs()
    store = Store(Path(settings.db.path))
    try:
        demo_data.seed(store, settings.scheduler.timezone)
        if settings.broker.mode == "external":
            return settings, None, specs
        secured = find_mosquitto(settings.broker.mosquitto) is not None and (
            settings.broker.mode != "amqtt"
        )
        auth_dir = Path(settings.security.broker_auth_dir)
        mqtt: dict[str, object] = {}
        if secured:
            access = BrokerAccess(store, SystemClock(), auth_dir)
            specs = [replace(s, password=access.provision(s.id)) for s in specs]
            mqtt = {"username": CONTROLLER_USER, "password": access.controller_password()}
        else:
            logger.warning("no mosquitto: the demo broker has no access control (amqtt)")
    finally:
        store.close()
    tls = None
    if secured and settings.broker.tls_port:
        tls = (
            settings.broker.tls_port,
            demo_ca(auth_dir / "tls", SystemClock(), settings.mqtt.host),
        )
    broker = start_broker(
        settings.broker.mode,
        port=settings.broker.port,
        mosquitto=settings.broker.mosquitto,
        auth_dir=auth_dir if secured else None,
        tls=tls,
    )
    if tls is not None:
        print(f"MQTT over TLS on port {tls[0]}; trust {tls[1].ca}", flush=True)
    settings = settings.replace(mqtt={"host": broker.host, "port": broker.port, **mqtt})
    return settings, broker, specs


def logins(settings: Settings) -> tuple[str, str]:
    """(the login line to print, an API token for the demo's own script)."""
    store = Store(Path(settings.db.path))
    try:
        clock = SystemClock()
        line = first_admin_line(store, clock, settings.security)
        return line, service_token(store, clock, "demo", settings.security)
    finally:
        store.close()


async def _wait_all_final(client: httpx.AsyncClient, bid: str, timeout: float) -> dict[str, Any]:
    with anyio.move_on_after(timeout):
        while True:
            b: dict[str, Any] = (await client.get(f"/api/broadcasts/{bid}")).json()["broadcast"]
            if b["status"] in ("done", "failed") or all(
                d["outcome"] != "pending" for d in b["deliveries"] if d["online_at_start"]
            ):
                return b
            await anyio.sleep(0.25)
    result: dict[str, Any] = (await client.get(f"/api/broadcasts/{bid}")).json()["broadcast"]
    return result


async def script(url: str, timeout: float, token: str) -> DemoResult:
    """Upload a spoken bulletin, play it to two hamlets, then to the whole commune."""
    commune = demo_data.COMMUNE[0]
    lines: list[str] = []
    ok = True
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
        with anyio.move_on_after(max(1.0, deadline - time.monotonic())):
            while True:
                devs = (await client.get(f"/api/communes/{commune}/devices")).json()["devices"]
                if devs and all(d["online"] for d in devs):
                    break
                await anyio.sleep(0.2)
        wav, name = await anyio.to_thread.run_sync(bulletin_wav)
        r = await client.post(
            f"/api/communes/{commune}/media",
            files={"file": (name, wav, "audio/wav")},
            data={"title": "Thông báo cúp điện"},
        )
        if r.status_code != 201:
            return DemoResult(False, [f"upload refused: {r.json().get('error')}"])
        media = r.json()["media"]
        opus = next(x for x in media["renditions"] if x["codec"] == "opus")
        lines.append(
            f"bulletin: {media['title']} ({media['duration_ms'] / 1000:.1f} s, "
            f"{media['loudness']['lufs']:.1f} LUFS, "
            f"Opus {opus['bitrate_kbps']} kb/s, {opus['bytes']} bytes)"
        )
        plans = [
            (
                "two hamlets (Ấp 1, Ấp 2)",
                [{"commune": commune, "hamlet": "ap-1"}, {"commune": commune, "hamlet": "ap-2"}],
            ),
            ("whole commune", [{"commune": commune}]),
        ]
        for label, targets in plans:
            r = await client.post(
                "/api/broadcasts",
                json={"media_id": media["id"], "targets": targets, "title": media["title"]},
            )
            if r.status_code != 202:
                return DemoResult(False, [*lines, f"broadcast refused: {r.json()['error']}"])
            bid = r.json()["broadcast"]["id"]
            b = await _wait_all_final(client, bid, max(1.0, deadline - time.monotonic()))
            lines.append(f"\n{label}: broadcast {bid[:8]} ({b['status']})")
            lines.append(f"  {'hamlet':<16}{'targeted':>9}{'played':>8}{'missed':>8}{'offline':>8}")
            for hamlet, s in sorted(b["summary"].items()):
                missed = s["missed"] + s["partial"] + s["pending"]
                lines.append(
                    f"  {hamlet:<16}{s['targeted']:>9}{s['played']:>8}{missed:>8}{s['offline']:>8}"
                )
            bad = [
                d
                for d in b["deliveries"]
                if (d["targeted"] and d["online_at_start"] and d["outcome"] != "played")
                or not d["targeted"]
            ]
            if bad:
                ok = False
                lines.append(f"  NOT PLAYED: {', '.join(d['device_id'] for d in bad)}")
    return DemoResult(ok, lines)


async def _supervise(scope: anyio.CancelScope, supervisor: BrokerSupervisor) -> None:
    with scope:
        await supervisor.run()


async def run_demo(settings: Settings, *, headless: bool, duration: float | None) -> int:
    settings, broker, specs = prepare(settings)
    try:
        login_line, token = logins(settings)
        signer = Signer.load_or_create(Path(settings.security.signing_key))
        fleet = Fleet(
            specs,
            host=settings.mqtt.host,
            port=settings.mqtt.port,
            verifier=Verifier([signer.public]),
        )
        app = create_app(settings, broker_reload=broker.reload if broker else None)
        config = uvicorn.Config(
            app,
            host=settings.http.host,
            port=settings.http.port,
            log_level="warning",
            lifespan="on",
        )
        server = uvicorn.Server(config)
        sock = bind(settings.http.host, settings.http.port)
        code = 0
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(server.serve, sockets=[sock]))
            with anyio.fail_after(30):
                while not server.started:
                    if server.should_exit:
                        raise LoaError(
                            f"web server could not start on port "
                            f"{settings.http.port} (in use? try --port)"
                        )
                    await anyio.sleep(0.05)
            port = sock.getsockname()[1]
            url = settings.http.public_url or f"http://{settings.http.host}:{port}"
            watch = anyio.CancelScope()
            if broker is not None:  # a broker that dies is logged and started again
                tg.start_soon(_supervise, watch, BrokerSupervisor(broker, SystemClock()))
            try:
                async with anyio.create_task_group() as sims:
                    await sims.start(fleet.run)
                    kind = broker.kind if broker else "external"
                    print(
                        f"Loa demo: {len(fleet.speakers)} simulated speakers in "
                        f"{demo_data.COMMUNE[1]}, MQTT broker ({kind}) on "
                        f"{settings.mqtt.host}:{settings.mqtt.port}",
                        flush=True,
                    )
                    print(f"Open {url}  ({login_line})", flush=True)
                    if headless:
                        result = await script(url, duration or 60.0, token)
                        print("\n".join(result.lines), flush=True)
                        code = 0 if result.ok else 1
                        print(
                            "demo: OK, every online targeted speaker played both bulletins"
                            if result.ok
                            else "demo: FAILED",
                            flush=True,
                        )
                    elif duration:
                        await anyio.sleep(duration)
                    else:
                        await anyio.sleep_forever()
                    sims.cancel_scope.cancel()
            finally:
                watch.cancel()
                server.should_exit = True  # graceful: the lifespan closes MQTT and the store
        return code
    finally:
        if broker is not None:
            broker.stop()
