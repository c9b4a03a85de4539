"""CPU-heavy pure work (drawing a report's charts) in a process of its own.

A worker *thread* keeps the event loop off the work but not off the GIL: matplotlib
holds it for milliseconds at a time and leaves tens of thousands of objects in cycles
for the collector, whose full passes stop every thread. A child process does neither.
The pool is started at the first use (one process: these machines have two cores) and
stopped with the controller.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from loa.errors import LoaError

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Offload:
    """Runs picklable ``fn(*args)`` in a child process; :meth:`close` stops it."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    def _get(self) -> ProcessPoolExecutor:
        if self._closed:
            raise LoaError("the controller is stopping")
        if self._pool is None:
            # spawn, not fork: forking a process with threads (the loop's workers,
            # the store's syncer) can copy a lock held by one of them.
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self._pool

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        pool = self._get()
        try:
            return await asyncio.wrap_future(pool.submit(fn, *args))
        except BrokenProcessPool:  # the child died (killed, out of memory): start afresh
            logger.error("the worker process died; starting a new one")
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise LoaError("the worker process stopped unexpectedly; try again") from None

    def close(self) -> None:
        """Stop the child process (work under way is abandoned); idempotent."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
