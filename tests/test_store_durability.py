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
from types import SimpleNamespace

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
        syncer = store.start_syncer(checkpoint_s=0)  # a checkpoint after every sync
        demo_data.seed(store)
        store.upsert_hamlet(COMMUNE, "ap-moi", "Ấp Mới")

        def in_the_file_alone() -> set[str]:
            """The database file without the WAL beside it: what checkpoints copied in
            while the writer stayed open."""
            copy = tmp_path / "alone.db"
            shutil.copyfile(path, copy)
            conn = sqlite3.connect(copy)
            try:
                return {r[0] for r in conn.execute("SELECT name FROM hamlets")}
            except sqlite3.DatabaseError:  # copied in the middle of a checkpoint: again
                return set()
            finally:
                conn.close()

        wait_for(lambda: syncer.syncs >= 1 and syncer.checkpoints >= 1)
        wait_for(lambda: "Ấp Mới" in in_the_file_alone())
        assert syncer.durable and syncer.alive and (syncer.age_s() or 0) < 5
    finally:
        store.close()
    assert not (tmp_path / "loa.db-wal").exists()  # the writer closed last and checkpointed


def test_every_commit_is_synced_even_when_the_wal_file_looks_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """After a checkpoint the WAL restarts from its first frame without shrinking, so
    its size (and, on coarse-timestamp file systems, its mtime) can look the same after
    the next commit: the syncer asks SQLite (data_version) instead of the file."""
    real_stat = os.stat

    def coarse(path: object, *a: object, **k: object) -> object:  # a 1 s timestamp tick
        st = real_stat(path, *a, **k)  # type: ignore[arg-type]
        return SimpleNamespace(
            st_ino=st.st_ino,
            st_size=st.st_size,
            st_mode=st.st_mode,
            st_mtime_ns=st.st_mtime_ns // 10**9 * 10**9,
        )

    monkeypatch.setattr(os, "stat", coarse)
    store = Store(tmp_path / "loa.db")
    syncer = WalSyncer(store.path, checkpoint_s=0)
    try:
        store.db.execute("PRAGMA wal_autocheckpoint=0")
        store.upsert_province("p", "Tỉnh A")
        assert syncer.sync() is True  # synced, then checkpointed: the WAL will restart
        size = syncer.wal.stat().st_size
        store.upsert_province("p", "Tỉnh B")  # the same size of change, from frame 1
        assert syncer.wal.stat().st_size == size
        assert syncer.sync() is True
        assert syncer.sync() is False  # and nothing more until the next commit
        assert syncer.syncs == 2
    finally:
        syncer.stop()
        store.close()


def test_nothing_to_sync_does_no_fsync(tmp_path: Path):
    store = Store(tmp_path / "loa.db")
    syncer = WalSyncer(store.path)
    try:
        store.upsert_province("p", "Tỉnh")
        assert syncer.sync() is True
        assert syncer.sync() is False  # no commit since
        store.upsert_province("p", "Tỉnh Mới")
        assert syncer.sync() is True
    finally:
        syncer.stop()
        store.close()


def test_a_failed_fsync_makes_the_store_say_it_is_not_durable_from_then_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """Linux may drop the pages an fsync could not write, so a later fsync that works
    proves nothing about them: the syncer stays unhealthy, and logs it once a minute."""
    store = Store(tmp_path / "loa.db")
    syncer = WalSyncer(store.path)
    try:
        store.upsert_province("p", "Tỉnh")

        def broken(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fsync", broken)
        assert syncer.sync() is False
        assert syncer.sync() is False
        assert syncer.errors == 2 and "Input/output error" in syncer.last_error
        assert len([r for r in caplog.records if "durable" in r.getMessage()]) == 1
        monkeypatch.undo()
        assert syncer.sync() is True
        assert syncer.durable is False  # sticky
    finally:
        syncer.stop()
        store.close()


def test_the_sync_thread_outlives_an_unexpected_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    store = Store(tmp_path / "loa.db")
    try:
        syncer = store.start_syncer()
        real = syncer._connection
        calls = {"n": 0}

        def flaky() -> sqlite3.Connection:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("a bug")
            return real()

        monkeypatch.setattr(syncer, "_connection", flaky)
        store.upsert_province("p", "Tỉnh")
        wait_for(lambda: syncer.syncs >= 1)
        assert syncer.errors == 1 and syncer.alive and syncer.durable
    finally:
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
