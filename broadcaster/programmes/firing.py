"""A due firing becomes a broadcast: the schedule engine's "start this broadcast".

Stored audio goes to the dispatcher (from the speakers' cache when it was pushed
ahead), a relay to the relay starter; either records the occurrence as started in the
transaction that records the broadcast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from devices.frames import Priority
from loa.errors import LoaError
from schedules.occurrences import Due, Start

from ..broadcasts.dispatcher import BroadcastRequest
from ..broadcasts.prefetch import Prefetcher
from ..places.directory import resolve_in
from ..places.targeting import Resolution
from ..store.store import Store
from .rows import targets_of


class Player(Protocol):
    def start(self, req: BroadcastRequest) -> str: ...


class RelayStarter(Protocol):
    """(title, url, duration_s, resolution) → broadcast id: starts a relay ("tiếp sóng");
    ``also`` runs in the transaction that records it."""

    def __call__(
        self,
        title: str,
        url: str,
        seconds: float,
        where: Resolution,
        also: Callable[[str], object] | None = None,
    ) -> str: ...


class Launcher:
    """:class:`schedules.occurrences.StartBroadcast` for Loa's programmes."""

    def __init__(
        self,
        store: Store,
        player: Player,
        *,
        relay: RelayStarter | None = None,
        prefetcher: Prefetcher | None = None,
    ) -> None:
        self.store = store
        self.player = player
        self.relay = relay
        self.prefetcher = prefetcher

    def __call__(self, due: Due, start: Start) -> str:
        o = due.programme
        resolution = resolve_in(self.store, targets_of(o))
        if o["what"] == "relay":
            if self.relay is None:
                raise LoaError("relaying is not available in this controller")
            return self.relay(
                o["title"], o["relay_url"], o["relay_duration_s"], resolution, also=start.mark
            )
        cached = None if self.prefetcher is None else self.prefetcher.prefetched(due.key)
        media = self.store.media(o["media_id"])
        return self.player.start(
            BroadcastRequest(
                media,
                resolution,
                Priority[o["priority"].upper()],
                o["title"],
                volume=o["volume"],
                cached=cached,
                requested_us=None if start.from_cache else due.fire_us,
                also=start.mark,
                record_only=start.record_only,
            )
        )
