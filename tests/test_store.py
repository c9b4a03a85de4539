"""The store and the ledger on a real SQLite file: pragmas, migrations, seed, atomicity."""

from __future__ import annotations

import sqlite3
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broadcaster.broadcasts.ledger import Ledger, summarize
from broadcaster.places import demo_data
from broadcaster.store.migrations import migrations
from broadcaster.store.store import Store
from devices.messages import PlayReport, Telemetry
from loa.errors import NotFound

COMMUNE = demo_data.COMMUNE[0]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data" / "loa.db")
    yield s
    s.close()


@pytest.fixture
def seeded_store(store: Store) -> Store:
    demo_data.seed(store)
    return store


def count(store: Store, table: str) -> int:
    rows = store.query(f"SELECT count(*) AS n FROM {table}")
    return int(rows[0]["n"])


def snapshot(store: Store) -> dict[str, list[dict[str, Any]]]:
    tables = ["provinces", "communes", "hamlets", "zones", "zone_members", "devices"]
    return {t: store.query(f"SELECT * FROM {t} ORDER BY rowid") for t in tables}


def add_media(store: Store, commune: str | None = COMMUNE) -> str:
    mid = str(uuid.uuid4())
    store.add_media(
        {
            "id": mid,
            "commune_id": commune,
            "title": "Thông báo",
            "filename": "a.wav",
            "duration_ms": 1000,
            "codec": "opus",
            "bitrate_kbps": 24,
            "frame_ms": 20,
            "sha256": "0" * 64,
            "bytes": 10,
            "path": "/nowhere.opus",
            "peak_dbfs": -3.0,
            "created_us": 1,
        }
    )
    return mid


def broadcast_row(media_id: str, **over: Any) -> dict[str, Any]:
    row = {
        "id": str(uuid.uuid4()),
        "stream_id": str(uuid.uuid4()),
        "media_id": media_id,
        "title": "Thông báo thử",
        "priority": "normal",
        "targets": "[]",
        "status": "streaming",
        "created_us": 10,
        "start_pts_us": 20,
        "end_pts_us": 30,
        "chunks": 1,
        "error": "",
    }
    row.update(over)
    return row


def delivery(bid: str, device: str, hamlet: str, online: bool = True) -> dict[str, Any]:
    return {
        "broadcast_id": bid,
        "device_id": device,
        "commune_id": COMMUNE,
        "hamlet_id": hamlet,
        "targeted": 1,
        "online_at_start": int(online),
        "outcome": "pending",
    }


# --- the file ----------------------------------------------------------------------


def test_wal_and_synchronous_full(store: Store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_wal_persists_in_the_file(tmp_path: Path):
    path = tmp_path / "loa.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_busy_timeout_is_configurable(tmp_path: Path):
    s = Store(tmp_path / "loa.db", busy_timeout_ms=123)
    try:
        assert s.db.execute("PRAGMA busy_timeout").fetchone()[0] == 123
    finally:
        s.close()


def test_creates_missing_parent_folders(tmp_path: Path):
    path = tmp_path / "a" / "b" / "c" / "loa.db"
    Store(path).close()
    assert path.is_file()


def test_migrations_applied_once(tmp_path: Path):
    path = tmp_path / "loa.db"
    first = Store(path)
    demo_data.seed(first)
    first.close()
    second = Store(path)  # opening again must not try to create tables again
    try:
        rows = second.query(
            "SELECT name, count(*) AS n FROM _sqlite_migrations WHERE migration_set='loa'"
            " GROUP BY name ORDER BY name"
        )
        expected = [m.name for m in migrations._migrations]
        assert [r["name"] for r in rows] == sorted(expected)
        assert all(r["n"] == 1 for r in rows)
        assert migrations.pending(second.db) == []
        assert count(second, "devices") == 27  # data survived the reopen
    finally:
        second.close()
    third = Store(path)
    try:
        assert count(third, "_sqlite_migrations") == len(expected)
    finally:
        third.close()


def test_schema_tables_exist(store: Store):
    names = set(store.db.table_names())
    assert {
        "provinces",
        "communes",
        "hamlets",
        "zones",
        "devices",
        "zone_members",
        "telemetry_last",
        "media",
        "broadcasts",
        "broadcast_communes",
        "deliveries",
    } <= names


def test_close_is_idempotent(tmp_path: Path):
    s = Store(tmp_path / "loa.db")
    s.close()
    s.close()
    with pytest.raises(sqlite3.ProgrammingError):
        s.communes()


# --- seed ------------------------------------------------------------------------


def test_seed_creates_the_demo_commune(seeded_store: Store):
    s = seeded_store
    assert count(s, "provinces") == 1
    communes = s.communes()
    assert len(communes) == 1
    c = communes[0]
    assert c["id"] == COMMUNE
    assert c["name"] == "Xã Vị Tân"
    assert c["province_name"] == "Thành phố Cần Thơ"
    assert c["timezone"] == "Asia/Ho_Chi_Minh"
    assert c["devices"] == 27
    assert c["online"] == 0
    hamlets = s.hamlets(COMMUNE)
    assert len(hamlets) == 9
    assert [h["id"] for h in hamlets] == [h for h, _ in demo_data.HAMLETS]  # by position
    names = {h["id"]: h["name"] for h in hamlets}
    assert names["ap-2a"] == "Ấp 2A"
    assert names["ap-1"] == "Ấp 1"
    assert all(unicodedata.is_normalized("NFC", n) for n in names.values())
    assert all(h["devices"] == 3 for h in hamlets)
    assert len(s.devices(COMMUNE)) == 27
    assert s.zone_ids(COMMUNE) == {"cho-vi-tan"}
    assert count(s, "zones") == 1


def test_seed_devices_and_zone_members(seeded_store: Store):
    devices = {d.id: d for d in seeded_store.devices(COMMUNE)}
    assert devices["vt-ap-2a-3"].hamlet_id == "ap-2a"
    assert devices["vt-ap-2a-3"].name == "Cụm loa Ấp 2A số 3"
    assert devices["vt-ap-1-1"].zones == ("cho-vi-tan",)
    assert devices["vt-ap-2-1"].zones == ("cho-vi-tan",)
    assert {d for d, row in devices.items() if row.zones} == {"vt-ap-1-1", "vt-ap-2-1"}
    assert not any(d.online for d in devices.values())


def test_seed_is_idempotent(seeded_store: Store):
    before = snapshot(seeded_store)
    demo_data.seed(seeded_store)
    demo_data.seed(seeded_store)
    assert snapshot(seeded_store) == before


def test_seed_keeps_presence(seeded_store: Store):
    assert seeded_store.set_presence(
        COMMUNE, "vt-ap-3-1", online=True, at_us=5, firmware="1.0", codecs=["opus"]
    )
    demo_data.seed(seeded_store)
    d = next(d for d in seeded_store.devices(COMMUNE) if d.id == "vt-ap-3-1")
    assert d.online


# --- presence, lookups ----------------------------------------------------------


def test_set_presence_on_unknown_device(seeded_store: Store):
    before = snapshot(seeded_store)
    assert not seeded_store.set_presence(
        COMMUNE, "vt-ghost-1", online=True, at_us=1, firmware="x", codecs=["opus"]
    )
    # a real device but the wrong commune is unknown too
    assert not seeded_store.set_presence(
        "other", "vt-ap-1-1", online=True, at_us=1, firmware="x", codecs=["opus"]
    )
    assert snapshot(seeded_store) == before


def test_set_presence_online_then_offline(seeded_store: Store):
    s = seeded_store
    assert s.set_presence(
        COMMUNE, "vt-ap-1-1", online=True, at_us=100, firmware="2.1", codecs=["opus", "mp3"]
    )
    row = next(r for r in s.device_details(COMMUNE) if r["id"] == "vt-ap-1-1")
    assert row["online"] is True
    assert row["firmware"] == "2.1"
    assert row["codecs"] == ["opus", "mp3"]
    assert row["last_seen_us"] == 100
    assert s.communes()[0]["online"] == 1
    assert s.set_presence(COMMUNE, "vt-ap-1-1", online=False, at_us=200, firmware="", codecs=[])
    row = next(r for r in s.device_details(COMMUNE) if r["id"] == "vt-ap-1-1")
    assert row["online"] is False
    assert row["firmware"] == "2.1"  # an offline message does not erase what we knew
    assert row["presence_changed_us"] == 200


def test_device_commune(seeded_store: Store):
    assert seeded_store.device_commune("vt-ap-7-3") == COMMUNE
    assert seeded_store.device_commune("nope") is None


def test_require_commune_and_hamlet(seeded_store: Store):
    assert seeded_store.require_commune(COMMUNE)["name"] == "Xã Vị Tân"
    with pytest.raises(NotFound, match="commune 'nope'"):
        seeded_store.require_commune("nope")
    seeded_store.require_hamlet(COMMUNE, "ap-2a")
    with pytest.raises(NotFound, match="hamlet 'ap-99'"):
        seeded_store.require_hamlet(COMMUNE, "ap-99")
    with pytest.raises(NotFound):
        seeded_store.require_hamlet("nope", "ap-1")
    with pytest.raises(NotFound):
        seeded_store.hamlets("nope")
    with pytest.raises(NotFound):
        seeded_store.device_details("nope")
    with pytest.raises(NotFound):
        seeded_store.media_list("nope")


def test_upsert_device_with_unknown_hamlet(seeded_store: Store):
    before = snapshot(seeded_store)
    with pytest.raises(NotFound, match="ap-99"):
        seeded_store.upsert_device(COMMUNE, "vt-new-1", "ap-99")
    with pytest.raises(NotFound):
        seeded_store.upsert_device("nope", "vt-new-2", "ap-1")
    assert snapshot(seeded_store) == before
    assert seeded_store.device_commune("vt-new-1") is None


def test_upsert_device_name_defaults_to_id(seeded_store: Store):
    seeded_store.upsert_device(COMMUNE, "vt-new-1", "ap-1")
    d = next(d for d in seeded_store.devices(COMMUNE) if d.id == "vt-new-1")
    assert d.name == "vt-new-1"
    assert seeded_store.communes()[0]["devices"] == 28


def test_device_ids_are_globally_unique(seeded_store: Store):
    s = seeded_store
    s.upsert_commune("other", "can-tho", "Xã Khác", "Asia/Ho_Chi_Minh")
    s.upsert_hamlet("other", "ap-1", "Ấp 1")
    with pytest.raises(sqlite3.IntegrityError):
        s.upsert_device("other", "vt-ap-1-1", "ap-1")
    assert s.device_commune("vt-ap-1-1") == COMMUNE


def test_upsert_zone_replaces_members(seeded_store: Store):
    s = seeded_store
    s.upsert_zone(COMMUNE, "cho-vi-tan", "Khu chợ", ["vt-ap-3-1"])
    zones = {d.id: d.zones for d in s.devices(COMMUNE) if d.zones}
    assert zones == {"vt-ap-3-1": ("cho-vi-tan",)}


def test_upsert_zone_is_atomic(seeded_store: Store):
    s = seeded_store
    before = snapshot(s)
    with pytest.raises(sqlite3.IntegrityError):
        s.upsert_zone(COMMUNE, "cho-vi-tan", "Khu chợ mới", ["vt-ap-3-1", "vt-ap-3-1"])
    assert snapshot(s) == before


def test_media_lookups(seeded_store: Store):
    mid = add_media(seeded_store)
    shared = add_media(seeded_store, commune=None)
    assert seeded_store.media(mid).commune_id == COMMUNE
    assert seeded_store.media_info(shared)["commune_id"] is None
    ids = {m["id"] for m in seeded_store.media_list(COMMUNE)}
    assert ids == {mid, shared}
    missing = str(uuid.uuid4())
    with pytest.raises(NotFound):
        seeded_store.media(missing)
    with pytest.raises(NotFound):
        seeded_store.media_info(missing)


# --- ledger ----------------------------------------------------------------------


def test_ledger_create_is_atomic(seeded_store: Store):
    s = seeded_store
    ledger = Ledger(s)
    b = broadcast_row(add_media(s))
    d = delivery(b["id"], "vt-ap-1-1", "ap-1")
    with pytest.raises(sqlite3.IntegrityError):
        ledger.create(b, [COMMUNE], [d, dict(d)])
    assert count(s, "deliveries") == 0
    assert count(s, "broadcast_communes") == 0
    assert count(s, "broadcasts") == 0
    assert ledger.recent(COMMUNE) == []


def test_ledger_create_and_get(seeded_store: Store):
    s = seeded_store
    ledger = Ledger(s)
    b = broadcast_row(add_media(s), targets='[{"commune": "vi-tan", "kind": "hamlet"}]')
    ledger.create(
        b,
        [COMMUNE],
        [delivery(b["id"], "vt-ap-1-1", "ap-1"), delivery(b["id"], "vt-ap-1-2", "ap-1", False)],
    )
    got = ledger.get(b["id"])
    assert got["communes"] == [COMMUNE]
    assert got["targets"] == [{"commune": "vi-tan", "kind": "hamlet"}]
    assert [d["device_id"] for d in got["deliveries"]] == ["vt-ap-1-1", "vt-ap-1-2"]
    assert got["deliveries"][0]["targeted"] is True
    assert got["deliveries"][1]["online_at_start"] is False
    assert got["summary"] == {
        f"{COMMUNE}/ap-1": {
            "targeted": 2,
            "played": 0,
            "partial": 0,
            "missed": 0,
            "offline": 0,
            "pending": 2,
            "untargeted": 0,
        }
    }
    assert [r["id"] for r in ledger.recent(COMMUNE)] == [b["id"]]
    assert ledger.by_stream(b["stream_id"])["id"] == b["id"]  # type: ignore[index]
    assert ledger.by_stream(str(uuid.uuid4())) is None
    with pytest.raises(NotFound):
        ledger.get(str(uuid.uuid4()))


def test_ledger_update(seeded_store: Store):
    ledger = Ledger(seeded_store)
    b = broadcast_row(add_media(seeded_store))
    ledger.create(b, [COMMUNE], [delivery(b["id"], "vt-ap-1-1", "ap-1")])
    ledger.update(b["id"], status="done", error="")
    assert ledger.get(b["id"])["status"] == "done"


def test_finalize_by_online_at_start(seeded_store: Store):
    s = seeded_store
    ledger = Ledger(s)
    b = broadcast_row(add_media(s))
    ledger.create(
        b,
        [COMMUNE],
        [
            delivery(b["id"], "vt-ap-1-1", "ap-1", online=True),
            delivery(b["id"], "vt-ap-1-2", "ap-1", online=False),
            delivery(b["id"], "vt-ap-1-3", "ap-1", online=True),
        ],
    )
    report = PlayReport(stream=b["stream_id"], outcome="played", frames_played=5)
    assert ledger.record_report("vt-ap-1-3", COMMUNE, "ap-1", report, 99) == "recorded"
    ledger.finalize(b["id"])
    out = {d["device_id"]: d for d in ledger.get(b["id"])["deliveries"]}
    assert out["vt-ap-1-1"]["outcome"] == "no_report"
    assert out["vt-ap-1-1"]["reason"] == "no proof of play received"
    assert out["vt-ap-1-2"]["outcome"] == "offline"
    assert out["vt-ap-1-2"]["reason"] == "speaker was offline"
    assert out["vt-ap-1-3"]["outcome"] == "played"  # a report is never overwritten
    assert out["vt-ap-1-3"]["frames_played"] == 5
    ledger.finalize(b["id"])  # idempotent
    again = {d["device_id"]: d["outcome"] for d in ledger.get(b["id"])["deliveries"]}
    assert again == {"vt-ap-1-1": "no_report", "vt-ap-1-2": "offline", "vt-ap-1-3": "played"}
    summary = ledger.get(b["id"])["summary"][f"{COMMUNE}/ap-1"]
    assert summary["played"] == 1
    assert summary["offline"] == 1
    assert summary["missed"] == 1  # no_report counts as missed
    assert summary["pending"] == 0


def test_finalize_touches_only_its_broadcast(seeded_store: Store):
    s = seeded_store
    ledger = Ledger(s)
    mid = add_media(s)
    a, b = broadcast_row(mid), broadcast_row(mid)
    ledger.create(a, [COMMUNE], [delivery(a["id"], "vt-ap-1-1", "ap-1")])
    ledger.create(b, [COMMUNE], [delivery(b["id"], "vt-ap-1-1", "ap-1")])
    ledger.finalize(a["id"])
    assert ledger.get(b["id"])["deliveries"][0]["outcome"] == "pending"


def test_record_report_untargeted_and_unknown(seeded_store: Store):
    s = seeded_store
    ledger = Ledger(s)
    b = broadcast_row(add_media(s))
    ledger.create(b, [COMMUNE], [delivery(b["id"], "vt-ap-1-1", "ap-1")])
    report = PlayReport(
        stream=b["stream_id"], outcome="played", started_us=1, ended_us=2, frames_played=3
    )
    assert ledger.record_report("vt-ap-5-2", COMMUNE, "ap-5", report, 77) == "untargeted"
    rows = s.query(
        "SELECT * FROM deliveries WHERE broadcast_id=? AND device_id='vt-ap-5-2'", [b["id"]]
    )
    assert len(rows) == 1
    assert rows[0]["targeted"] == 0
    assert rows[0]["outcome"] == "played"
    assert rows[0]["hamlet_id"] == "ap-5"
    assert rows[0]["reported_us"] == 77
    # The same untargeted device reporting again updates its row instead of failing.
    assert ledger.record_report("vt-ap-5-2", COMMUNE, "ap-5", report, 78) == "recorded"
    assert count(s, "deliveries") == 2

    unknown = PlayReport(stream=str(uuid.uuid4()), outcome="played")
    before = count(s, "deliveries")
    # A stream no broadcast names yet: kept (a firing's row may come after its proof).
    assert ledger.record_report("vt-ap-1-1", COMMUNE, "ap-1", unknown, 1) == "pending"
    assert count(s, "deliveries") == before
    assert count(s, "pending_reports") == 1

    got = ledger.get(b["id"])
    assert got["summary"][f"{COMMUNE}/ap-5"]["untargeted"] == 1
    assert got["summary"][f"{COMMUNE}/ap-5"]["targeted"] == 0
    assert got["summary"][f"{COMMUNE}/ap-1"]["pending"] == 1


def test_summarize_counts():
    def d(hamlet: str, outcome: str, targeted: bool = True) -> dict[str, Any]:
        return {"commune_id": "c", "hamlet_id": hamlet, "outcome": outcome, "targeted": targeted}

    out = summarize(
        [
            d("h1", "played"),
            d("h1", "played"),
            d("h1", "partial"),
            d("h1", "missed"),
            d("h1", "preempted"),
            d("h1", "refused"),
            d("h1", "no_report"),
            d("h1", "offline"),
            d("h1", "pending"),
            d("h1", "played", targeted=False),
            d("h2", "offline"),
        ]
    )
    assert out == {
        "c/h1": {
            "targeted": 9,
            "played": 2,
            "partial": 1,
            "missed": 4,
            "offline": 1,
            "pending": 1,
            "untargeted": 1,
        },
        "c/h2": {
            "targeted": 1,
            "played": 0,
            "partial": 0,
            "missed": 0,
            "offline": 1,
            "pending": 0,
            "untargeted": 0,
        },
    }
    assert summarize([]) == {}


def test_device_facts_commit_in_the_connections_own_mode(tmp_path: Path):
    """Presence and telemetry no longer flip the connection's durability back and forth:
    a bare store (a command-line tool) stays FULL after writing them."""
    store = Store(tmp_path / "facts.db")
    demo_data.seed(store)
    store.set_telemetry("vt-ap-1-1", 5, Telemetry(at_us=5, uptime_s=1, volume=80))
    store.set_presence(COMMUNE, "vt-ap-1-1", online=True, at_us=6, firmware="x", codecs=["opus"])
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_a_late_will_from_an_older_connection_does_not_mark_a_speaker_offline(tmp_path: Path):
    store = Store(tmp_path / "p.db")
    demo_data.seed(store)
    d = "vt-ap-1-1"

    def presence(online: bool, at: int, session: str | None) -> None:
        store.set_presence(
            COMMUNE, d, online=online, at_us=at, firmware="x", codecs=["opus"], session=session
        )

    def online() -> bool:
        return bool(store.query("SELECT online FROM devices WHERE id=?", [d])[0]["online"])

    presence(True, 1, "aa")
    presence(True, 2, "bb")  # reconnected: a new connection
    presence(False, 3, "aa")  # the old connection's will, published late
    assert online()
    presence(False, 4, "bb")  # the current connection's will
    assert not online()
    presence(True, 5, "cc")
    presence(False, 6, None)  # firmware that sends no session id is believed
    assert not online()
    assert [r["online"] for r in store.query("SELECT online FROM presence_log ORDER BY at_us")] == [
        1,
        0,
        1,
        0,
    ]
    store.close()
