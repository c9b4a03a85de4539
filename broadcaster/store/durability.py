"""Group commit: the writer's commits reach the disk from a thread, not the event loop.

With ``synchronous=FULL`` every commit waits for an fsync of the WAL, on the event loop.
On an idle SSD that is a fraction of a millisecond; while a 55-minute upload is being
written out it was measured at ~9 ms per commit (a login, an audit row, a presence
batch), and the loop stood still for each of them.

So, once :meth:`WalSyncer.start` runs, the writer connection commits with
``synchronous=NORMAL`` (into the WAL, through the OS page cache: a crash of the process
loses nothing) and does not checkpoint itself (``wal_autocheckpoint=0``). This thread
fsyncs the WAL every ``interval_s`` when a commit happened since the last fsync (``PRAGMA
data_version`` on its own connection says so, whatever the file's timestamps), so a
power cut loses at most that much of the latest commits — plus the length of a
checkpoint, when one is running — and never corrupts the file. Every ``checkpoint_s``
it copies the WAL into the database on its own connection (``PASSIVE``: it never waits
for, nor blocks, the writer or the readers; SQLite fsyncs the WAL before and the
database after). The first commit after a checkpoint restarts the WAL and SQLite fsyncs
its header then, on the writer: so checkpoints are rare (every 30 s), not every second.

A failed fsync is not retried into success: Linux may drop the dirty pages it could
not write, so the syncer reports itself unhealthy from then on (``/api/health``,
``/metrics``) and says so in the log, once a minute at most.
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
#: How often the WAL is copied into the database (when it has new frames).
CHECKPOINT_INTERVAL_S = 30.0
#: A failure is logged at most this often (the syncer tries again every interval).
WARN_EVERY_S = 60.0


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
        #: fsyncs done (a commit had happened since the last), checkpoints run, failures.
        self.syncs = 0
        self.checkpoints = 0
        self.errors = 0
        #: Monotonic time of the last fsync that left nothing unsynced (None: never).
        self.synced_at: float | None = None
        #: False once an fsync failed: commits since may not be on the disk.
        self.durable = True
        self.last_error = ""
        self._warned_at = -WARN_EVERY_S
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._seen: int | None = None  # data_version at the last fsync
        self._checkpointed_at = time.monotonic()
        self._lock = threading.Lock()  # one sync at a time (the thread, or stop())

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

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def healthy(self) -> bool:
        """Running, and every fsync so far succeeded."""
        return self.durable and self.alive

    def age_s(self) -> float | None:
        """Seconds since everything committed was last known on the disk."""
        return None if self.synced_at is None else time.monotonic() - self.synced_at

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sync()

    def sync(self) -> bool:
        """Make every commit so far durable; True if there was anything to sync. Never
        raises: a failure is counted, logged (at most once a minute) and tried again
        at the next interval."""
        with self._lock:
            try:
                return self._sync()
            except Exception as exc:  # the thread must outlive any failure
                self.errors += 1
                self.last_error = str(exc) or type(exc).__name__
                if isinstance(exc, OSError):
                    self.durable = False  # the kernel may have dropped what it could not write
                now = time.monotonic()
                if now - self._warned_at >= WARN_EVERY_S:
                    self._warned_at = now
                    logger.error(
                        "the store could not make its commits durable (%s); %d failures so "
                        "far, retrying every %.0f ms",
                        self.last_error,
                        self.errors,
                        self.interval_s * 1000,
                    )
                return False

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            self._conn.execute("PRAGMA synchronous=FULL")
        return self._conn

    def _sync(self) -> bool:
        conn = self._connection()
        # Read the version before the fsync: a commit after this read changes it and is
        # synced next time; one before it is covered by this fsync.
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if version == self._seen:
            self.synced_at = time.monotonic()
            return False
        try:
            fd = os.open(self.wal, os.O_RDONLY)
        except FileNotFoundError:  # no WAL (yet, or after the last close): nothing to sync
            return False
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._seen = version
        self.syncs += 1
        self.synced_at = time.monotonic()
        if self.synced_at - self._checkpointed_at >= self.checkpoint_s:
            self._checkpointed_at = self.synced_at
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.checkpoints += 1
        return True
