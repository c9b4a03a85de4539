"""Running Loa as a process: the broker it starts, the web server, and a clean stop.

``loa demo`` and ``loa serve`` share this. SIGINT (Ctrl-C) and SIGTERM stop things in
order (speakers, then the controller, then the broker Loa started) and the command
exits 0; uvicorn's own signal handling is switched off so it cannot re-raise the
signal after Loa has cleaned up.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import anyio
import uvicorn
from starlette.applications import Starlette

from loa.clock import SystemClock
from loa.errors import LoaError

from .app import server_options
from .broker.access import CONTROLLER_USER, BrokerAccess
from .broker.mosquitto import find_mosquitto
from .broker.process import Broker, start_broker
from .broker.tls import demo_ca
from .settings import Settings
from .store.store import Store

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: Loa stops it itself, in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


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


def terminate_as_interrupt() -> None:
    """Until the event loop takes over, SIGTERM unwinds like Ctrl-C (``finally`` blocks
    run, so a broker already started is stopped)."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@asynccontextmanager
async def stop_on_signal(
    on_signal: Callable[[], None] | None = None,
) -> AsyncIterator[anyio.CancelScope]:
    """A cancel scope that SIGINT or SIGTERM cancels; enter it around what should stop.
    ``on_signal`` runs first (e.g. to quieten what the stop would make noisy)."""
    scope = anyio.CancelScope()
    # installed now, not when a task first runs: a signal during the (blocking) start-up
    # that follows is kept and cancels ``scope`` as soon as the loop turns
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                async for signum in signals:
                    logger.warning("%s received: stopping", signal.Signals(signum).name)
                    if on_signal is not None:
                        on_signal()
                    scope.cancel()

            tg.start_soon(watch)
            try:
                yield scope
            finally:
                tg.cancel_scope.cancel()


@asynccontextmanager
async def serving(settings: Settings, app: Starlette) -> AsyncIterator[str]:
    """The web server running ``app`` (its lifespan: the controller); yields its URL.
    Leaving stops it gracefully (the lifespan closes MQTT and the store)."""
    config = uvicorn.Config(
        app,
        host=settings.http.host,
        port=settings.http.port,
        log_level="warning",
        access_log=False,  # Loa logs each request itself (broadcaster.request_log)
        lifespan="on",
        **server_options(settings),
    )
    server = QuietServer(config)
    sock = bind(settings.http.host, settings.http.port)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(server.serve, sockets=[sock]))
            try:
                with anyio.fail_after(60):
                    while not server.started:
                        if server.should_exit:
                            raise LoaError("the control plane could not start (see the log above)")
                        await anyio.sleep(0.05)
                port = sock.getsockname()[1]
                scheme = "https" if settings.http.tls_cert else "http"
                yield settings.http.public_url or f"{scheme}://{settings.http.host}:{port}"
            finally:
                server.should_exit = True
    finally:
        sock.close()


def start_own_broker(settings: Settings) -> tuple[Settings, Broker | None]:
    """Start the broker the settings ask for (none when ``broker.mode`` is external),
    with access control when it is Mosquitto: every speaker has its own credentials
    and anonymous clients are refused. Returns the settings pointing at it."""
    if settings.broker.mode == "external":
        return settings, None
    secured = find_mosquitto(settings.broker.mosquitto) is not None and (
        settings.broker.mode != "amqtt"
    )
    auth_dir = Path(settings.security.broker_auth_dir)
    mqtt: dict[str, object] = {}
    if secured:
        store = Store(Path(settings.db.path), busy_timeout_ms=settings.db.busy_timeout_ms)
        try:
            access = BrokerAccess(store, SystemClock(), auth_dir)
            access.apply()  # the password file and ACL exist before the broker reads them
            mqtt = {"username": CONTROLLER_USER, "password": access.controller_password()}
        finally:
            store.close()
    else:
        logger.warning("no mosquitto: the broker has no access control (amqtt)")
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
        print(
            f"MQTT over TLS on port {tls[0]} (speakers; plaintext only for the controller on "
            f"loopback); trust {tls[1].ca}",
            flush=True,
        )
    settings = settings.replace(mqtt={"host": broker.host, "port": broker.port, **mqtt})
    return settings, broker
