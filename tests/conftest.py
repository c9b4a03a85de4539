"""Real parts for tests: a Mosquitto per session, SQLite files in tmp, real ffmpeg."""

from __future__ import annotations

import logging
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest

from audio.tones import chime, to_wav, tone
from broadcaster.auth.accounts import service_token
from broadcaster.bench.harness import ControllerThread
from broadcaster.broker.mosquitto import find_mosquitto
from broadcaster.broker.process import Broker, free_port, start_broker
from broadcaster.places import demo_data
from broadcaster.services import Services
from broadcaster.settings import Settings, build
from broadcaster.store.store import Store
from devices.signing import Verifier
from firmware_sim.fleet import Fleet
from firmware_sim.playlog import PlayLog
from firmware_sim.speaker import SpeakerOptions
from firmware_sim.spec import DeviceSpec
from loa.clock import Clock, SystemClock

logger = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    if find_mosquitto() is None:
        logger.warning("mosquitto not installed: tests use the embedded amqtt broker")
    b = start_broker("auto")
    yield b
    b.stop()


def make_settings(tmp: Path, broker: Broker, **sections: dict[str, object]) -> Settings:
    data: dict[str, dict[str, object]] = {
        "http": {"host": "127.0.0.1", "port": 0},
        "db": {"path": str(tmp / "loa.db")},
        "storage": {"media_dir": str(tmp / "media")},
        "security": {"signing_key": str(tmp / "signing.key")},
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "client_id": f"loa-test-{uuid.uuid4().hex[:8]}",
            "publish_timeout_s": 5,
        },
        "broker": {"mode": "external"},
        "stream": {"lead_ms": 600, "chunk_ms": 500, "first_chunk_ms": 200, "report_grace_s": 1.0},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return build(data, "tests")


@pytest.fixture
def settings(tmp_path: Path, broker: Broker) -> Settings:
    return make_settings(tmp_path, broker)


@dataclass
class Running:
    url: str
    services: Services
    client: httpx.AsyncClient  # an admin's API token (province-wide)
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@asynccontextmanager
async def serve(
    settings: Settings, *, seed: bool = True, clock: Clock | None = None
) -> AsyncIterator[Running]:
    """The real app on its own thread, seeded with Xã Vị Tân, and a client for it."""
    store = Store(Path(settings.db.path))
    try:
        if seed:
            demo_data.seed(store)
        token = service_token(store, SystemClock(), "tests", settings.security)
    finally:
        store.close()
    st = ControllerThread(settings, clock)
    url = st.start()
    try:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
            yield Running(url, st.services, client, token)
    finally:
        st.stop()


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    async with serve(settings) as r:
        yield r


@asynccontextmanager
async def fleet_of(
    r: Running, specs: Sequence[DeviceSpec], options: SpeakerOptions | None = None
) -> AsyncIterator[Fleet]:
    """Simulated speakers (in this process) trusting the running controller's key."""
    s = r.services
    fleet = Fleet(
        specs,
        host=s.settings.mqtt.host,
        port=s.settings.mqtt.port,
        verifier=Verifier([s.signer.public]),
        log=PlayLog(),
        options=options,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(fleet.run)
        yield fleet
        tg.cancel_scope.cancel()


def wav(seconds: float = 2.0, freq: float = 440.0) -> bytes:
    """A generated bulletin: a chime then a tone."""
    return to_wav(chime() + tone(seconds, freq))


def ffmpeg_make(tmp: Path, name: str, *args: str) -> Path:
    """Make a test file with the real ffmpeg (lavfi sources are fine here, not in uploads)."""
    from audio.ffmpeg import find_ffmpeg

    out = tmp / name
    subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *args, str(out)],
        check=True,
        timeout=60,
    )
    return out


__all__ = ["Running", "ffmpeg_make", "free_port", "make_settings", "wav"]
