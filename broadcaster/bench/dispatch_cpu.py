"""The dispatcher's CPU over its whole path, ours against a naive per-speaker loop.

Both go through the real :class:`broadcaster.broadcasts.dispatcher.Dispatcher` with a real SQLite
ledger: a broadcast row, a stream row, one delivery row per speaker, the frames signed
and published to a real broker, the ledger finalised at the end. The only difference is
the targeting: ours publishes each frame once to the commune's group topic (the broker
fans out); the naive controller has one group per speaker, so it signs and publishes
every frame once per speaker. Same ledger work, same bulletin, same process.

Time is rushed (a clock whose sleeps return at once and move its time on), so the
figure is CPU, not the bulletin's length in wall time.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.lowlevel

from devices.frames import Priority
from devices.signing import Signer
from devices.topics import Group, GroupKind
from devices.transport import LinkOptions, MqttLink
from loa.clock import SystemClock

from ..broadcasts.dispatcher import BroadcastRequest, Dispatcher
from ..broadcasts.ledger import Ledger
from ..places.targeting import Resolution
from ..settings import StreamSettings
from ..store.rows import DeviceRow, MediaRow
from ..store.store import Store
from .setup import COMMUNE, seed


class RushClock:
    """The real clock plus time skipped: ``sleep`` moves time on and returns at once."""

    def __init__(self) -> None:
        self._real = SystemClock()
        self._skipped_us = 0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_us() / 1e6, UTC)

    def now_us(self) -> int:
        return self._real.now_us() + self._skipped_us

    def monotonic(self) -> float:
        return self._real.monotonic() + self._skipped_us / 1e6

    async def sleep(self, seconds: float) -> None:
        self._skipped_us += int(max(0.0, seconds) * 1e6)
        await asyncio.sleep(0)


def prepare(work: Path, speakers: int, opus: bytes) -> tuple[Path, MediaRow, list[DeviceRow]]:
    """A store seeded with ``speakers`` devices and one Opus item."""
    db = work / f"cpu-{speakers}-{uuid.uuid4().hex[:6]}.db"
    store = Store(db)
    try:
        ids = [(f"c{speakers}-{i:05d}", f"h{i // 100:03d}") for i in range(speakers)]
        seed(store, ids)
        path = work / "bulletin.opus"
        path.write_bytes(opus)
        media = MediaRow(
            str(uuid.uuid4()), COMMUNE, "bản tin", 10_000, "opus", 24, 20,
            hashlib.sha256(opus).hexdigest(), str(path),
        )  # fmt: skip
        store.add_media(
            {
                "id": media.id, "commune_id": COMMUNE, "kind": "upload", "title": media.title,
                "filename": "b.opus", "source_text": "", "duration_ms": media.duration_ms,
                "trimmed_ms": 0, "codec": "opus", "bitrate_kbps": 24, "frame_ms": 20,
                "sha256": media.sha256, "bytes": len(opus), "path": str(path),
                "peak_dbfs": 0.0, "created_us": SystemClock().now_us(),
            }
        )  # fmt: skip
        devices = [DeviceRow(COMMUNE, d, h, d, True) for d, h in ids]
    finally:
        store.close()
    return db, media, devices


async def dispatch_cpu(
    host: str, port: int, db: Path, media: MediaRow, devices: list[DeviceRow], naive: bool
) -> float:
    """CPU seconds of this process for one broadcast, start to finalised ledger."""
    store = Store(db)
    clock = RushClock()

    async def ignore(topic: str, payload: bytes) -> None:
        return None

    link = MqttLink(
        LinkOptions(host, port, f"bench-{uuid.uuid4().hex[:8]}", publish_timeout_s=30),
        ignore,
        clock,
    )
    settings = StreamSettings(report_grace_s=0.0)
    dispatcher = Dispatcher(Ledger(store), link, Signer.generate(), clock, settings)
    finished = anyio.Event()
    dispatcher.before_finalize = finished.set
    if naive:
        groups = tuple(Group(COMMUNE, GroupKind.DEVICE, d.id) for d in devices)
    else:
        groups = (Group(COMMUNE, GroupKind.COMMUNE),)
    resolution = Resolution(groups, tuple(devices), (COMMUNE,))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(link.run)
            await tg.start(dispatcher.run)
            await link.wait_connected(10)
            t0 = time.process_time()
            bid = dispatcher.start(BroadcastRequest(media, resolution, Priority.NORMAL, "bản tin"))
            await finished.wait()  # set just before the ledger is finalised…
            await anyio.lowlevel.checkpoint()  # …which happens before the task yields
            cpu = time.process_time() - t0
            rows = store.query("SELECT COUNT(*) AS n FROM deliveries WHERE broadcast_id=?", [bid])
            if rows[0]["n"] != len(devices):
                raise RuntimeError("the ledger does not have one row per speaker")
            tg.cancel_scope.cancel()
    finally:
        store.close()
    return cpu
