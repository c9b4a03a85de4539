"""``loa serve``: the control plane for real use, from an empty data folder onwards."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio

from loa.clock import SystemClock

from .app import create_app
from .auth.accounts import first_admin_line
from .runner import serving, start_own_broker, stop_on_signal
from .settings import Settings
from .store import Store

logger = logging.getLogger(__name__)


async def run_serve(settings: Settings) -> int:
    """Start the broker the settings ask for, then the controller; SIGINT or SIGTERM
    stops the controller, then that broker, and the command exits 0."""
    async with stop_on_signal() as stop:
        store = Store(Path(settings.db.path), busy_timeout_ms=settings.db.busy_timeout_ms)
        try:
            login = first_admin_line(store, SystemClock(), settings.security)
            empty = not store.query("SELECT id FROM communes LIMIT 1")
        finally:
            store.close()
        settings, broker = start_own_broker(settings)
        try:
            app = create_app(settings, broker_reload=broker.reload if broker else None)
            async with serving(settings, app) as url:
                where = (
                    f"MQTT broker ({broker.kind}) on {broker.host}:{broker.port}"
                    if broker
                    else f"MQTT broker {settings.mqtt.host}:{settings.mqtt.port}"
                )
                print(f"Loa control plane: open {url}  ({where})", flush=True)
                if empty:
                    print(
                        "No commune yet: log in and the first page sets up the province, "
                        "the commune, its hamlets and speakers.",
                        flush=True,
                    )
                print(login, flush=True)
                with stop:
                    await anyio.sleep_forever()
                print("Loa: stopping (controller, then broker)", flush=True)
        finally:
            if broker is not None:
                broker.stop()
    return 0
