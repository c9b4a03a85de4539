"""``loa demo``: broker + control plane + a simulated commune, on one machine."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import httpx

from audio.tones import chime, to_wav, tone
from audio.tts import EspeakEngine
from devices.signing import Signer, Verifier
from firmware_sim.fleet import Fleet
from firmware_sim.speaker import SpeakerOptions
from firmware_sim.spec import DeviceSpec
from loa.clock import SystemClock
from loa.errors import ToolMissing

from .app import create_app
from .auth.accounts import account_ids, first_admin_line, forget_accounts, service_token
from .broker.access import BrokerAccess
from .broker.mosquitto import find_mosquitto
from .broker.process import Broker
from .broker.supervisor import BrokerSupervisor
from .places import demo_data
from .runner import serving, start_own_broker, stop_on_signal
from .settings import Settings
from .store.store import Store

logger = logging.getLogger(__name__)

BULLETIN_VI = (
    "Thông báo của Ủy ban nhân dân xã Vị Tân. "
    "Sáng mai, ấp Một và ấp Hai tạm ngừng cấp điện để bảo trì đường dây."
)


@dataclass
class DemoResult:
    ok: bool
    lines: list[str]


def bulletin_wav() -> tuple[bytes, str]:
    try:
        return EspeakEngine("vi").synthesize(BULLETIN_VI), "ban-tin.wav"
    except ToolMissing:
        logger.warning("espeak-ng missing: the demo bulletin is a chime and a tone instead")
        return to_wav(chime() + tone(3.0, 440.0)), "chuong.wav"


def prepare(settings: Settings) -> tuple[Settings, Broker | None, list[DeviceSpec]]:
    """Seed the demo commune, give every simulated speaker its own broker credentials,
    and start the broker (unless external); anonymous clients are refused."""
    specs = demo_data.fleet_specs()
    store = Store(Path(settings.db.path))
    try:
        demo_data.seed(store, settings.scheduler.timezone)
        if settings.broker.mode != "external" and (
            find_mosquitto(settings.broker.mosquitto) is not None
            and settings.broker.mode != "amqtt"
        ):
            access = BrokerAccess(store, SystemClock(), Path(settings.security.broker_auth_dir))
            specs = [replace(s, password=access.provision(s.id)) for s in specs]
    finally:
        store.close()
    settings, broker = start_own_broker(settings)
    return settings, broker, specs


def speaker_link(settings: Settings) -> tuple[int, SpeakerOptions]:
    """Where the simulated speakers connect: the TLS listener when there is one (they are
    provisioned with the TLS URL and the CA), else the broker's one listener."""
    auth_dir = Path(settings.security.broker_auth_dir)
    ca = auth_dir / "tls" / "ca.crt"
    if settings.broker.tls_port and settings.broker.mode != "external" and ca.exists():
        return settings.broker.tls_port, SpeakerOptions(tls_ca=ca)
    return settings.mqtt.port, SpeakerOptions()


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


async def run_demo(settings: Settings, *, headless: bool, duration: float | None) -> int:
    """Broker, controller and speakers; SIGINT/SIGTERM stop them in reverse order."""
    code = 0
    shown: list[str] = []  # the login line, once printed
    before = account_ids(Path(settings.db.path))
    try:
        async with stop_on_signal(_quiet_presence) as stop:
            settings, broker, specs = prepare(settings)
            try:
                code = await _run(settings, broker, specs, stop, headless, duration, shown)
            finally:
                if broker is not None:
                    broker.stop()
    finally:
        if not shown:  # a start that failed (a busy port): a first admin nobody saw the
            forget_accounts(Path(settings.db.path), before)  # password of locks all out
    return code


async def _settled(app: Any, count: int, timeout: float = 10.0) -> None:
    """Until the controller has seen ``count`` speakers online (or ``timeout``)."""
    store = app.state.loa.store
    with anyio.move_on_after(timeout):
        while store.query("SELECT count(*) AS n FROM devices WHERE online=1")[0]["n"] < count:  # noqa: ASYNC110 - the database is polled, no event to wait on
            await anyio.sleep(0.1)


def _quiet_presence() -> None:
    """At a stop, the 27 simulated speakers leaving is expected, not news."""
    logging.getLogger("broadcaster.fleet.facts").setLevel(logging.WARNING)


async def _run(
    settings: Settings,
    broker: Broker | None,
    specs: list[DeviceSpec],
    stop: anyio.CancelScope,
    headless: bool,
    duration: float | None,
    shown: list[str],
) -> int:
    login_line, token = logins(settings)
    signer = Signer.load_or_create(Path(settings.security.signing_key))
    port, options = speaker_link(settings)
    fleet = Fleet(
        specs,
        host=settings.mqtt.host,
        port=port,
        verifier=Verifier([signer.public]),
        options=options,
    )
    app = create_app(settings, broker_reload=broker.reload if broker else None)
    code = 0
    async with serving(settings, app) as url:
        async with anyio.create_task_group() as sims:
            # started in full even if a signal comes meanwhile (a speaker cancelled halfway
            # through connecting leaves an MQTT client nobody closes); the signal then ends
            # the ``with stop`` block at once, and the speakers stop first
            presence = logging.getLogger("broadcaster.fleet.facts")
            level = presence.level
            presence.setLevel(logging.WARNING)  # 27 simulated speakers arriving is not news
            await sims.start(fleet.run)
            if broker is not None:  # a broker that dies is logged and started again
                sims.start_soon(BrokerSupervisor(broker, SystemClock()).run)
            await _settled(app, len(specs))
            presence.setLevel(level)  # from now on, each one coming or going is logged
            with stop:
                kind = broker.kind if broker else "external"
                print(
                    f"Loa demo: {len(fleet.speakers)} simulated speakers in "
                    f"{demo_data.COMMUNE[1]}, MQTT broker ({kind}) on "
                    f"{settings.mqtt.host}:{settings.mqtt.port}",
                    flush=True,
                )
                print(f"Open {url}  ({login_line})", flush=True)
                shown.append(login_line)
                if headless:
                    if not logging.getLogger().isEnabledFor(logging.DEBUG):
                        # the summary is the output; the script's own polling is not news
                        logging.getLogger("loa.http").setLevel(logging.WARNING)
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
            _quiet_presence()  # the demo ends its own speakers: not news either
            sims.cancel_scope.cancel()
        if stop.cancel_called:
            print("Loa demo: stopping (speakers, controller, broker)", flush=True)
    return code
