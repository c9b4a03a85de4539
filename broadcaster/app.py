"""``create_app(settings)``: the Starlette app whose lifespan owns every resource."""

from __future__ import annotations

import gc
import logging
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware

from audio.settings import AudioSettings
from audio.tts import EspeakEngine, SpeechEngine
from devices.router import Router
from devices.signing import Signer
from devices.topics import DeviceTopic, device_filter, retain_refused
from devices.transport import LinkOptions, MqttLink
from loa import __version__
from loa.clock import Clock, SkewedClock, SystemClock
from loa.errors import ConfigError, ToolMissing

from .alerts import api as alerts_api
from .alerts.service import AlertService
from .auth import api as auth_api
from .auth.accounts import Accounts
from .auth.audit import AuditLog
from .auth.headers import SecurityHeaders
from .auth.limits import RateLimit
from .auth.middleware import AuthMiddleware
from .broadcasts import api as broadcasts_api
from .broadcasts import live_api
from .broadcasts.dispatcher import Dispatcher
from .broadcasts.ledger import Ledger
from .broadcasts.live import LiveRequest
from .broadcasts.prefetch import Prefetcher
from .broadcasts.relay import check_url, relay
from .broker.access import BrokerAccess
from .fleet import api as fleet_api
from .fleet import registry_api
from .fleet.facts import Facts
from .fleet.firmware import Firmware
from .fleet.service import FleetService
from .library import api as library_api
from .library.service import Library
from .logs import RequestLog
from .places import api as places_api
from .places.targeting import Resolution
from .programmes import api as programmes_api
from .programmes.service import ProgrammeService
from .services import Services
from .settings import Settings
from .store.store import Store
from .ui import pages as ui_pages
from .web.arrival import ArrivalMiddleware
from .web.errors import HANDLERS
from .web.offload import Offload

logger = logging.getLogger(__name__)
#: The most a worker thread computing in Python holds the GIL while the loop waits.
GIL_SWITCH_S = 0.001


def speech_engine(settings: AudioSettings) -> SpeechEngine | None:
    try:
        return EspeakEngine(settings.tts_voice)
    except ToolMissing:
        logger.warning("espeak-ng is not installed: text-to-speech is unavailable")
        return None


#: Every route; each has an access rule in :data:`broadcaster.auth.policy.POLICY`.
ROUTES = [
    *auth_api.routes,
    *broadcasts_api.routes,
    *library_api.routes,
    *live_api.routes,
    *alerts_api.routes,
    *programmes_api.routes,
    *fleet_api.routes,
    *places_api.routes,
    *registry_api.routes,
    *ui_pages.routes,
]

SUBSCRIPTIONS = (
    DeviceTopic.PRESENCE,
    DeviceTopic.TELEMETRY,
    DeviceTopic.REPORT,
    DeviceTopic.ACK,
    DeviceTopic.CACHE,
    DeviceTopic.TIME_REQ,
    DeviceTopic.FW_STATUS,
)


#: Device topics where nothing may stay retained (all but presence), and how often the
#: controller looks for (and clears) what a device left there anyway.
SWEPT = tuple(device_filter(t) for t in SUBSCRIPTIONS if t is not DeviceTopic.PRESENCE)
RETAINED_SWEEP_S = 60.0


def reloader(settings: Settings, broker_reload: Callable[[], None] | None) -> Callable[[], None]:
    """How the broker is told to re-read its password file and ACL."""
    command = settings.security.broker_reload

    def run() -> None:
        if broker_reload is not None:
            broker_reload()
        elif command:
            done = subprocess.run(
                shlex.split(command), check=False, capture_output=True, timeout=30
            )
            if done.returncode:
                logger.error("broker reload command failed: %s", done.stderr[-500:])
        else:
            logger.warning(
                "broker access files changed: reload the broker (security.broker_reload)"
            )

    return run


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options every way of serving Loa uses: its own proxy-header handling off
    (X-Forwarded-For is believed only from ``http.trusted_proxies``, by the auth
    middleware), and HTTPS when ``http.tls_cert``/``http.tls_key`` are set."""
    options: dict[str, Any] = {"proxy_headers": False, "server_header": False}
    if settings.http.tls_cert or settings.http.tls_key:
        for name in ("tls_cert", "tls_key"):
            path = Path(getattr(settings.http, name))
            if not getattr(settings.http, name) or not path.is_file():
                raise ConfigError(f"http.{name}: {path} is not a readable file (HTTPS needs both)")
        options.update(ssl_certfile=settings.http.tls_cert, ssl_keyfile=settings.http.tls_key)
    return options


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    broker_reload: Callable[[], None] | None = None,
) -> Starlette:
    if clock is None:
        offset = settings.scheduler.clock_offset_s
        clock = SkewedClock(SystemClock(), offset_s=offset) if offset else SystemClock()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = Store(Path(settings.db.path), busy_timeout_ms=settings.db.busy_timeout_ms)
        switch = sys.getswitchinterval()
        # The loop gives up the GIL at every socket call and must get it back soon even
        # while a worker thread computes (a report, a speaker list): at most 1 ms, not 5.
        sys.setswitchinterval(min(switch, GIL_SWITCH_S))
        offload = Offload()  # report charts in a child process, started at the first
        try:
            store.start_syncer()  # commits on the loop never wait for the disk
            signer = Signer.load_or_create(Path(settings.security.signing_key))
            router = Router()
            m = settings.mqtt
            link = MqttLink(
                LinkOptions(
                    host=m.host,
                    port=m.port,
                    client_id=m.client_id,
                    username=m.username or None,
                    password=m.password or None,
                    keepalive_s=m.keepalive_s,
                    backoff_min_s=m.backoff_min_s,
                    backoff_max_s=m.backoff_max_s,
                    publish_timeout_s=m.publish_timeout_s,
                    clean_session=False,  # proof of play sent while we reconnect is kept
                    subscriptions=tuple((device_filter(t), 1) for t in SUBSCRIPTIONS),
                    retained_refused=retain_refused,
                ),
                router,
                clock,
            )
            audit = AuditLog(store, clock)
            ledger = Ledger(store)
            swept = ledger.sweep_interrupted()
            ledger.prune_pending(clock.now_us())
            if swept:
                logger.warning("%d broadcasts were interrupted by the last shutdown", swept)
            facts = Facts(store, ledger, link, signer, clock, tuple(settings.security.trusted_keys))
            facts.install(router)
            link.on_connect(facts.push_configs)
            dispatcher = Dispatcher(ledger, link, signer, clock, settings.stream, qos=m.qos)
            dispatcher.before_finalize = facts.flush_reports
            library = Library(
                store,
                settings.audio,
                Path(settings.storage.media_dir),
                clock,
                speech_engine(settings.audio),
            )
            await library.ensure_signals()
            alerts = AlertService(
                store,
                ledger,
                library,
                dispatcher,
                clock,
                timezone=settings.scheduler.timezone,
                default_expiry_s=settings.alerts.default_expiry_min * 60.0,
                audit=audit,
                loudness_lufs=settings.alerts.loudness_lufs,
            )
            facts.on_online.append(alerts.speaker_online)

            def start_relay(
                title: str,
                url: str,
                seconds: float,
                where: Resolution,
                also: Callable[[str], object] | None = None,
            ) -> str:
                live = dispatcher.open_live(
                    LiveRequest(where, title, kind="relay", source=check_url(url), also=also)
                )
                dispatcher.spawn(
                    relay,
                    live,
                    url,
                    seconds,
                    settings.audio,
                    retry_max_s=settings.stream.relay_retry_max_s,
                    allowed_hosts=settings.relay.allowed_hosts,
                )
                return live.id

            prefetcher = Prefetcher(store, dispatcher.send_frame, clock, settings.stream)
            facts.on_cache = prefetcher.record
            facts.on_online.append(prefetcher.speaker_online)  # a restart empties caches
            programmes = ProgrammeService(
                store,
                dispatcher,
                clock,
                settings.scheduler,
                audit=audit,
                relay=start_relay,
                prefetcher=prefetcher,
            )
            fleet = FleetService(store, clock, settings.fleet, signer, link.publish, audit=audit)
            facts.on_command_ack = fleet.on_ack
            facts.telemetry_min_us = int(settings.fleet.telemetry_min_interval_s * 1e6)
            firmware = Firmware(
                store,
                clock,
                settings.fleet,
                signer,
                link.publish,
                Path(settings.storage.media_dir).parent / "firmware",
            )
            facts.on_firmware = firmware.on_status
            app.state.alerts = alerts
            app.state.loa = Services(
                settings,
                clock,
                store,
                ledger,
                library,
                signer,
                link,
                facts,
                dispatcher,
                __version__,
                alerts,
                programmes,
                Accounts(store, clock, settings.security),
                audit,
                RateLimit(clock, settings.security.login_per_min, "login attempts"),
                RateLimit(clock, settings.security.alerts_per_min, "alerts"),
                BrokerAccess(
                    store,
                    clock,
                    Path(settings.security.broker_auth_dir),
                    reloader(settings, broker_reload),
                ),
                fleet,
                RateLimit(clock, settings.fleet.commands_per_min, "commands"),
                router,
                firmware,
                offload=offload,
            )
            app.state.router = router
            async with anyio.create_task_group() as tg:
                tg.start_soon(app.state.loa.loop_lag.run, clock)
                tg.start_soon(link.run)
                tg.start_soon(link.sweep_retained, SWEPT, RETAINED_SWEEP_S)
                tg.start_soon(facts.run)
                await tg.start(dispatcher.run)
                await tg.start(alerts.run)
                await tg.start(programmes.run)
                await tg.start(fleet.run)
                try:
                    await link.wait_connected(m.publish_timeout_s)
                except TimeoutError:
                    logger.warning(
                        "MQTT broker %s:%d not reachable yet; retrying in the background",
                        m.host,
                        m.port,
                    )
                # Everything built so far (modules, settings, services) lives as long as
                # the controller: out of the cyclic collector's sight, so its full passes
                # scan only what the work creates (they stalled the loop 140-390 ms in a
                # reconnect storm). Given back to it at shutdown. (No gc.collect() first:
                # startup leaves little garbage, and a full pass over a big process —
                # a test runner — costs more than it saves.)
                gc.freeze()
                logger.info("Loa control plane ready")
                try:
                    yield
                finally:
                    gc.unfreeze()
                    tg.cancel_scope.cancel()
        finally:
            sys.setswitchinterval(switch)
            try:
                offload.close()
            finally:
                store.close()

    return Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(ArrivalMiddleware, clock=clock),  # first: when a request came in
            Middleware(RequestLog),
            Middleware(SecurityHeaders),
            Middleware(AuthMiddleware, routes=ROUTES),
        ],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
