"""Prefetch: scheduled audio goes to the speakers ahead of time, the firing is a PLAY.

``scheduler.prefetch_s`` before a firing, the item (the stream's AUDIO payloads as one
file, :mod:`devices.items`) is published once per target group (ITEM, then ITEM_DATA
slices), unless every Opus speaker of the group already said it stored that item; a
signed PLAY ("play item X at T") follows at once. Speakers verify the SHA-256, keep the
item in a bounded cache and answer on ``dev/{id}/cache``: stored/refused for the item,
armed/missing for the play. An armed speaker plays at T even if its link is down then;
at the firing the dispatcher streams only to the targeted speakers that did not arm.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from audio.ogg import opus_stream
from devices.frames import Codec, Frame, FrameType, Priority
from devices.items import pack_item, sha256_hex, slices
from devices.messages import CacheReport, ItemOffer, PlayItem, dump
from devices.topics import Group
from loa.clock import Clock
from loa.errors import LoaError

from .legs import Timing, opus_leg
from .settings import StreamSettings
from .store import MediaRow, Store
from .targeting import Resolution, member

#: Item ids are derived from the content, so the same audio is the same cached item.
ITEM_NAMESPACE = uuid.UUID("5d0b8f61-3c1e-4f0a-9a57-6c1f4d3e2b10")

Send = Callable[[list[str], Frame], Awaitable[None]]


@dataclass(frozen=True)
class Prefetched:
    """A firing pushed ahead: what the dispatcher needs at fire time."""

    broadcast_id: str
    stream_id: str
    at_us: int
    end_us: int
    chunks: int
    armed: frozenset[str]  # device ids that said the play is armed


class Prefetcher:
    def __init__(self, store: Store, send: Send, clock: Clock, settings: StreamSettings) -> None:
        self.store = store
        self.db = store.db
        self.send = send
        self.clock = clock
        self.settings = settings
        self.items_sent = 0  # group publishes of an item (for tests and the bench)

    def at_for(self, fire_us: int, priority: Priority) -> int:
        """When a prefetched firing sounds: where its stream would start if sent on time."""
        return fire_us + self.settings.timing(priority >= Priority.LIVE)[0] * 1000

    async def push(
        self,
        key: tuple[str, int],
        media: MediaRow,
        resolution: Resolution,
        priority: Priority,
        title: str,
        volume: int | None,
    ) -> None:
        """Publish the item where needed and the PLAY to every group; record it."""
        at_us = self.at_for(key[1], priority)
        _, chunk_ms, first_ms = self.settings.timing(priority >= Priority.LIVE)
        bid, sid = str(uuid.uuid4()), uuid.uuid4()
        try:
            stream = opus_stream(await anyio.Path(media.path).read_bytes())
        except OSError as exc:
            raise LoaError(f"media file for {media.id} is missing") from exc
        groups = list(resolution.groups)
        leg = opus_leg(
            stream, media.frame_ms, groups, Timing(at_us, chunk_ms, first_ms), priority, bid, title
        )
        data = pack_item([f.payload for f in leg.frames])
        sha = sha256_hex(data)
        item = uuid.uuid5(ITEM_NAMESPACE, sha)
        parts = slices(data)
        offer = ItemOffer(
            item=str(item),
            sha256=sha,
            size=len(data),
            slices=len(parts),
            codec="opus",
            sample_rate=leg.header.sample_rate,
            channels=leg.header.channels,
            frame_ms=leg.header.frame_ms,
            pre_skip=leg.header.pre_skip,
            chunks=len(leg.frames),
            duration_ms=leg.header.duration_ms,
            title=title[:200],
        )
        topics = [g.topic_for("opus") for g in groups]
        need = [g.topic_for("opus") for g in groups if not self._stored(g, resolution, str(item))]
        if need:
            now = self.clock.now_us()
            await self.send(
                need, Frame(FrameType.ITEM, item, 0, now, now, dump(offer), Codec.OPUS, priority)
            )
            for i, part in enumerate(parts, start=1):
                now = self.clock.now_us()
                frame = Frame(FrameType.ITEM_DATA, item, i, now, now, part, Codec.OPUS, priority)
                await self.send(need, frame)
            self.items_sent += len(need)
        play = PlayItem(
            broadcast=bid, item=str(item), sha256=sha, at_us=at_us, volume=volume, title=title[:200]
        )
        now = self.clock.now_us()
        await self.send(
            topics, Frame(FrameType.PLAY, sid, 1, at_us, now, dump(play), Codec.OPUS, priority)
        )
        self.db.table("prefetches").insert(
            {
                "programme_id": key[0],
                "fire_us": key[1],
                "broadcast_id": bid,
                "stream_id": str(sid),
                "item_id": str(item),
                "sha256": sha,
                "at_us": at_us,
                "end_us": leg.end_us,
                "chunks": len(leg.frames),
                "groups": json.dumps(topics),
                "pushed_us": now,
                "cancelled_us": None,
            },
            pk=("programme_id", "fire_us"),
            replace=True,
        )

    def _stored(self, group: Group, resolution: Resolution, item: str) -> bool:
        """Every Opus speaker of the group said it holds the item (so skip sending it)."""
        devices = [d.id for d in resolution.devices if member(d, group) and not d.needs_mp3]
        if not devices:
            return True
        marks = ",".join("?" * len(devices))
        rows = self.store.query(
            f"SELECT count(*) AS n FROM device_items WHERE item_id=? AND state='stored'"  # noqa: S608
            f" AND device_id IN ({marks})",
            [item, *devices],
        )
        return bool(rows[0]["n"] == len(devices))

    def _pushed(self, key: tuple[str, int]) -> dict[str, Any] | None:
        """The firing's pushed PLAY, unless it was called off."""
        rows = self.store.query(
            "SELECT * FROM prefetches WHERE programme_id=? AND fire_us=? AND cancelled_us IS NULL",
            list(key),
        )
        return rows[0] if rows else None

    def prefetched(self, key: tuple[str, int]) -> Prefetched | None:
        p = self._pushed(key)
        if p is None:
            return None
        armed = {
            r["device_id"]
            for r in self.store.query(
                "SELECT device_id FROM play_arms WHERE broadcast_id=? AND state='armed'",
                [p["broadcast_id"]],
            )
        }
        return Prefetched(
            p["broadcast_id"],
            p["stream_id"],
            p["at_us"],
            p["end_us"],
            p["chunks"],
            frozenset(armed),
        )

    async def cancel(self, key: tuple[str, int], priority: Priority) -> bool:
        """Tell the speakers a pushed PLAY is off (the firing was dropped or skipped)."""
        p = self._pushed(key)
        if p is None:
            return False
        play = PlayItem(
            broadcast=p["broadcast_id"],
            item=p["item_id"],
            sha256=p["sha256"],
            at_us=p["at_us"],
            action="cancel",
        )
        now = self.clock.now_us()
        sid = uuid.UUID(p["stream_id"])
        frame = Frame(FrameType.PLAY, sid, 2, p["at_us"], now, dump(play), Codec.OPUS, priority)
        await self.send(json.loads(p["groups"]), frame)
        self.db.execute(
            "UPDATE prefetches SET cancelled_us=? WHERE programme_id=? AND fire_us=?",
            [now, *key],
        )
        return True

    def record(self, device: str, report: CacheReport) -> None:
        """A speaker's answer about an item or a play."""
        now = self.clock.now_us()
        if report.state in ("stored", "refused"):
            self.db.table("device_items").insert(
                {
                    "device_id": device,
                    "item_id": report.item,
                    "state": report.state,
                    "detail": report.detail,
                    "at_us": now,
                },
                pk=("device_id", "item_id"),
                replace=True,
            )
        elif report.broadcast is not None:
            self.db.table("play_arms").insert(
                {
                    "broadcast_id": report.broadcast,
                    "device_id": device,
                    "state": report.state,
                    "detail": report.detail,
                    "at_us": now,
                },
                pk=("broadcast_id", "device_id"),
                replace=True,
            )
            if report.state == "missing":  # the cache lost it: send it next time
                self.db.execute(
                    "DELETE FROM device_items WHERE device_id=? AND item_id=? AND state='stored'",
                    [device, report.item],
                )

    def status(self, key: tuple[str, int]) -> dict[str, Any] | None:
        """For the calendar: how many speakers armed the firing."""
        p = self.prefetched(key)
        if p is None:
            return None
        return {"at_us": p.at_us, "armed": len(p.armed)}
