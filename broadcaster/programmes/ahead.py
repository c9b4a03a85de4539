"""Prefetch planning: which firings are pushed to their speakers ahead, and which
pushed ones are called off (the firing was dropped, skipped, missed or failed).

The pushing itself (items, signed PLAYs, the speakers' answers) is the
:class:`~broadcaster.broadcasts.prefetch.Prefetcher`'s; this decides what and when.
"""

from __future__ import annotations

import logging

from devices.frames import Priority
from loa.clock import Clock
from loa.errors import BrokerError, LoaError
from schedules.occurrences import Key

from ..broadcasts.prefetch import Prefetcher
from ..places.directory import resolve_in
from ..settings import SchedulerSettings
from ..store.store import Store
from .rows import targets_of

logger = logging.getLogger(__name__)

#: A firing this close is streamed at its time rather than pushed ahead.
PREFETCH_MIN_AHEAD_US = 3_000_000


class AheadPlanner:
    def __init__(
        self,
        store: Store,
        prefetcher: Prefetcher | None,
        clock: Clock,
        settings: SchedulerSettings,
    ) -> None:
        self.store = store
        self.prefetcher = prefetcher
        self.clock = clock
        self.settings = settings
        self._cancels: list[tuple[Key, Priority]] = []

    def call_off(self, key: Key, priority: Priority) -> None:
        """A firing will not play: speakers that armed it must not play it on their own
        (told at the next :meth:`push_ahead`)."""
        if self.prefetcher is not None:
            self._cancels.append((key, priority))

    def call_off_future(self, programme_id: str, now: int) -> None:
        """Every future firing of a programme pushed ahead is called off."""
        for r in self.store.query(
            "SELECT f.fire_us, p.priority FROM prefetches f JOIN programmes p"
            " ON p.id = f.programme_id WHERE f.programme_id=? AND f.fire_us>?"
            " AND f.cancelled_us IS NULL",
            [programme_id, now],
        ):
            self.call_off((programme_id, r["fire_us"]), Priority[r["priority"].upper()])

    async def push_ahead(self) -> int:
        """Call off dropped firings, then push the next ``prefetch_s`` of audio ahead."""
        if self.prefetcher is None:
            return 0
        pushed = 0
        try:
            while self._cancels:
                key, priority = self._cancels[0]
                await self.prefetcher.cancel(key, priority)
                self._cancels.pop(0)
            await self.prefetcher.repair()  # speakers back from a restart, or missing items
            if not self.settings.prefetch_s:
                return 0
            now = self.clock.now_us()
            for o in self.store.query(
                "SELECT o.programme_id, o.fire_us, p.media_id, p.priority, p.targets, p.title,"
                " p.volume FROM occurrences o JOIN programmes p ON p.id = o.programme_id"
                " LEFT JOIN prefetches f ON f.programme_id = o.programme_id"
                " AND f.fire_us = o.fire_us WHERE o.status='scheduled' AND p.status='approved'"
                " AND p.what != 'relay' AND p.media_id IS NOT NULL AND f.programme_id IS NULL"
                " AND o.fire_us > ? AND o.fire_us <= ? ORDER BY o.fire_us",
                [now + PREFETCH_MIN_AHEAD_US, now + int(self.settings.prefetch_s * 1e6)],
            ):
                try:
                    await self.prefetcher.push(
                        (o["programme_id"], o["fire_us"]),
                        self.store.media(o["media_id"]),
                        resolve_in(self.store, targets_of(o)),
                        Priority[o["priority"].upper()],
                        o["title"],
                        o["volume"],
                    )
                    pushed += 1
                except BrokerError as exc:  # try again at the next tick
                    logger.warning("prefetch postponed: %s", exc.message)
                    break
                except LoaError as exc:  # it streams (or fails with the reason) at its time
                    logger.warning("prefetch of %s failed: %s", o["programme_id"], exc.message)
        except BrokerError as exc:
            logger.warning("prefetch cancel postponed: %s", exc.message)
        return pushed
