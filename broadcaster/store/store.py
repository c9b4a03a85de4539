"""The store: one SQLite file (WAL) through sqlite-utils, the system's truth.

One writer: the store is used from the event-loop thread only. Multi-row changes are
atomic (``with self.db.atomic():``; the connection is in autocommit mode, so a plain
``with conn:`` would not open a transaction). Heavy reads run in worker threads on
read-only connections (:meth:`Store.read`). In the controller, commits reach the disk
from a thread of their own (:meth:`Store.start_syncer`, ``durability.py``), so a commit
on the loop never waits for an fsync. ``close()`` is idempotent.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from sqlite_utils import Database

from devices.messages import Telemetry
from devices.reserved import check_device_id
from loa.errors import ConfigError, NotFound

from .durability import CHECKPOINT_INTERVAL_S, WalSyncer
from .migrations import migrations
from .rows import MEDIA_COLUMNS, DeviceRow, MediaRow, media_out

T = TypeVar("T")
#: The WAL file is truncated back to this size when it restarts (it never shrinks else).
WAL_LIMIT_BYTES = 64 * 1024 * 1024


def _private(path: Path, *, create: bool = True) -> None:
    """Only the owner may read the database (accounts, hashes, audit): mode 0600."""
    if create:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, 0o600)


class Store:
    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000, read_only: bool = False) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._closed = False
        self._syncer: WalSyncer | None = None
        self._readers: queue.SimpleQueue[Store] = queue.SimpleQueue()
        if read_only:  # a reader for worker threads: WAL lets it read while the writer writes
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,  # pooled: used by one worker thread at a time
            )
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            conn.execute("PRAGMA query_only=ON")
            self.db = Database(conn)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        _private(path)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ConfigError(f"{path} is not a Loa database ({exc}): move it away") from None
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys=ON")
        self.db = Database(conn)
        migrations.apply(self.db)
        for extra in ("-wal", "-shm"):  # SQLite gives them the file's mode; older ones too
            _private(path.with_name(path.name + extra), create=False)

    def start_syncer(self, *, checkpoint_s: float = CHECKPOINT_INTERVAL_S) -> WalSyncer:
        """Commit without waiting for the disk, and let a thread make commits durable
        (within ``durability.SYNC_INTERVAL_S``) and checkpoint the WAL. For the
        controller, whose writes happen on its event loop; stopped by :meth:`close`."""
        if self._syncer is None:
            self._syncer = WalSyncer(
                self.path, busy_timeout_ms=self.busy_timeout_ms, checkpoint_s=checkpoint_s
            )
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA wal_autocheckpoint=0")  # the syncer checkpoints
            # A WAL that grew in a burst is cut back when it restarts after a checkpoint.
            self.db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
            self._syncer.start()
        return self._syncer

    @property
    def syncer(self) -> WalSyncer | None:
        return self._syncer

    def close(self) -> None:
        """Stop the syncer (after a last sync), close the readers, then the writer: the
        last connection to close checkpoints the WAL into the file."""
        if not self._closed:
            self._closed = True
            if self._syncer is not None:
                self._syncer.stop()
            while True:
                try:
                    self._readers.get_nowait().close()
                except queue.Empty:
                    break
            self.db.conn.close()

    # --- reading off the event loop ------------------------------------------------------

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(reader, *args)`` in a worker thread, on a read-only connection of its own.

        For heavy reads (monthly reports, the fleet check): they neither run on the event
        loop nor hold the writer's connection, so the loop keeps streaming meanwhile. The
        reader sees the last committed state (WAL snapshot). Connections are pooled.
        """
        return await anyio.to_thread.run_sync(self._with_reader, fn, args)

    def _with_reader(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            reader = self._readers.get_nowait()
        except queue.Empty:
            reader = Store(self.path, busy_timeout_ms=self.busy_timeout_ms, read_only=True)
        try:
            return fn(reader, *args)
        finally:
            if self._closed:
                reader.close()
            else:
                self._readers.put(reader)

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        cur = self.db.execute(sql, list(params))
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    # --- places and devices --------------------------------------------------------

    def upsert_province(self, id: str, name: str) -> None:
        self.db.table("provinces").upsert({"id": id, "name": name}, pk="id")

    def upsert_commune(self, id: str, province_id: str, name: str, timezone: str) -> None:
        self.db.table("communes").upsert(
            {"id": id, "province_id": province_id, "name": name, "timezone": timezone}, pk="id"
        )

    def upsert_hamlet(self, commune_id: str, id: str, name: str, position: int = 0) -> None:
        self.db.table("hamlets").upsert(
            {"commune_id": commune_id, "id": id, "name": name, "position": position},
            pk=("commune_id", "id"),
        )

    def upsert_zone(self, commune_id: str, id: str, name: str, devices: list[str]) -> None:
        with self.db.atomic():
            self.db.table("zones").upsert(
                {"commune_id": commune_id, "id": id, "name": name}, pk=("commune_id", "id")
            )
            self.db.execute(
                "DELETE FROM zone_members WHERE commune_id=? AND zone_id=?", [commune_id, id]
            )
            self.db.table("zone_members").insert_all(
                [{"commune_id": commune_id, "zone_id": id, "device_id": d} for d in devices]
            )

    def upsert_device(self, commune_id: str, id: str, hamlet_id: str, name: str = "") -> None:
        check_device_id(id)  # never the controller's (or the broker's) own name
        self.require_hamlet(commune_id, hamlet_id)
        self.db.table("devices").upsert(
            {"commune_id": commune_id, "id": id, "hamlet_id": hamlet_id, "name": name or id},
            pk=("commune_id", "id"),
        )

    def delete_device(self, commune_id: str, device_id: str, at_us: int) -> None:
        """Take a speaker out of the registry in one transaction: its own state goes
        (zones, caches, telemetry, presence, rollouts, pending reports), its credentials
        are marked revoked and its open alarms cleared; the broadcasts it played stay in
        the history (deliveries), as do the commands sent to it."""
        with self.db.atomic():
            for table in (
                "zone_members",
                "telemetry_last",
                "telemetry",
                "presence_log",
                "device_items",
                "play_arms",
                "rollout_devices",
                "pending_reports",
            ):
                self.db.execute(f"DELETE FROM {table} WHERE device_id=?", [device_id])  # noqa: S608
            self.db.execute(
                "UPDATE device_credentials SET revoked_us=?"
                " WHERE device_id=? AND revoked_us IS NULL",
                [at_us, device_id],
            )
            self.db.execute(
                "UPDATE alarms SET cleared_us=? WHERE device_id=? AND cleared_us IS NULL",
                [at_us, device_id],
            )
            self.db.execute(
                "DELETE FROM devices WHERE commune_id=? AND id=?", [commune_id, device_id]
            )

    def communes(self) -> list[dict[str, Any]]:
        return self.query(
            "SELECT c.id, c.name, c.province_id, c.timezone, p.name AS province_name,"
            " (SELECT count(*) FROM devices d WHERE d.commune_id=c.id) AS devices,"
            " (SELECT count(*) FROM devices d WHERE d.commune_id=c.id AND d.online=1) AS online"
            " FROM communes c JOIN provinces p ON p.id=c.province_id ORDER BY c.name"
        )

    def require_commune(self, commune_id: str) -> dict[str, Any]:
        rows = self.query("SELECT * FROM communes WHERE id=?", [commune_id])
        if not rows:
            raise NotFound(f"commune {commune_id!r} does not exist")
        return rows[0]

    def require_hamlet(self, commune_id: str, hamlet_id: str) -> None:
        if not self.query(
            "SELECT 1 FROM hamlets WHERE commune_id=? AND id=?", [commune_id, hamlet_id]
        ):
            raise NotFound(f"hamlet {hamlet_id!r} does not exist in commune {commune_id!r}")

    def hamlets(self, commune_id: str) -> list[dict[str, Any]]:
        self.require_commune(commune_id)
        return self.query(
            "SELECT h.id, h.name,"
            " (SELECT count(*) FROM devices d WHERE d.commune_id=h.commune_id"
            "   AND d.hamlet_id=h.id) AS devices,"
            " (SELECT count(*) FROM devices d WHERE d.commune_id=h.commune_id"
            "   AND d.hamlet_id=h.id AND d.online=1) AS online"
            " FROM hamlets h WHERE h.commune_id=? ORDER BY h.position, h.id",
            [commune_id],
        )

    def zone_ids(self, commune_id: str) -> set[str]:
        return {
            r["id"] for r in self.query("SELECT id FROM zones WHERE commune_id=?", [commune_id])
        }

    def devices(self, commune_id: str) -> list[DeviceRow]:
        zones: dict[str, list[str]] = {}
        for r in self.query(  # a zone takes single speakers, and hamlets whole
            "SELECT device_id, zone_id FROM zone_members WHERE commune_id=?"
            " UNION SELECT d.id, z.zone_id FROM zone_hamlets z JOIN devices d"
            " ON d.commune_id=z.commune_id AND d.hamlet_id=z.hamlet_id WHERE z.commune_id=?",
            [commune_id, commune_id],
        ):
            zones.setdefault(r["device_id"], []).append(r["zone_id"])
        return [
            DeviceRow(
                r["commune_id"],
                r["id"],
                r["hamlet_id"],
                r["name"],
                bool(r["online"]),
                tuple(sorted(zones.get(r["id"], []))),
                tuple(json.loads(r["codecs"] or "[]")),
            )
            for r in self.query(
                "SELECT * FROM devices WHERE commune_id=? ORDER BY hamlet_id, id", [commune_id]
            )
        ]

    def device_details(self, commune_id: str, device_id: str = "") -> list[dict[str, Any]]:
        """The commune's speakers as the API shows them (only ``device_id``'s if given)."""
        self.require_commune(commune_id)
        rows = self.query(
            "SELECT d.id, d.hamlet_id AS hamlet, d.name, d.online, d.firmware, d.codecs,"
            " d.last_seen_us, d.presence_changed_us, d.lat, d.lon, d.model, d.sim, d.network,"
            " d.installed, d.notes, t.payload AS telemetry"
            " FROM devices d LEFT JOIN telemetry_last t ON t.device_id=d.id"
            " WHERE d.commune_id=? AND (?='' OR d.id=?) ORDER BY d.hamlet_id, d.id",
            [commune_id, device_id, device_id],
        )
        for r in rows:
            r["online"] = bool(r["online"])
            r["codecs"] = json.loads(r["codecs"] or "[]")
            r["telemetry"] = json.loads(r["telemetry"]) if r["telemetry"] else None
        return rows

    def device_commune(self, device_id: str) -> str | None:
        rows = self.query("SELECT commune_id FROM devices WHERE id=?", [device_id])
        return rows[0]["commune_id"] if rows else None

    def device_hamlet(self, device_id: str) -> str:
        rows = self.query("SELECT hamlet_id FROM devices WHERE id=?", [device_id])
        return str(rows[0]["hamlet_id"]) if rows else ""

    def set_presence(
        self,
        commune_id: str,
        device_id: str,
        *,
        online: bool,
        at_us: int,
        firmware: str,
        codecs: list[str],
        reason: str = "",
        session: str | None = None,
    ) -> bool:
        """Record presence (and, when it changes, a presence_log row); False if the device
        is unknown in that commune. An ``offline`` from another connection than the one
        the device is on now (a late will) changes nothing."""
        before = self.query(
            "SELECT online, session FROM devices WHERE commune_id=? AND id=?",
            [commune_id, device_id],
        )
        if not before:
            return False
        if not online and session and before[0]["session"] and session != before[0]["session"]:
            return True
        values: dict[str, Any] = {
            "online": int(online),
            "last_seen_us": at_us,
            "presence_changed_us": at_us,
        }
        if online:
            values.update(firmware=firmware, codecs=json.dumps(codecs), session=session)
        assignments = ", ".join(f"{k}=?" for k in values)
        sql = f"UPDATE devices SET {assignments} WHERE commune_id=? AND id=?"  # noqa: S608
        changed = bool(before[0]["online"]) != online
        if not changed:
            del values["presence_changed_us"]
            assignments = ", ".join(f"{k}=?" for k in values)
            sql = f"UPDATE devices SET {assignments} WHERE commune_id=? AND id=?"  # noqa: S608
        with self.db.atomic():
            cur = self.db.execute(sql, [*values.values(), commune_id, device_id])
            if changed:
                self.db.execute(  # plain SQL: sqlite-utils' insert re-reads the schema
                    "INSERT INTO presence_log (device_id, commune_id, at_us, online, reason)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [device_id, commune_id, at_us, int(online), reason[:200]],
                )
        return cur.rowcount > 0

    def set_telemetry(self, device_id: str, at_us: int, t: Telemetry) -> None:
        """The latest report, and one row of the bounded time series."""
        with self.db.atomic():  # one commit
            # plain SQL: sqlite-utils' insert/upsert re-read the schema on every call, and
            # a reconnect storm brings thousands of these in one batch
            self.db.execute(
                "INSERT INTO telemetry_last (device_id, at_us, payload) VALUES (?, ?, ?)"
                " ON CONFLICT(device_id) DO UPDATE SET at_us=excluded.at_us,"
                " payload=excluded.payload",
                [device_id, at_us, t.model_dump_json()],
            )
            self.db.execute(
                "INSERT INTO telemetry (device_id, at_us, rssi_dbm, temperature_c, supply_v,"
                " amp_fault, volume, free_storage_kb, uptime_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    device_id,
                    at_us,
                    t.rssi_dbm,
                    t.temperature_c,
                    t.supply_v,
                    int(t.amp_fault),
                    t.volume,
                    t.free_storage_kb,
                    t.uptime_s,
                ],
            )
            self.db.execute("UPDATE devices SET last_seen_us=? WHERE id=?", [at_us, device_id])

    # --- media ----------------------------------------------------------------------

    def add_media(self, row: dict[str, Any]) -> None:
        self.db.table("media").insert(row, pk="id")

    def media(self, media_id: str) -> MediaRow:
        rows = self.query("SELECT * FROM media WHERE id=? AND deleted_us IS NULL", [media_id])
        if not rows:
            raise NotFound(f"media {media_id!r} does not exist")
        r = rows[0]
        return MediaRow(
            r["id"],
            r["commune_id"],
            r["title"],
            r["duration_ms"],
            r["codec"],
            r["bitrate_kbps"],
            r["frame_ms"],
            r["sha256"],
            r["path"],
            r["mp3_path"],
        )

    def media_list(self, commune_id: str) -> list[dict[str, Any]]:
        self.require_commune(commune_id)
        rows = self.query(
            f"SELECT {MEDIA_COLUMNS} FROM media"  # noqa: S608 (a constant list)
            " WHERE (commune_id=? OR commune_id IS NULL) AND deleted_us IS NULL"
            " AND COALESCE(kind, 'upload') NOT IN ('tone', 'alert', 'live', 'relay')"
            " ORDER BY created_us DESC",
            [commune_id],
        )
        return [media_out(r) for r in rows]

    def media_info(self, media_id: str) -> dict[str, Any]:
        return media_out(self.media_row(media_id))

    def media_row(self, media_id: str) -> dict[str, Any]:
        """Every stored column of a (not deleted) item."""
        rows = self.query("SELECT * FROM media WHERE id=? AND deleted_us IS NULL", [media_id])
        if not rows:
            raise NotFound(f"media {media_id!r} does not exist")
        return rows[0]

    def delete_media(self, media_id: str, at_us: int) -> None:
        """Soft delete: broadcasts keep naming the item; it leaves the library."""
        self.media_row(media_id)
        with self.db.atomic():
            self.db.execute(
                "UPDATE media SET deleted_us=?, peaks=NULL WHERE id=?", [at_us, media_id]
            )

    def media_in_use(self, media_id: str) -> bool:
        rows = self.query(
            "SELECT 1 FROM broadcasts WHERE media_id=? AND status IN"
            " ('queued', 'streaming', 'finishing') LIMIT 1",
            [media_id],
        )
        return bool(rows)
