"""A benchmark deployment: broker, controller and a seeded commune in a scratch folder."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from audio.tones import chime, to_wav, tone
from firmware_sim.spec import DeviceSpec
from loa.clock import SystemClock
from loa.errors import LoaError

from ..auth.accounts import service_token
from ..broadcasts.outcome import RUNNING
from ..broker.process import Broker, start_broker
from ..settings import Settings, build
from ..store.store import Store
from .harness import ControllerThread, SimProcess

COMMUNE = "xa-bench"


@dataclass
class Deployment:
    broker: Broker
    controller: ControllerThread
    url: str
    client: httpx.Client
    settings: Settings

    @property
    def pubkey(self) -> str:
        return self.controller.services.signer.public_hex()


def seed(store: Store, devices: list[tuple[str, str]]) -> None:
    """A commune with the given (device id, hamlet id) pairs."""
    store.upsert_province("bench", "Tỉnh thử nghiệm")
    store.upsert_commune(COMMUNE, "bench", "Xã thử nghiệm", "Asia/Ho_Chi_Minh")
    for pos, hamlet in enumerate(sorted({h for _, h in devices})):
        store.upsert_hamlet(COMMUNE, hamlet, f"Ấp {hamlet}", pos)
    with store.db.atomic():
        for device, hamlet in devices:
            store.upsert_device(COMMUNE, device, hamlet)


@contextmanager
def deployment(
    workdir: Path, devices: list[tuple[str, str]], **sections: dict[str, Any]
) -> Iterator[Deployment]:
    broker = start_broker("auto")
    try:
        data: dict[str, dict[str, Any]] = {
            "db": {"path": str(workdir / "loa.db")},
            "storage": {"media_dir": str(workdir / "media")},
            "security": {"signing_key": str(workdir / "signing.key")},
            "mqtt": {"host": broker.host, "port": broker.port},
            "broker": {"mode": "external"},
            "http": {"port": 0},
        }
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        settings = build(data, "bench")
        store = Store(Path(settings.db.path))
        try:
            seed(store, devices)
            token = service_token(store, SystemClock(), "bench", settings.security)
        finally:
            store.close()
        ctl = ControllerThread(settings)
        url = ctl.start()
        try:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
                yield Deployment(broker, ctl, url, client, settings)
        finally:
            ctl.stop()
    finally:
        broker.stop()


def start_sims(
    d: Deployment,
    specs: Sequence[DeviceSpec],
    processes: int,
    workdir: Path,
    extra: Sequence[str] = (),
) -> list[SimProcess]:
    """Spread ``specs`` over ``processes`` simulator processes connected to ``d``."""
    return [
        SimProcess(
            specs[i::processes],
            host=d.broker.host,
            port=d.broker.port,
            pubkey_hex=d.pubkey,
            workdir=workdir,
            name=f"sim{i}",
            extra=extra,
        )
        for i in range(processes)
    ]


def wait_online(d: Deployment, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # the communes' counts, not every speaker's row
        communes = d.client.get("/api/communes").json()["communes"]
        if sum(c["online"] for c in communes if c["id"] == COMMUNE) >= count:
            return
        time.sleep(0.25)
    raise LoaError(f"only some of {count} speakers came online within {timeout:g} s")


def upload_tone(d: Deployment, seconds: float) -> dict[str, Any]:
    wav = to_wav(chime() + tone(seconds, 440.0))
    r = d.client.post(f"/api/communes/{COMMUNE}/media", files={"file": ("b.wav", wav)})
    if r.status_code != 201:
        raise LoaError(f"upload failed: {r.text}")
    media: dict[str, Any] = r.json()["media"]
    return media


def broadcast_and_wait(d: Deployment, media_id: str, timeout: float) -> dict[str, Any]:
    r = d.client.post(
        "/api/broadcasts", json={"media_id": media_id, "targets": [{"commune": COMMUNE}]}
    )
    if r.status_code != 202:
        raise LoaError(f"broadcast refused: {r.text}")
    bid = r.json()["broadcast"]["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        b: dict[str, Any] = d.client.get(f"/api/broadcasts/{bid}").json()["broadcast"]
        if b["status"] not in RUNNING:  # final: done, partial, missed, failed, …
            return b
        time.sleep(0.25)
    raise LoaError(f"broadcast {bid} did not finish within {timeout:g} s")
