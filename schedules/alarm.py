"""The wake-up timer: APScheduler 3 as an alarm clock, never the record.

One date job at the next firing; it only wakes the engine's loop (the rows decide what
plays). The loop also wakes every ``tick_s`` and whenever :meth:`Alarm.ring` is called.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType

import anyio
from apscheduler.schedulers.asyncio import AsyncIOScheduler

JOB_ID = "next-firing"


class Alarm:
    """Entered inside the event loop (APScheduler's AsyncIOScheduler binds to it).

    ``machine_now`` is the machine's time, on which APScheduler runs; the controller's
    clock may be offset from it, so a job is placed by the time left, not by the
    firing's instant.
    """

    def __init__(self, machine_now: Callable[[], datetime], *, misfire_grace_s: float) -> None:
        self._machine_now = machine_now
        self._misfire_grace_s = max(1, int(misfire_grace_s))
        self._scheduler: AsyncIOScheduler | None = None
        self._event = anyio.Event()

    def __enter__(self) -> Alarm:
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.start()
        self._scheduler = scheduler
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    def ring(self) -> None:
        """Wake the loop now."""
        self._event.set()

    async def sleep(self, left_s: float | None, tick_s: float) -> None:
        """Sleep until the job placed ``left_s`` from now rings, :meth:`ring` is called,
        or ``tick_s`` passes (``left_s`` None: no firing ahead, only the tick)."""
        # A fresh event first, then the job: the job sets whichever event the loop
        # waits on now (binding the old one made firings wait for the tick).
        self._event = anyio.Event()
        timeout = float(tick_s)
        if left_s is not None:
            if self._scheduler is not None:
                self._scheduler.add_job(
                    self._ring,
                    trigger="date",
                    run_date=self._machine_now() + timedelta(seconds=left_s),
                    id=JOB_ID,
                    replace_existing=True,
                    misfire_grace_time=self._misfire_grace_s,
                    coalesce=True,
                )
            timeout = float(min(tick_s, left_s + 0.001))
        with anyio.move_on_after(timeout):
            await self._event.wait()

    async def _ring(self) -> None:
        """APScheduler's job: a coroutine, so it runs on the loop (a plain function would
        run in a worker thread, where setting an anyio event is not safe)."""
        self._event.set()
