"""A speaker's prefetch: items downloaded ahead of time, and plays armed to start on the clock.

ITEM / ITEM_DATA frames fill the :class:`~firmware_sim.cache.ItemCache`; a PLAY arms a
cached item (or calls it off), and shortly before its time the armed play is handed to
the :class:`~firmware_sim.player.Player` as if its stream had arrived — same
pre-emption rules, same report — without the network.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import anyio

from devices.frames import Frame, FrameType, Priority, unpack_packets
from devices.messages import CacheReport, ItemOffer, PlayItem, StreamStart, dump
from devices.topics import DeviceTopic

from .cache import CachedItem, ItemCache
from .device import Device, Publish
from .player import Player
from .playout import Arrival, Chunk, accept_audio

#: An armed play enters the player this long before it sounds.
ARM_LEAD_US = 1_000_000


@dataclass
class Armed:
    """A PLAY this speaker accepted: the item plays at ``play.at_us`` without the network."""

    play: PlayItem
    priority: Priority
    item: CachedItem


class Prefetch:
    def __init__(self, dev: Device, cache: ItemCache, player: Player, publish: Publish) -> None:
        self.dev = dev
        self.cache = cache
        self.player = player
        self._publish = publish
        self.armed: dict[uuid.UUID, Armed] = {}
        self._armed_changed = anyio.Event()

    async def on_frame(self, frame: Frame, topic: str) -> None:
        """ITEM / ITEM_DATA fill the cache; PLAY arms (or calls off) a cached play."""
        report: CacheReport | None = None
        if frame.type is FrameType.ITEM:
            offer = self.dev.parse(ItemOffer, frame, topic)
            if offer is None:
                return
            if offer.item != str(frame.stream_id):
                self.dev.refuse("item offer under another stream id", topic)
                return
            report = self.cache.offer(offer)
        elif frame.type is FrameType.ITEM_DATA:
            report = self.cache.slice(str(frame.stream_id), frame.seq, frame.payload)
        else:
            play = self.dev.parse(PlayItem, frame, topic)
            if play is None:
                return
            report = self._on_play(frame, play, topic)
        if report is not None:
            if report.state == "refused":
                self.dev.event("cache_refused", detail=report.detail)
            await self._send(report)

    def _on_play(self, frame: Frame, play: PlayItem, topic: str) -> CacheReport | None:
        sid = frame.stream_id
        if play.action == "cancel":
            armed = self.armed.pop(sid, None)
            if armed is not None:
                self.cache.unpin(play.item)
            # Already sounding: stop it.
            if not self.player.cancel(sid) and armed is None:
                return None
            return CacheReport(item=play.item, state="cancelled", broadcast=play.broadcast)
        again = self.armed.get(sid)
        if again is not None and again.play == play:  # offered again (we came back): fine
            return CacheReport(item=play.item, state="armed", broadcast=play.broadcast)
        if sid in self.armed or self.player.known(sid):
            self.dev.refuse("PLAY replayed", topic)
            return None
        item = self.cache.get(play.item, play.sha256)
        if item is None:
            return CacheReport(
                item=play.item,
                state="missing",
                broadcast=play.broadcast,
                detail="item not in cache; send the stream",
            )
        self.cache.pin(play.item)
        self.armed[sid] = Armed(play, frame.priority, item)
        self._armed_changed.set()
        return CacheReport(item=play.item, state="armed", broadcast=play.broadcast)

    async def _send(self, report: CacheReport) -> None:
        if self.dev.link_cut:
            return  # lost on the air, like everything else while the link is down
        await self._publish(DeviceTopic.CACHE, dump(report))

    async def run(self) -> None:
        """Hand each armed play to the player shortly before it sounds (no network)."""
        while True:
            self._armed_changed = anyio.Event()
            now = self.dev.controller_now()
            for sid, armed in sorted(self.armed.items(), key=lambda kv: kv[1].play.at_us):
                if armed.play.at_us - ARM_LEAD_US <= now:
                    del self.armed[sid]
                    self._inject(sid, armed)
            nxt = min((a.play.at_us for a in self.armed.values()), default=None)
            wait = 3600.0 if nxt is None else max(0.0, (nxt - ARM_LEAD_US - now) / 1e6)
            with anyio.move_on_after(min(wait, 1.0)):
                await self._armed_changed.wait()

    def _inject(self, sid: uuid.UUID, armed: Armed) -> None:
        """Play a cached item as if its stream had arrived: the same rules and report."""
        dev, play, offer = self.dev, armed.play, armed.item.offer
        st = self.player.admit(sid, armed.priority, play.at_us)
        st.source = "cache"
        st.item = play.item
        st.header = StreamStart(
            broadcast=play.broadcast,
            codec="opus",
            sample_rate=offer.sample_rate,
            channels=offer.channels,
            frame_ms=offer.frame_ms,
            pre_skip=offer.pre_skip,
            chunk_ms=max(20, offer.frame_ms),
            chunks=offer.chunks,
            duration_ms=offer.duration_ms,
            title=play.title,
            volume=play.volume,
        )
        now = dev.controller_now()
        pts = play.at_us
        for seq, payload in enumerate(armed.item.payloads, start=1):
            frames = len(unpack_packets(payload))
            chunk = Chunk(seq, pts, frames * offer.frame_ms * 1000)
            if self.player.recorder is not None:
                chunk.payload = payload
            if accept_audio(st, chunk, now, dev.opt.late_tolerance_ms * 1000) == Arrival.LATE:
                dev.counters["late"] += 1
            pts += chunk.duration_us
        st.expected, st.ended, st.end_pts_us = offer.chunks, True, pts
        dev.event("armed_play", stream=str(sid), at_us=play.at_us)
        self.player.wake()
