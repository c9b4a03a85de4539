"""Every schema change, in order, in one place (sqlite-utils Migrations).

Every row that belongs to a commune carries ``commune_id``; a province-wide action is
a set of communes.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("loa")


@migrations()
def m001_places(db: Database) -> None:
    db.table("provinces").create({"id": str, "name": str}, pk="id")
    db.table("communes").create(
        {"id": str, "province_id": str, "name": str, "timezone": str},
        pk="id",
        foreign_keys=[("province_id", "provinces", "id")],
    )
    db.table("hamlets").create(
        {"commune_id": str, "id": str, "name": str, "position": int},
        pk=("commune_id", "id"),
        foreign_keys=[("commune_id", "communes", "id")],
    )
    db.table("zones").create(
        {"commune_id": str, "id": str, "name": str},
        pk=("commune_id", "id"),
        foreign_keys=[("commune_id", "communes", "id")],
    )


@migrations()
def m002_devices(db: Database) -> None:
    db.table("devices").create(
        {
            "commune_id": str,
            "id": str,
            "hamlet_id": str,
            "name": str,
            "codecs": str,  # JSON list announced by the device
            "firmware": str,
            "online": int,
            "last_seen_us": int,
            "presence_changed_us": int,
        },
        pk=("commune_id", "id"),
        foreign_keys=[("commune_id", "communes", "id")],
        not_null={"commune_id", "id", "hamlet_id"},
        defaults={"online": 0, "codecs": "[]", "firmware": "", "name": ""},
    )
    db.table("devices").create_index(["id"], unique=True)  # device ids are globally unique
    db.table("zone_members").create(
        {"commune_id": str, "zone_id": str, "device_id": str},
        pk=("commune_id", "zone_id", "device_id"),
    )
    db.table("telemetry_last").create(
        {"device_id": str, "at_us": int, "payload": str}, pk="device_id"
    )


@migrations()
def m003_media_broadcasts(db: Database) -> None:
    db.table("media").create(
        {
            "id": str,
            "commune_id": str,  # NULL = the province's own library
            "title": str,
            "filename": str,
            "duration_ms": int,
            "codec": str,
            "bitrate_kbps": int,
            "frame_ms": int,
            "sha256": str,
            "bytes": int,
            "path": str,
            "peak_dbfs": float,
            "created_us": int,
        },
        pk="id",
    )
    db.table("broadcasts").create(
        {
            "id": str,
            "stream_id": str,
            "media_id": str,
            "title": str,
            "priority": str,
            "targets": str,  # JSON list of groups as requested (after normalising)
            "status": str,  # queued, streaming, finishing, done, failed
            "created_us": int,
            "start_pts_us": int,
            "end_pts_us": int,
            "chunks": int,
            "error": str,
        },
        pk="id",
        foreign_keys=[("media_id", "media", "id")],
    )
    db.table("broadcasts").create_index(["stream_id"], unique=True)
    db.table("broadcast_communes").create(
        {"broadcast_id": str, "commune_id": str}, pk=("broadcast_id", "commune_id")
    )
    db.table("deliveries").create(
        {
            "broadcast_id": str,
            "device_id": str,
            "commune_id": str,
            "hamlet_id": str,
            "targeted": int,
            "online_at_start": int,
            # pending, played, partial, preempted, missed, refused, offline, no_report
            "outcome": str,
            "started_us": int,
            "ended_us": int,
            "frames_played": int,
            "frames_missing": int,
            "frames_late": int,
            "reason": str,
            "reported_us": int,
        },
        pk=("broadcast_id", "device_id"),
        foreign_keys=[("broadcast_id", "broadcasts", "id")],
        defaults={"frames_played": 0, "frames_missing": 0, "frames_late": 0, "reason": ""},
    )
    db.table("deliveries").create_index(["device_id"])


@migrations()
def m004_mp3_and_streams(db: Database) -> None:
    """An MP3 rendition per item, and one stream per codec per broadcast."""
    media = db.table("media")
    media.add_column("mp3_path", str)
    media.add_column("mp3_sha256", str)
    media.add_column("mp3_bytes", int)
    media.add_column("mp3_bitrate_kbps", int)
    db.table("streams").create(
        {"stream_id": str, "broadcast_id": str, "codec": str, "chunks": int},
        pk="stream_id",
        foreign_keys=[("broadcast_id", "broadcasts", "id")],
    )
    db.table("streams").create_index(["broadcast_id"])
    db.execute(
        "INSERT INTO streams (stream_id, broadcast_id, codec, chunks)"
        " SELECT stream_id, id, 'opus', chunks FROM broadcasts"
    )


@migrations()
def m005_media_library(db: Database) -> None:
    """Loudness, FLAC master, waveform, kind and soft deletion for the library."""
    media = db.table("media")
    media.add_column("kind", str)  # upload, tts, composed, tone, live, relay
    media.add_column("source_text", str)  # the text spoken, for TTS items
    media.add_column("master_path", str)
    media.add_column("master_sha256", str)
    media.add_column("master_bytes", int)
    media.add_column("loudness_in_lufs", float)
    media.add_column("true_peak_in_dbtp", float)
    media.add_column("loudness_lufs", float)
    media.add_column("true_peak_dbtp", float)
    media.add_column("trimmed_ms", int)
    media.add_column("peaks", str)  # JSON list of 0..1 values
    media.add_column("deleted_us", int)
    db.execute("UPDATE media SET kind='upload' WHERE kind IS NULL")


@migrations()
def m006_live_broadcasts(db: Database) -> None:
    """Live and relayed broadcasts have no stored item; their gaps are recorded."""
    broadcasts = db.table("broadcasts")
    broadcasts.add_column("kind", str)  # media, live, relay
    broadcasts.add_column("source", str)  # relay URL (credentials removed), or ""
    broadcasts.add_column("gaps", int)
    broadcasts.add_column("gap_ms", int)
    db.execute("UPDATE broadcasts SET kind='media', gaps=0, gap_ms=0 WHERE kind IS NULL")


@migrations()
def m007_alerts(db: Database) -> None:
    """Emergency alerts, the broadcasts that aired them, and every change to them."""
    db.table("alerts").create(
        {
            "id": str,
            "commune_id": str,
            "type": str,
            "status": str,  # draft, active, cancelled, all_clear, expired
            "risk_level": int,
            "severity": str,
            "urgency": str,
            "certainty": str,
            "title": str,
            "message_vi": str,
            "message_en": str,
            "fields": str,  # JSON of the template fields
            "siren": str,
            "repeat": int,
            "targets": str,  # JSON list of {commune, hamlet?, zone?, device?}
            "media_id": str,  # siren + message × repeat, encoded at creation
            "test": int,  # exercise / test: only to the chosen test speakers
            "reair_hours": int,  # 0 = no re-airing
            "next_airing_us": int,
            "expires_us": int,
            "created_us": int,
            "confirmed_us": int,
            "ended_us": int,
            "end_reason": str,
            "cap_identifier": str,
            "cap_sender": str,
            "cap_sent": str,
            "source": str,  # api or cap
        },
        pk="id",
        foreign_keys=[("media_id", "media", "id")],
    )
    db.table("alerts").create_index(["commune_id", "created_us"])
    db.table("alerts").create_index(["cap_sender", "cap_identifier"])
    db.table("alert_broadcasts").create(
        {"alert_id": str, "broadcast_id": str, "kind": str, "at_us": int},
        pk=("alert_id", "broadcast_id"),
    )
    db.table("alert_events").create(
        {"alert_id": str, "at_us": int, "action": str, "actor": str, "detail": str}
    )
    db.table("alert_events").create_index(["alert_id", "at_us"])


@migrations()
def m008_programmes(db: Database) -> None:
    """Programmes (what, where, when, approval) and their occurrences, one row per firing."""
    db.table("programmes").create(
        {
            "id": str,
            "commune_id": str,
            "title": str,
            "what": str,  # media, text or relay
            "media_id": str,  # the item played (text is spoken into an item when saved)
            "text": str,
            "relay_url": str,
            "relay_duration_s": float,
            "targets": str,  # JSON
            "rule": str,  # JSON of schedules.recurrence.Rule
            "priority": str,  # normal or priority
            "volume": int,
            "status": str,  # draft, submitted, approved, returned
            "reason": str,  # why it was returned
            "created_us": int,
            "updated_us": int,
            "approved_us": int,
            "deleted_us": int,
        },
        pk="id",
    )
    db.table("programmes").create_index(["commune_id"])
    db.table("occurrences").create(
        {
            "programme_id": str,
            "fire_us": int,
            "commune_id": str,
            # scheduled, started, played, partial, preempted, skipped, failed, missed,
            # interrupted
            "status": str,
            "late_ms": int,
            "broadcast_id": str,
            "reason": str,
            "started_us": int,
        },
        pk=("programme_id", "fire_us"),  # a firing exists once, whatever wakes us
    )
    db.table("occurrences").create_index(["status", "fire_us"])
    db.table("occurrences").create_index(["commune_id", "fire_us"])


@migrations()
def m009_prefetch(db: Database) -> None:
    """Prefetched plays of scheduled firings and what each speaker said about them."""
    db.table("prefetches").create(
        {
            "programme_id": str,
            "fire_us": int,
            "broadcast_id": str,  # the broadcast the firing becomes
            "stream_id": str,  # the PLAY's stream id (proof of play reports it)
            "item_id": str,
            "sha256": str,
            "at_us": int,  # when the first chunk sounds
            "end_us": int,
            "chunks": int,
            "groups": str,  # JSON list of the group topics the PLAY went to
            "pushed_us": int,
            "cancelled_us": int,
        },
        pk=("programme_id", "fire_us"),
    )
    db.table("device_items").create(
        {"device_id": str, "item_id": str, "state": str, "detail": str, "at_us": int},
        pk=("device_id", "item_id"),
    )
    db.table("play_arms").create(
        {"broadcast_id": str, "device_id": str, "state": str, "detail": str, "at_us": int},
        pk=("broadcast_id", "device_id"),
    )
    db.table("deliveries").add_column("source", str, not_null_default="stream")


@migrations()
def m010_auth(db: Database) -> None:
    """Accounts, sessions, API tokens, broker credentials, and the append-only audit log."""
    db.table("users").create(
        {
            "id": str,
            "username": str,
            "password_hash": str,  # argon2id
            "roles": str,  # JSON list
            "province_id": str,
            "commune_id": str,  # null: the whole province
            "hamlets": str,  # JSON list; empty: the whole commune
            "full_name": str,
            "failed_logins": int,
            "locked_until_us": int,
            "disabled": int,
            "created_us": int,
        },
        pk="id",
    )
    db.table("users").create_index(["username"], unique=True)
    db.table("sessions").create(
        {"token_sha": str, "user_id": str, "csrf": str, "created_us": int, "expires_us": int},
        pk="token_sha",
    )
    db.table("api_tokens").create(
        {
            "token_sha": str,
            "id": str,
            "user_id": str,
            "name": str,
            "created_us": int,
            "last_used_us": int,
            "revoked_us": int,
        },
        pk="token_sha",
    )
    db.table("device_credentials").create(
        {"device_id": str, "hash": str, "created_us": int, "revoked_us": int},
        pk="device_id",
    )
    db.table("audit").create(
        {
            "seq": int,
            "at_us": int,
            "actor": str,
            "action": str,
            "target": str,
            "detail": str,  # JSON
            "ip": str,
        },
        pk="seq",
    )
    db.table("audit").create_index(["actor", "at_us"])
    db.table("audit").create_index(["action", "at_us"])
    # Append-only: the database itself refuses to change or remove a record.
    db.execute(
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
        " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
        " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )


@migrations()
def m011_fleet(db: Database) -> None:
    """Presence history, the controller's own runs, telemetry series, alarms, commands,
    and the registry fields of a speaker."""
    db.table("presence_log").create(
        {"device_id": str, "commune_id": str, "at_us": int, "online": int, "reason": str}
    )
    db.table("presence_log").create_index(["device_id", "at_us"])
    db.table("controller_runs").create({"started_us": int, "alive_us": int}, pk="started_us")
    db.table("telemetry").create(
        {
            "device_id": str,
            "at_us": int,
            "rssi_dbm": int,
            "temperature_c": float,
            "supply_v": float,
            "amp_fault": int,
            "volume": int,
            "free_storage_kb": int,
            "uptime_s": int,
        }
    )
    db.table("telemetry").create_index(["device_id", "at_us"])
    db.table("alarms").create(
        {
            "id": str,
            "device_id": str,
            "commune_id": str,
            "hamlet_id": str,
            "kind": str,
            "detail": str,
            "raised_us": int,
            "cleared_us": int,
            "acked_us": int,
            "acked_by": str,
        },
        pk="id",
    )
    db.table("alarms").create_index(["device_id", "kind", "cleared_us"])
    db.table("commands").create(
        {
            "id": str,
            "device_id": str,
            "action": str,
            "args": str,
            "actor": str,
            "sent_us": int,
            "expires_us": int,
            "status": str,  # sent, ok, failed, timeout
            "detail": str,
            "acked_us": int,
        },
        pk="id",
    )
    db.table("commands").create_index(["device_id", "sent_us"])
    for column, kind in (
        ("lat", float),
        ("lon", float),
        ("model", str),
        ("sim", str),
        ("network", str),
        ("installed", str),
        ("notes", str),
    ):
        db.table("devices").add_column(column, kind)


@migrations()
def m012_firmware(db: Database) -> None:
    """Firmware images, rollouts in waves, and each device's result."""
    db.table("firmware").create(
        {
            "id": str,
            "version": str,
            "sha256": str,
            "size": int,
            "path": str,
            "key_id": str,
            "manifest_sig": str,
            "created_us": int,
        },
        pk="id",
    )
    db.table("rollouts").create(
        {
            "id": str,
            "firmware_id": str,
            "status": str,  # running, completed, halted
            "reason": str,
            "wave": int,  # the wave under way (0 = canary)
            "waves": int,
            "created_us": int,
            "ended_us": int,
            "actor": str,
        },
        pk="id",
    )
    db.table("rollout_devices").create(
        {
            "rollout_id": str,
            "device_id": str,
            "wave": int,
            "state": str,  # pending, sent, installed, refused, timeout
            "detail": str,
            "at_us": int,
        },
        pk=("rollout_id", "device_id"),
    )


@migrations()
def m013_presence_session(db: Database) -> None:
    """The MQTT connection a speaker's presence belongs to (stale wills are ignored)."""
    db.table("devices").add_column("session", str)


@migrations()
def m014_zone_hamlets_issue15(db: Database) -> None:
    """A zone is a named set of hamlets and/or speakers: the hamlets it takes whole."""
    db.table("zone_hamlets").create(
        {"commune_id": str, "zone_id": str, "hamlet_id": str},
        pk=("commune_id", "zone_id", "hamlet_id"),
    )


@migrations()
def m015_issue18_faults(db: Database) -> None:
    """Issue 18: how late a broadcast was accepted; proof of play that came before its
    broadcast row (kept, then reconciled)."""
    db.table("broadcasts").add_column("late_ms", int)
    db.table("pending_reports").create(
        {
            "stream_id": str,
            "device_id": str,
            "commune_id": str,
            "report": str,  # the PlayReport as JSON
            "at_us": int,
        },
        pk=("stream_id", "device_id"),
    )
    db.table("pending_reports").create_index(["at_us"])


@migrations()
def m016_alerts_issue17(db: Database) -> None:
    """Alerts (issue 17): the language their text came in, and the form key that makes
    creating one idempotent."""
    db.table("alerts").add_column("language", str, not_null_default="vi-VN")
    db.table("alerts").add_column("client_key", str, not_null_default="")
    # every CAP message acted on for the alert, " sender,identifier " each (references)
    db.table("alerts").add_column("cap_messages", str, not_null_default="")
    db.execute(  # one draft per form key (a double tap), however the requests race
        "CREATE UNIQUE INDEX idx_alerts_client_key ON alerts (commune_id, client_key)"
        " WHERE client_key != ''"
    )
