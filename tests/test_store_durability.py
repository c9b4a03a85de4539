"""Group commit: the controller's commits reach the disk from the syncer thread.

Real SQLite files and real processes: what a crash of the controller keeps, what the
checkpoint copies into the database file, and what the writer's connection is set to.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from broadcaster.places import demo_data
from broadcaster.store.durability import WalSyncer
from broadcaster.store.store import Store

COMMUNE = demo_data.COMMUNE[0]


def wait_for(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_with_the_syncer_the_writer_neither_fsyncs_nor_checkpoints_itself(tmp_path: Path):
    store = Store(tmp_path / "loa.db")
    try:
        store.start_syncer()
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert store.start_syncer() is store.start_syncer()  # one thread, however asked
    finally:
        store.close()


def test_commits_are_synced_and_checkpointed_into_the_database_file(tmp_path: Path):
    path = tmp_path / "loa.db"
    store = Store(path)
    try:
        syncer = store.start_syncer()
        demo_data.seed(store)
        store.upsert_hamlet(COMMUNE, "ap-moi", "Ấp Mới")
        wait_for(lambda: syncer.syncs >= 1 and syncer.checkpoints >= 1)
        # The database file alone (no WAL beside it) already has the rows: the
        # checkpoint copied them in while the writer stayed open.
        time.sleep(syncer.checkpoint_s + 3 * syncer.interval_s)
        store.upsert_hamlet(COMMUNE, "ap-sau", "Ấp Sau")  # a change wakes the next round
        wait_for(lambda: syncer.checkpoints >= 2)
        copy = tmp_path / "alone.db"
        shutil.copyfile(path, copy)
        conn = sqlite3.connect(copy)
        try:
            names = {r[0] for r in conn.execute("SELECT name FROM hamlets")}
        finally:
            conn.close()
        assert "Ấp Mới" in names
    finally:
        store.close()
    assert not (tmp_path / "loa.db-wal").exists()  # the writer closed last and checkpointed


def test_nothing_to_sync_does_no_fsync(tmp_path: Path):
    store = Store(tmp_path / "loa.db")
    syncer = WalSyncer(store.path)
    try:
        store.upsert_province("p", "Tỉnh")
        assert syncer.sync() is True
        assert syncer.sync() is False  # the WAL has not changed since
        store.upsert_province("p", "Tỉnh Mới")
        assert syncer.sync() is True
    finally:
        syncer.stop()
        store.close()


def test_a_failing_fsync_is_counted_and_retried_never_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    store = Store(tmp_path / "loa.db")
    syncer = WalSyncer(store.path)
    try:
        store.upsert_province("p", "Tỉnh")

        def broken(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fsync", broken)
        assert syncer.sync() is False
        assert syncer.errors == 1
        monkeypatch.undo()
        assert syncer.sync() is True  # the same change, synced at the next try
    finally:
        syncer.stop()
        store.close()


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from broadcaster.store.store import Store
    store = Store(Path(sys.argv[1]))
    store.start_syncer()
    store.upsert_province("an-giang", "An Giang")
    store.upsert_commune("xa-1", "an-giang", "Xã Mỹ Hòa Hưng", "Asia/Ho_Chi_Minh")
    print("committed", flush=True)
    time.sleep(60)
    """
)


def test_a_killed_controller_keeps_every_commit(tmp_path: Path):
    """A commit that returned is kept when the process dies at once (SIGKILL, no close,
    no last sync): it is in the WAL through the OS, whatever the syncer had done."""
    path = tmp_path / "loa.db"
    Store(path).close()  # migrated
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "committed"
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    store = Store(path)
    try:
        assert store.require_commune("xa-1")["name"] == "Xã Mỹ Hòa Hưng"
    finally:
        store.close()
