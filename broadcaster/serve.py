"""``loa serve``: the control plane for real use, from an empty data folder onwards."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio

from loa.clock import SystemClock

from .app import create_app
from .auth.accounts import account_ids, first_admin_line, forget_accounts
from .broker.supervisor import BrokerSupervisor
from .places import demo_data
from .runner import serving, start_own_broker, stop_on_signal
from .settings import Settings
from .store.store import Store

logger = logging.getLogger(__name__)


def holds_demo(store: Store) -> bool:
    """Whether ``loa demo`` seeded this database (its first simulated speaker is there)."""
    first = demo_data.fleet_specs(seed_offsets=False)[0]
    return bool(
        store.query(
            "SELECT 1 FROM devices WHERE id=? AND commune_id=?", [first.id, demo_data.COMMUNE[0]]
        )
    )


async def run_serve(settings: Settings) -> int:
    """Start the broker the settings ask for, then the controller; SIGINT or SIGTERM
    stops the controller, then that broker, and the command exits 0."""
    shown: list[str] = []  # the login line, once printed
    before = account_ids(Path(settings.db.path))
    try:
        async with stop_on_signal() as stop:
            await _serve(settings, stop, shown)
    finally:
        if not shown:  # a start that failed: a first admin nobody saw the password of
            forget_accounts(Path(settings.db.path), before)  # would lock everyone out
    return 0


async def _serve(settings: Settings, stop: anyio.CancelScope, shown: list[str]) -> None:
    store = Store(Path(settings.db.path), busy_timeout_ms=settings.db.busy_timeout_ms)
    try:
        login = first_admin_line(store, SystemClock(), settings.security)
        empty = not store.query("SELECT id FROM communes LIMIT 1")
        demo = holds_demo(store)
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
            if demo:
                print(
                    f"Note: {Path(settings.db.path).parent} holds the demo "
                    f"({demo_data.COMMUNE[1]} and its simulated speakers, from loa demo). "
                    "For a real commune start from an empty folder: loa serve --data DIR",
                    flush=True,
                )
            print(login, flush=True)
            shown.append(login)
            with stop:
                if broker is not None:  # a broker that dies is logged and started again
                    await BrokerSupervisor(broker, SystemClock()).run()
                else:
                    await anyio.sleep_forever()
            print("Loa: stopping (controller, then broker)", flush=True)
    finally:
        if broker is not None:
            broker.stop()
