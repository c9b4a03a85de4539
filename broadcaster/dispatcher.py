"""The dispatcher: paces signed frames onto MQTT and keeps the ledger.

One publish per target group per frame (the broker fans out to the speakers); the
frame is signed once and the same bytes go to every group. Nothing on the path from
"start" to the first publish loops over devices.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import anyio
from anyio.abc import TaskGroup

from audio.ogg import opus_stream
from audio.plan import plan_chunks
from devices.frames import Codec, Frame, FrameType, Priority, encode_frame, pack_packets
from devices.messages import StreamEnd, StreamStart, dump
from devices.signing import Signer
from loa.clock import Clock
from loa.errors import BrokerError, LoaError

from .ledger import Ledger
from .settings import StreamSettings
from .store import MediaRow
from .targeting import Resolution

logger = logging.getLogger(__name__)


class Publisher(Protocol):
    @property
    def connected(self) -> bool: ...

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None: ...


@dataclass(frozen=True)
class BroadcastRequest:
    media: MediaRow
    resolution: Resolution
    priority: Priority
    title: str


class Dispatcher:
    def __init__(
        self,
        ledger: Ledger,
        publisher: Publisher,
        signer: Signer,
        clock: Clock,
        settings: StreamSettings,
        qos: int = 1,
    ) -> None:
        self.ledger = ledger
        self.publisher = publisher
        self.signer = signer
        self.clock = clock
        self.settings = settings
        self.qos = qos
        self._tg: TaskGroup | None = None
        self.publishes = 0

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Own the streaming tasks; returns when cancelled (lifespan shutdown)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._tg = None
                tg.cancel_scope.cancel()

    def start(self, req: BroadcastRequest) -> str:
        """Record a broadcast and begin streaming it; returns the broadcast id."""
        if self._tg is None:
            raise LoaError("the dispatcher is not running")
        if not self.publisher.connected:
            raise BrokerError("the MQTT broker is not reachable; nothing was sent")
        path = Path(req.media.path)
        try:
            stream = opus_stream(path.read_bytes())
        except OSError as exc:
            raise LoaError(f"media file for {req.media.id} is missing") from exc
        frame_ms = req.media.frame_ms
        now = self.clock.now_us()
        lead_ms, chunk_ms, first_ms = self.settings.timing(req.priority >= Priority.LIVE)
        start_us = now + lead_ms * 1000
        chunks = plan_chunks(
            len(stream.packets),
            frame_ms=frame_ms,
            chunk_ms=chunk_ms,
            start_us=start_us,
            first_chunk_ms=first_ms,
        )
        end_us = chunks[-1].pts_us + chunks[-1].duration_us
        bid, sid = str(uuid.uuid4()), uuid.uuid4()
        online = {d.id for d in req.resolution.devices if d.online}
        self.ledger.create(
            {
                "id": bid,
                "stream_id": str(sid),
                "media_id": req.media.id,
                "title": req.title,
                "priority": req.priority.name.lower(),
                "targets": json.dumps(
                    [
                        {"commune": g.commune, "kind": g.kind.value, "id": g.id}
                        for g in req.resolution.groups
                    ]
                ),
                "status": "streaming",
                "created_us": now,
                "start_pts_us": start_us,
                "end_pts_us": end_us,
                "chunks": len(chunks),
                "error": "",
            },
            list(req.resolution.communes),
            [
                {
                    "broadcast_id": bid,
                    "device_id": d.id,
                    "commune_id": d.commune_id,
                    "hamlet_id": d.hamlet_id,
                    "targeted": 1,
                    "online_at_start": int(d.id in online),
                    "outcome": "pending",
                }
                for d in req.resolution.devices
            ],
        )
        topics = [g.topic for g in req.resolution.groups]
        header = StreamStart(
            broadcast=bid,
            codec="opus",
            sample_rate=48000,
            channels=stream.channels,
            frame_ms=frame_ms,
            pre_skip=stream.pre_skip,
            chunk_ms=chunk_ms,
            chunks=len(chunks),
            duration_ms=(end_us - start_us) // 1000,
            title=req.title[:200],
        )
        frames = [
            Frame(
                FrameType.AUDIO,
                sid,
                i + 1,
                c.pts_us,
                0,
                pack_packets(stream.packets[c.first_packet : c.first_packet + c.packets]),
                Codec.OPUS,
                req.priority,
            )
            for i, c in enumerate(chunks)
        ]
        self._tg.start_soon(
            self._stream, bid, sid, topics, header, frames, start_us, end_us, req.priority
        )
        return bid

    async def _send(self, topics: list[str], frame: Frame) -> None:
        await publish_frame(self.publisher, self.signer, topics, frame, self.qos)
        self.publishes += len(topics)

    async def _stream(
        self,
        bid: str,
        sid: uuid.UUID,
        topics: list[str],
        header: StreamStart,
        frames: list[Frame],
        start_us: int,
        end_us: int,
        priority: Priority,
    ) -> None:
        lead_us = self.settings.timing(priority >= Priority.LIVE)[0] * 1000
        try:
            await self._send(
                topics,
                Frame(
                    FrameType.START,
                    sid,
                    0,
                    start_us,
                    self.clock.now_us(),
                    dump(header),
                    Codec.OPUS,
                    priority,
                ),
            )
            for f in frames:
                wait = (f.pts_us - lead_us - self.clock.now_us()) / 1e6
                if wait > 0:
                    await self.clock.sleep(wait)
                await self._send(
                    topics,
                    Frame(
                        f.type,
                        sid,
                        f.seq,
                        f.pts_us,
                        self.clock.now_us(),
                        f.payload,
                        f.codec,
                        priority,
                    ),
                )
            end = StreamEnd(chunks=len(frames))
            await self._send(
                topics,
                Frame(
                    FrameType.END,
                    sid,
                    len(frames) + 1,
                    end_us,
                    self.clock.now_us(),
                    dump(end),
                    Codec.NONE,
                    priority,
                ),
            )
            self.ledger.update(bid, status="finishing")
            wait = (end_us - self.clock.now_us()) / 1e6 + self.settings.report_grace_s
            await self.clock.sleep(max(0.0, wait))
            self.ledger.finalize(bid)
            self.ledger.update(bid, status="done")
            logger.info("broadcast %s done", bid)
        except BrokerError as exc:
            logger.error("broadcast %s failed: %s", bid, exc.message)
            self._close(bid, "failed", exc.message)
        except anyio.get_cancelled_exc_class():
            self._close(bid, "interrupted", "the controller stopped during the broadcast")
            raise
        except Exception as exc:  # a bug must fail one broadcast, never the dispatcher
            logger.exception("broadcast %s failed unexpectedly", bid)
            self._close(bid, "failed", f"internal error: {exc}")

    def _close(self, bid: str, status: str, error: str) -> None:
        self.ledger.finalize(bid)
        self.ledger.update(bid, status=status, error=error)


async def publish_frame(
    publisher: Publisher, signer: Signer, topics: list[str], frame: Frame, qos: int = 1
) -> None:
    """Sign ``frame`` for each topic and publish concurrently; one BrokerError on failure.

    The hot path: one publish per group (the broker fans out to the speakers), never a
    loop over devices.
    """
    payloads = [(topic, encode_frame(frame, signer, topic)) for topic in topics]
    try:
        if len(payloads) == 1:
            await publisher.publish(payloads[0][0], payloads[0][1], qos=qos)
        else:
            async with anyio.create_task_group() as tg:
                for topic, data in payloads:
                    tg.start_soon(partial(publisher.publish, topic, data, qos=qos))
    except BaseExceptionGroup as group:
        first = group.exceptions[0]
        if isinstance(first, BrokerError):
            raise first from group
        raise
