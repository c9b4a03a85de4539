"""Group commit: the writer's commits reach the disk from a thread, not the event loop.

With ``synchronous=FULL`` every commit waits for an fsync of the WAL, on the event loop.
On an idle SSD that is a fraction of a millisecond; while a 55-minute upload is being
written out it was measured at ~9 ms per commit (a login, an audit row, a presence
batch), and the loop stood still for each of them.

So, once :meth:`WalSyncer.start` runs, the writer connection commits with
``synchronous=NORMAL`` (into the WAL, through the OS page cache: a crash of the process
loses nothing) and does not checkpoint itself (``wal_autocheckpoint=0``). This thread
fsyncs the WAL every ``interval_s`` (so a power cut loses at most that much of the
latest commits, never corrupts the file) and checkpoints the WAL into the database on
its own connection (``PASSIVE``: it never waits for, nor blocks, the writer or readers;
SQLite fsyncs the WAL before and the database after each checkpoint).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

#: How often the WAL is made durable: the most a power cut can take of the latest commits.
SYNC_INTERVAL_S = 0.05
#: How often, at most, the WAL is copied into the database (when it has new frames).
CHECKPOINT_INTERVAL_S = 1.0


class WalSyncer:
    """fsyncs a database's WAL and checkpoints it, in a thread of its own."""

    def __init__(
        self,
        path: Path,
        *,
        interval_s: float = SYNC_INTERVAL_S,
        checkpoint_s: float = CHECKPOINT_INTERVAL_S,
        busy_timeout_ms: int = 5000,
    ) -> None:
        self.path = path
        self.wal = path.with_name(path.name + "-wal")
        self.interval_s = interval_s
        self.checkpoint_s = checkpoint_s
        self.busy_timeout_ms = busy_timeout_ms
        #: Durable syncs done (the WAL had changed since the last one), checkpoints run,
        #: and the last failure (logged, retried at the next interval).
        self.syncs = 0
        self.checkpoints = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._seen: tuple[int, int, int] | None = None
        self._checkpointed_at = 0.0
        self._lock = threading.Lock()  # one sync at a time (the thread, or a caller's flush)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="loa-store-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after a last sync; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.sync()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sync()

    def sync(self) -> bool:
        """Make every commit so far durable; True if there was anything to sync. Never
        raises: a failure is logged and counted, and the next interval tries again."""
        with self._lock:
            try:
                return self._sync()
            except (OSError, sqlite3.Error) as exc:
                self.errors += 1
                logger.warning("could not sync the store's WAL (%s); retrying", exc)
                return False

    def _sync(self) -> bool:
        try:
            st = os.stat(self.wal)
        except FileNotFoundError:  # nothing written since the last checkpoint-on-close
            return False
        # Stat before the fsync: a commit after this stat changes the key and is synced
        # next time; one before it is covered by this fsync.
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key == self._seen:
            return False
        fd = os.open(self.wal, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._seen = key
        self.syncs += 1
        now = time.monotonic()
        if now - self._checkpointed_at >= self.checkpoint_s:
            self._checkpointed_at = now
            self._checkpoint()
        return True

    def _checkpoint(self) -> None:
        if self._conn is None:
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
