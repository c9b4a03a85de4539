"""A speaker's bounded cache of prefetched items, and the downloads that fill it.

An item arrives as an ITEM offer and then ITEM_DATA slices in order (MQTT keeps order
on one topic); it is kept only if its SHA-256 matches the signed offer. Least recently
used items are evicted to stay within the byte and item limits; an item a PLAY armed
is pinned until it has played.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

from devices.items import unpack_item
from devices.messages import CacheReport, ItemOffer
from loa.errors import ProtocolError


@dataclass
class CachedItem:
    offer: ItemOffer
    payloads: list[bytes]

    @property
    def size(self) -> int:
        return self.offer.size


@dataclass
class Download:
    offer: ItemOffer
    data: bytearray = field(default_factory=bytearray)
    next_slice: int = 1


class ItemCache:
    def __init__(self, max_bytes: int, max_items: int, *, corrupt: bool = False) -> None:
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.corrupt = corrupt  # fault injection: every download arrives damaged
        self.items: OrderedDict[str, CachedItem] = OrderedDict()
        self.downloads: dict[str, Download] = {}
        self.pinned: dict[str, int] = {}
        self.evicted = 0

    @property
    def used_bytes(self) -> int:
        return sum(i.size for i in self.items.values())

    def offer(self, offer: ItemOffer) -> CacheReport | None:
        """Start a download, unless the item is already here (then say so again)."""
        have = self.items.get(offer.item)
        if have is not None and have.offer.sha256 == offer.sha256:
            self.items.move_to_end(offer.item)
            return CacheReport(item=offer.item, state="stored", detail="already cached")
        if offer.size > self.max_bytes:
            return CacheReport(
                item=offer.item,
                state="refused",
                detail=f"item of {offer.size} bytes is larger than the cache",
            )
        self.downloads[offer.item] = Download(offer)
        return None

    def slice(self, item: str, seq: int, data: bytes) -> CacheReport | None:
        """Take one slice; a report when the download completes or breaks."""
        d = self.downloads.get(item)
        if d is None or seq < d.next_slice:
            return None  # no offer seen (joined late) or a duplicate
        if seq > d.next_slice:
            del self.downloads[item]
            return CacheReport(item=item, state="refused", detail=f"slice {d.next_slice} lost")
        d.data += data
        d.next_slice += 1
        if len(d.data) > d.offer.size:
            del self.downloads[item]
            return CacheReport(item=item, state="refused", detail="more bytes than offered")
        if d.next_slice <= d.offer.slices:
            return None
        del self.downloads[item]
        return self._complete(d)

    def _complete(self, d: Download) -> CacheReport:
        data = bytes(d.data)
        if self.corrupt and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        if len(data) != d.offer.size:
            return CacheReport(item=d.offer.item, state="refused", detail="size does not match")
        if hashlib.sha256(data).hexdigest() != d.offer.sha256:
            return CacheReport(
                item=d.offer.item, state="refused", detail="SHA-256 does not match the offer"
            )
        try:
            payloads = unpack_item(data)
        except ProtocolError as exc:
            return CacheReport(item=d.offer.item, state="refused", detail=exc.message[:200])
        if len(payloads) != d.offer.chunks:
            return CacheReport(
                item=d.offer.item, state="refused", detail="chunk count does not match"
            )
        self.items[d.offer.item] = CachedItem(d.offer, payloads)
        self._evict()
        if d.offer.item not in self.items:
            return CacheReport(item=d.offer.item, state="refused", detail="cache full (pinned)")
        return CacheReport(item=d.offer.item, state="stored")

    def get(self, item: str, sha256: str) -> CachedItem | None:
        got = self.items.get(item)
        if got is None or got.offer.sha256 != sha256:
            return None
        self.items.move_to_end(item)
        return got

    def pin(self, item: str) -> None:
        self.pinned[item] = self.pinned.get(item, 0) + 1

    def unpin(self, item: str) -> None:
        n = self.pinned.get(item, 0) - 1
        if n > 0:
            self.pinned[item] = n
        else:
            self.pinned.pop(item, None)
        self._evict()

    def _evict(self) -> None:
        """Drop least recently used unpinned items until within both limits."""
        for key in list(self.items):
            if len(self.items) <= self.max_items and self.used_bytes <= self.max_bytes:
                return
            if key not in self.pinned:
                del self.items[key]
                self.evicted += 1
