"""CPU-heavy pure work (drawing a report's charts) in a process of its own.

A worker *thread* keeps the event loop off the work but not off the GIL: matplotlib
holds it for milliseconds at a time and leaves tens of thousands of objects in cycles
for the collector, whose full passes stop every thread. A child process does neither.
The pool is started at the first use (one process: these machines have two cores) and
stopped with the controller. (The spawn start method also starts Python's
``multiprocessing`` resource tracker, a helper process that exits with the controller.)
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.process import BaseProcess
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
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=ctx, initializer=_child_ignores_ctrl_c
            )
        return self._pool

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        for attempt in (1, 2):
            pool = self._get()
            try:
                future = pool.submit(fn, *args)
            except BrokenProcessPool:  # the child died while idle: one fresh start
                self._drop(pool)
                if attempt == 2:
                    break
                continue
            try:
                return await asyncio.wrap_future(future)
            except BrokenProcessPool:  # the child died working (killed, out of memory)
                logger.error("the worker process died; a new one starts with the next work")
                self._drop(pool)
                break
        raise LoaError("the worker process stopped unexpectedly; try again")

    def _drop(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool:  # not a newer pool another caller started meanwhile
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the child process: work under way gets ``timeout_s`` to finish, then the
        child is terminated (killed if it must be); idempotent."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is None:
            return
        children: list[BaseProcess] = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout_s
        for child in children:
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                logger.warning("the worker process did not stop; terminating it")
                child.terminate()
                child.join(1.0)
                if child.is_alive():
                    child.kill()
                    child.join(1.0)


def _child_ignores_ctrl_c() -> None:
    """Ctrl-C in a terminal reaches the whole process group; the controller stops its
    child itself (a KeyboardInterrupt there would print a traceback and break the pool)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
