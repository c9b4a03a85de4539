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
from devices.topics import Group, GroupKind
from loa.clock import Clock
from loa.errors import LoaError

from ..places.targeting import Resolution, device_groups, member
from ..settings import StreamSettings
from ..store.rows import MediaRow
from ..store.store import Store
from .legs import Timing, opus_leg

#: Item ids are derived from the content, so the same audio is the same cached item.
ITEM_NAMESPACE = uuid.UUID("5d0b8f61-3c1e-4f0a-9a57-6c1f4d3e2b10")
#: An item is offered again only if the firing is at least this far ahead.
REPAIR_MIN_AHEAD_US = 2_000_000

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
        self.repushes = 0  # PLAYs (and items) offered again to one speaker
        self._recheck: dict[str, str] = {}  # device → commune: came online
        self._missing: set[tuple[str, str]] = set()  # (device, broadcast): said missing

    def at_for(self, fire_us: int, priority: Priority) -> int:
        """When a prefetched firing sounds: where its stream would start if sent on time."""
        return fire_us + self.settings.timing(priority >= Priority.LIVE)[0] * 1000

    async def _item(
        self,
        media: MediaRow,
        groups: list[Group],
        at_us: int,
        priority: Priority,
        bid: str,
        title: str,
    ) -> tuple[ItemOffer, list[bytes], int]:
        """The firing's audio as one item (offer, slices) and where its stream would end."""
        _, chunk_ms, first_ms = self.settings.timing(priority >= Priority.LIVE)
        try:
            stream = opus_stream(await anyio.Path(media.path).read_bytes())
        except OSError as exc:
            raise LoaError(f"media file for {media.id} is missing") from exc
        leg = opus_leg(
            stream, media.frame_ms, groups, Timing(at_us, chunk_ms, first_ms), priority, bid, title
        )
        data = pack_item([f.payload for f in leg.frames])
        sha = sha256_hex(data)
        parts = slices(data)
        offer = ItemOffer(
            item=str(uuid.uuid5(ITEM_NAMESPACE, sha)),
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
        return offer, parts, leg.end_us

    async def _send_item(
        self, topics: list[str], offer: ItemOffer, parts: list[bytes], priority: Priority
    ) -> None:
        item = uuid.UUID(offer.item)
        now = self.clock.now_us()
        await self.send(
            topics, Frame(FrameType.ITEM, item, 0, now, now, dump(offer), Codec.OPUS, priority)
        )
        for i, part in enumerate(parts, start=1):
            now = self.clock.now_us()
            frame = Frame(FrameType.ITEM_DATA, item, i, now, now, part, Codec.OPUS, priority)
            await self.send(topics, frame)
        self.items_sent += len(topics)

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
        bid, sid = str(uuid.uuid4()), uuid.uuid4()
        groups = list(resolution.groups)
        offer, parts, end_us = await self._item(media, groups, at_us, priority, bid, title)
        topics = [g.topic_for("opus") for g in groups]
        need = [g.topic_for("opus") for g in groups if not self._stored(g, resolution, offer.item)]
        if need:
            await self._send_item(need, offer, parts, priority)
        play = PlayItem(
            broadcast=bid,
            item=offer.item,
            sha256=offer.sha256,
            at_us=at_us,
            volume=volume,
            title=title[:200],
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
                "item_id": offer.item,
                "sha256": offer.sha256,
                "at_us": at_us,
                "end_us": end_us,
                "chunks": offer.chunks,
                "groups": json.dumps(topics),
                "pushed_us": now,
                "cancelled_us": None,
            },
            pk=("programme_id", "fire_us"),
            replace=True,
        )

    # --- caches re-checked (a speaker restarted, or said an item is missing) ------------

    def speaker_online(self, commune: str, device: str) -> None:
        """A speaker came (back) online, perhaps after a restart that emptied its cache:
        forget what it said it stored; its pushed firings are offered again."""
        self.db.execute("DELETE FROM device_items WHERE device_id=?", [device])
        self._recheck[device] = commune

    async def repair(self) -> int:
        """Re-offer pushed, still future firings: the PLAY to speakers that came back
        (an armed one answers ``armed`` again), item and PLAY to those that answered
        ``missing`` — to each on its own topic, while time allows. Returns sends."""
        if not self._recheck and not self._missing:
            return 0
        recheck, self._recheck = self._recheck, {}
        missing, self._missing = self._missing, set()
        pending = self.store.query(
            "SELECT f.*, p.media_id, p.priority, p.title, p.volume FROM prefetches f"
            " JOIN programmes p ON p.id = f.programme_id WHERE f.cancelled_us IS NULL"
            " AND f.at_us > ?",
            [self.clock.now_us() + REPAIR_MIN_AHEAD_US],
        )
        if not pending:  # nothing pushed ahead: nothing to re-offer (the usual case)
            return 0
        sent = 0
        topics = self._device_topics(recheck)
        for n, (device, commune) in enumerate(recheck.items()):
            if n % 200 == 199:  # thousands back at once (a broker restart): let input in
                await anyio.lowlevel.checkpoint()
            mine = topics.get(device, set())
            for p in pending:
                if mine & set(json.loads(p["groups"])):
                    await self._repush(p, commune, device, item=False)
                    sent += 1
        for device, bid in missing:
            where = self.store.device_commune(device)
            for p in pending:
                if where is not None and p["broadcast_id"] == bid:
                    await self._repush(p, where, device, item=True)
                    sent += 1
        return sent

    def _device_topics(self, devices: dict[str, str]) -> dict[str, set[str]]:
        """Each device's own topics (commune, hamlet, zones, device), reading each
        commune's speakers once however many of them came back."""
        out: dict[str, set[str]] = {}
        for commune in set(devices.values()):
            for row in self.store.devices(commune):
                if devices.get(row.id) != commune:
                    continue
                out[row.id] = {g.topic_for("opus") for g in device_groups(row)}
        return out

    async def _repush(self, p: dict[str, Any], commune: str, device: str, *, item: bool) -> None:
        priority = Priority[p["priority"].upper()]
        own = Group(commune, GroupKind.DEVICE, device)
        topic = own.topic_for("opus")
        if item:
            media = self.store.media(p["media_id"])
            offer, parts, _ = await self._item(
                media, [own], p["at_us"], priority, p["broadcast_id"], p["title"]
            )
            await self._send_item([topic], offer, parts, priority)
        play = PlayItem(
            broadcast=p["broadcast_id"],
            item=p["item_id"],
            sha256=p["sha256"],
            at_us=p["at_us"],
            volume=p["volume"],
            title=p["title"][:200],
        )
        now = self.clock.now_us()
        sid = uuid.UUID(p["stream_id"])
        frame = Frame(FrameType.PLAY, sid, 1, p["at_us"], now, dump(play), Codec.OPUS, priority)
        await self.send([topic], frame)
        self.repushes += 1

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
            if report.state == "missing":  # the cache lost it: send it again in time
                self._missing.add((device, report.broadcast))
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
