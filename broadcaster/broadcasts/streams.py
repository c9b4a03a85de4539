"""What stored and live broadcasts share, so that neither reaches into the other.

The publisher frames go out on; signing and publishing one frame to each group topic;
the stream runner a live broadcast is driven by (the dispatcher is one, through its
public methods only); and the row a broadcast starts with in the ledger.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Protocol

import anyio

from devices.frames import Frame, Priority, encode_frame
from devices.signing import Signer
from loa.clock import Clock
from loa.errors import BrokerError

from ..places.targeting import Resolution
from ..settings import StreamSettings
from .ledger import Ledger


class Publisher(Protocol):
    @property
    def connected(self) -> bool: ...

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None: ...

    async def wait_connected(self, timeout: float) -> None: ...


class StreamRunner(Protocol):
    """What a live (or relayed) broadcast needs from whoever puts it on the air."""

    @property
    def clock(self) -> Clock: ...

    @property
    def settings(self) -> StreamSettings: ...

    @property
    def ledger(self) -> Ledger: ...

    async def send_frame(self, topics: list[str], frame: Frame) -> None:
        """Sign and publish one frame to each group topic."""
        ...

    def finish_later(self, bid: str, end_us: int, status: str, error: str) -> None:
        """After the last frame: wait for proof of play, then close the ledger rows."""
        ...


def target_rows(resolution: Resolution) -> list[dict[str, str]]:
    """The groups a broadcast targets, as the ledger keeps them."""
    return [{"commune": g.commune, "kind": g.kind.value, "id": g.id} for g in resolution.groups]


def broadcast_row(
    bid: str,
    stream_id: str,
    *,
    media_id: str | None,
    title: str,
    priority: Priority,
    resolution: Resolution,
    now_us: int,
    start_us: int,
    end_us: int,
    chunks: int,
    kind: str,
    source: str = "",
) -> dict[str, object]:
    """The row a broadcast starts with: streaming, no gaps, no error yet."""
    return {
        "id": bid,
        "stream_id": stream_id,
        "media_id": media_id,
        "title": title,
        "priority": priority.name.lower(),
        "targets": json.dumps(target_rows(resolution)),
        "status": "streaming",
        "created_us": now_us,
        "start_pts_us": start_us,
        "end_pts_us": end_us,
        "chunks": chunks,
        "error": "",
        "kind": kind,
        "source": source,
        "gaps": 0,
        "gap_ms": 0,
    }


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
