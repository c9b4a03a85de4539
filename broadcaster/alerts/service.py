"""Emergency alerts: create → confirm → sound; cancel, update, all-clear; re-air; replay.

An alert's audio (siren, then the message read ``repeat`` times) is rendered and
encoded when the alert is *created*, so *confirm* only starts a stream of audio that is
already on disk: the path from confirm to the first publish reads one file and
publishes; the per-speaker delivery rows are written after the first frames are out.

Every change is an ``alert_events`` row (who, when, what) as well as an audit line.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

from devices.frames import Priority
from loa.clock import Clock
from loa.errors import Conflict, FieldError, InvalidInput, LoaError, NotFound

from ..broadcasts.dispatcher import BroadcastRequest, Dispatcher
from ..broadcasts.ledger import Ledger
from ..library.service import Library
from ..places.directory import resolve_in
from ..places.targeting import Resolution, Target
from ..store.store import Store
from .board import _public, _severity, hamlet_board, speaker_board
from .model import (
    ALL_CLEAR_TEXT,
    RISK_LEVELS,
    TYPE_NAMES,
    AlertStatus,
    AlertType,
    next_airing,
    render,
)

logger = logging.getLogger(__name__)

Rows = list[dict[str, Any]]
ENDED = (AlertStatus.CANCELLED, AlertStatus.ALL_CLEAR, AlertStatus.EXPIRED)


@dataclass
class AlertRequest:
    commune: str
    type: AlertType
    risk_level: int
    targets: list[Target]
    fields: dict[str, str] = field(default_factory=dict)
    message: str = ""  # a custom text instead of the template
    message_en: str = ""  # the English text (a CAP document's own, or the template's)
    language: str = "vi-VN"  # the language of the text as received (CAP: its <info>)
    media_id: str | None = None  # a recorded message instead of text
    siren: str = "wail"
    repeat: int = 3
    expires_us: int = 0
    reair_hours: int = 0
    title: str = ""
    severity: str = ""
    urgency: str = "Immediate"
    certainty: str = "Observed"
    test: bool = False
    source: str = "api"
    cap_identifier: str = ""
    cap_sender: str = ""
    cap_sent: str = ""
    client_key: str = ""  # the form's idempotency key: a double tap makes one draft


class AlertService:
    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        library: Library,
        dispatcher: Dispatcher,
        clock: Clock,
        *,
        timezone: str,
        default_expiry_s: float,
        audit: Callable[..., None],
        loudness_lufs: float = -14.0,
    ) -> None:
        self.store = store
        self.db = store.db
        self.ledger = ledger
        self.library = library
        self.dispatcher = dispatcher
        self.clock = clock
        self.timezone = timezone
        self.default_expiry_s = default_expiry_s
        self.audit = audit
        self.loudness_lufs = loudness_lufs  # alerts are rendered louder than bulletins
        self._wake = anyio.Event()
        self._resolutions: dict[str, Resolution] = {}  # alert id → resolved at creation
        self.loop_token: anyio.lowlevel.EventLoopToken | None = None

    # --- creating and sounding -------------------------------------------------------

    async def _prepare(self, req: AlertRequest) -> tuple[dict[str, Any], Resolution]:
        """Validate and render an alert's message and audio: the columns that describe it."""
        self.store.require_commune(req.commune)
        if any(t.commune != req.commune for t in req.targets):
            raise InvalidInput(
                "an alert of a commune reaches only that commune's speakers",
                errors=[FieldError("targets", "target outside this commune", "scope")],
            )
        if req.risk_level not in RISK_LEVELS:
            raise InvalidInput(
                "the risk level is 1 to 5 (Quyết định 18/2021/QĐ-TTg)",
                errors=[FieldError("risk_level", "1 to 5", "range")],
            )
        resolution = resolve_in(self.store, req.targets)
        now = self.clock.now_us()
        expires = req.expires_us or now + int(self.default_expiry_s * 1e6)
        if expires <= now:
            raise InvalidInput(
                "the alert has already expired",
                errors=[FieldError("expires", "in the past", "expired")],
            )
        if req.media_id is None and req.message.strip():
            message_vi, message_en = req.message.strip(), req.message_en.strip()
        elif req.media_id is None and req.message_en.strip():
            # English only (a foreign CAP document): nothing foreign is read to villagers;
            # the siren is ready and the alert waits for the Vietnamese message.
            message_vi, message_en = "", req.message_en.strip()
        elif req.media_id is None:
            message_vi = render(req.type, req.fields, req.risk_level, "vi")
            message_en = render(req.type, req.fields, req.risk_level, "en")
        else:
            message_vi, message_en = "", ""
        title = req.title.strip() or f"{TYPE_NAMES[req.type][0]} — cấp {req.risk_level}"
        media = await self.library.add_alert_audio(
            siren=req.siren,
            text=message_vi or None,
            media_id=req.media_id,
            repeat=req.repeat,
            commune_id=req.commune,
            title=title,
            loudness_lufs=self.loudness_lufs,
        )
        columns = {
            "type": req.type.value,
            "risk_level": req.risk_level,
            "severity": req.severity or _severity(req.risk_level),
            "urgency": req.urgency,
            "certainty": req.certainty,
            "title": title[:200],
            "message_vi": message_vi,
            "message_en": message_en,
            "fields": json.dumps(req.fields, ensure_ascii=False),
            "siren": req.siren,
            "repeat": req.repeat,
            "targets": json.dumps([t.as_dict() for t in req.targets]),
            "media_id": media["id"],
            "reair_hours": req.reair_hours,
            "expires_us": expires,
            "language": "vi-VN" if message_vi or req.media_id else req.language,
        }
        return columns, resolution

    def by_key(self, commune: str, client_key: str) -> dict[str, Any] | None:
        """The alert a form already created with this key (None if none)."""
        if not client_key:
            return None
        rows = self.store.query(
            "SELECT id FROM alerts WHERE commune_id=? AND client_key=?", [commune, client_key]
        )
        return self.get(rows[0]["id"]) if rows else None

    def targets_of(self, alert_id: str) -> list[Target]:
        """Where an alert sounds (for area checks before acting on it)."""
        return [Target(**t) for t in json.loads(self._row(alert_id)["targets"])]

    async def create(self, req: AlertRequest, actor: str = "api", via: str = "") -> dict[str, Any]:
        """Validate, render and encode the alert; it waits (draft) for a confirm.

        ``actor`` is the account; ``via`` says how it came (a CAP document and sender)."""
        same = self.by_key(req.commune, req.client_key)
        if same is not None:
            return same
        columns, resolution = await self._prepare(req)
        same = self.by_key(req.commune, req.client_key)  # a second tap while rendering
        if same is not None:
            return same
        alert_id = str(uuid.uuid4())
        row = {
            "id": alert_id,
            "commune_id": req.commune,
            "status": AlertStatus.DRAFT.value,
            **columns,
            "test": int(req.test),
            "next_airing_us": None,
            "created_us": self.clock.now_us(),
            "confirmed_us": None,
            "ended_us": None,
            "end_reason": "",
            "cap_identifier": req.cap_identifier,
            "cap_sender": req.cap_sender,
            "cap_sent": req.cap_sent,
            "source": req.source,
            "client_key": req.client_key,
        }
        with self.db.atomic():
            self.db.table("alerts").insert(row, pk="id")
            self._event(
                alert_id, "create", actor, _via(f"{req.type.value} level {req.risk_level}", via)
            )
        self._resolutions[alert_id] = resolution
        self.audit("alert.create", alert=alert_id, commune=req.commune, **_src(via))
        return self.get(alert_id)

    def confirm(self, alert_id: str, actor: str = "api", via: str = "") -> dict[str, Any]:
        """The second step: sound it now on every targeted speaker."""
        a = self._row(alert_id)
        if a["status"] != AlertStatus.DRAFT:
            raise Conflict(f"this alert is {a['status']}; only a draft can be confirmed")
        if not a["message_vi"] and a["message_en"]:
            raise Conflict(
                "this alert came in English only: write the Vietnamese message (update) "
                "before it can sound; nothing foreign is read to villagers unasked"
            )
        if a["test"] and any(
            "device" not in t and "zone" not in t for t in json.loads(a["targets"])
        ):
            raise Conflict(
                "a test or exercise alert sounds only on chosen test speakers: "
                "target devices or a test zone, not whole hamlets or the commune"
            )
        now = self.clock.now_us()
        if a["expires_us"] <= now:
            self._end(alert_id, AlertStatus.EXPIRED, "expired before it was confirmed", actor)
            raise Conflict("the alert expired before it was confirmed")
        bid = self._air(a, "initial")
        nxt = next_airing(now, a["reair_hours"], self._zone(a)) if a["reair_hours"] else None
        with self.db.atomic():
            self.db.table("alerts").update(
                alert_id,
                {"status": AlertStatus.ACTIVE.value, "confirmed_us": now, "next_airing_us": nxt},
            )
            self._event(alert_id, "confirm", actor, _via(f"broadcast {bid}", via))
        self.audit("alert.confirm", alert=alert_id, broadcast=bid, **_src(via))
        self._wake.set()
        return self.get(alert_id)

    def _air(
        self,
        a: dict[str, Any],
        kind: str,
        media_id: str | None = None,
        targets: Resolution | None = None,
    ) -> str:
        resolution = targets or self._resolution(a)
        media = self.store.media(media_id or a["media_id"])
        bid = self.dispatcher.start(
            BroadcastRequest(media, resolution, Priority.EMERGENCY, a["title"])
        )
        self.db.table("alert_broadcasts").insert(
            {"alert_id": a["id"], "broadcast_id": bid, "kind": kind, "at_us": self.clock.now_us()}
        )
        return bid

    def _resolution(self, a: dict[str, Any]) -> Resolution:
        cached = self._resolutions.get(a["id"])
        if cached is not None:
            return cached
        targets = [Target(**t) for t in json.loads(a["targets"])]
        resolution = resolve_in(self.store, targets)
        self._resolutions[a["id"]] = resolution
        return resolution

    # --- ending and changing -----------------------------------------------------------

    def _stop_running(self, alert_id: str) -> int:
        stopped = 0
        for r in self.store.query(
            "SELECT ab.broadcast_id FROM alert_broadcasts ab JOIN broadcasts b"
            " ON b.id = ab.broadcast_id WHERE ab.alert_id=? AND b.status='streaming'",
            [alert_id],
        ):
            stopped += int(self.dispatcher.stop(r["broadcast_id"]))
        return stopped

    def cancel(self, alert_id: str, actor: str = "api", reason: str = "") -> dict[str, Any]:
        """Stop it everywhere now; no more re-airing."""
        a = self._row(alert_id)
        if a["status"] in ENDED:
            raise Conflict(f"this alert is already {a['status']}")
        stopped = self._stop_running(alert_id)
        self._end(alert_id, AlertStatus.CANCELLED, reason or "cancelled", actor, stopped)
        self.audit("alert.cancel", alert=alert_id, stopped=stopped, reason=reason)
        return self.get(alert_id)

    async def update(
        self, alert_id: str, changes: AlertRequest, actor: str = "api", via: str = ""
    ) -> dict[str, Any]:
        """Replace the message (and level, siren, repeat); an active alert airs it now."""
        a = self._row(alert_id)
        if a["status"] in ENDED:
            raise Conflict(f"this alert is already {a['status']}")
        changes.commune = a["commune_id"]
        columns, resolution = await self._prepare(changes)
        self._resolutions[alert_id] = resolution
        with self.db.atomic():
            self.db.table("alerts").update(alert_id, columns)
            self._event(alert_id, "update", actor, _via(f"level {columns['risk_level']}", via))
        if a["status"] == AlertStatus.ACTIVE:
            self._stop_running(alert_id)
            self._air(self._row(alert_id), "update")
        self.audit("alert.update", alert=alert_id, **_src(via))
        return self.get(alert_id)

    async def all_clear(self, alert_id: str, actor: str = "api") -> dict[str, Any]:
        """The danger is over: stop the alert, play the all-clear tone and text."""
        a = self._row(alert_id)
        if a["status"] != AlertStatus.ACTIVE:
            raise Conflict(f"this alert is {a['status']}; only an active alert can be cleared")
        place = (
            json.loads(a["fields"]).get("place")
            or self.store.require_commune(a["commune_id"])["name"]
        )
        media = await self.library.add_alert_audio(
            siren="all-clear",
            text=ALL_CLEAR_TEXT[0].format(place=place),
            media_id=None,
            repeat=1,
            commune_id=a["commune_id"],
            title=f"Kết thúc: {a['title']}"[:200],
            loudness_lufs=self.loudness_lufs,
        )
        self._stop_running(alert_id)
        bid = self._air(a, "all_clear", media_id=media["id"])
        self._end(alert_id, AlertStatus.ALL_CLEAR, f"all clear (broadcast {bid})", actor)
        self.audit("alert.all_clear", alert=alert_id, broadcast=bid)
        return self.get(alert_id)

    def _end(
        self, alert_id: str, status: AlertStatus, reason: str, actor: str, stopped: int = 0
    ) -> None:
        with self.db.atomic():
            self.db.table("alerts").update(
                alert_id,
                {
                    "status": status.value,
                    "ended_us": self.clock.now_us(),
                    "end_reason": reason,
                    "next_airing_us": None,
                },
            )
            detail = reason + (f"; stopped {stopped} broadcast(s)" if stopped else "")
            self._event(alert_id, status.value, actor, detail)

    def _event(self, alert_id: str, action: str, actor: str, detail: str = "") -> None:
        logger.info("alert %s %s by %s: %s", alert_id, action, actor, detail)
        self.db.table("alert_events").insert(
            {
                "alert_id": alert_id,
                "at_us": self.clock.now_us(),
                "action": action,
                "actor": actor,
                "detail": detail,
            }
        )

    # --- re-airing, expiry, speakers coming back -----------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Re-air active alerts on their hours and expire them; runs with the app."""
        self.loop_token = anyio.lowlevel.current_token()  # for callers on other threads
        task_status.started()
        while True:
            try:
                self.tick()
            except LoaError as exc:  # a broker outage must not end re-airing for good
                logger.error("alert re-airing failed: %s", exc.message)
            except Exception:  # a bug must not take the controller down with it
                logger.exception("alert re-airing failed unexpectedly")
            self._wake = anyio.Event()
            with anyio.move_on_after(self._sleep_s()):
                await self._wake.wait()

    def _zone(self, a: dict[str, Any]) -> str:
        """Re-airs fall on the hours of the alert's commune, not the controller's zone."""
        rows = self.store.query("SELECT timezone FROM communes WHERE id=?", [a["commune_id"]])
        return str(rows[0]["timezone"]) if rows and rows[0]["timezone"] else self.timezone

    def _sleep_s(self) -> float:
        now = self.clock.now_us()
        rows = self.store.query(
            "SELECT MIN(MIN(COALESCE(next_airing_us, expires_us)), MIN(expires_us)) AS t"
            " FROM alerts WHERE status='active'"
        )
        t = rows[0]["t"] if rows else None
        return 30.0 if t is None else min(30.0, max(0.05, (t - now) / 1e6))

    def tick(self) -> int:
        """Expire what is over, re-air what is due; returns how many broadcasts started."""
        now = self.clock.now_us()
        started = 0
        for a in self.store.query("SELECT * FROM alerts WHERE status='active'"):
            if a["expires_us"] <= now:
                self._stop_running(a["id"])
                self._end(a["id"], AlertStatus.EXPIRED, "expired", "system")
                continue
            if a["next_airing_us"] and a["next_airing_us"] <= now:
                bid = self._air(a, "reair")
                nxt = next_airing(now, a["reair_hours"], self._zone(a))
                self.db.table("alerts").update(a["id"], {"next_airing_us": nxt})
                self._event(a["id"], "reair", "system", f"broadcast {bid}")
                started += 1
        return started

    def speaker_online(self, commune: str, device: str) -> None:
        """A speaker came back: play it every active alert it has not played yet."""
        for a in self.store.query(
            "SELECT * FROM alerts WHERE status='active' AND commune_id=?", [commune]
        ):
            if not any(d.id == device for d in self._resolution(a).devices):
                continue
            played = self.store.query(
                "SELECT 1 FROM deliveries d JOIN alert_broadcasts ab"
                " ON ab.broadcast_id = d.broadcast_id WHERE ab.alert_id=? AND d.device_id=?"
                " AND d.outcome IN ('played', 'partial', 'pending') LIMIT 1",
                [a["id"], device],
            )
            if played:
                continue
            only = resolve_in(self.store, [Target(commune, device=device)])
            try:
                bid = self._air(a, "reconnect", targets=only)
            except LoaError as exc:
                logger.warning("could not replay alert %s to %s: %s", a["id"], device, exc)
                continue
            self._event(a["id"], "replay", "system", f"{device} came back online: {bid}")

    # --- reading -------------------------------------------------------------------------

    def _row(self, alert_id: str) -> dict[str, Any]:
        rows = self.store.query("SELECT * FROM alerts WHERE id=?", [alert_id])
        if not rows:
            raise NotFound(f"alert {alert_id!r} does not exist")
        return rows[0]

    def list(self, commune: str, limit: int = 50) -> list[dict[str, Any]]:
        self.store.require_commune(commune)
        rows = self.store.query(
            "SELECT * FROM alerts WHERE commune_id=? ORDER BY created_us DESC LIMIT ?",
            [commune, limit],
        )
        return [_public(r) for r in rows]

    def active(self, communes: Sequence[str]) -> Rows:
        """Alerts sounding now in these communes, as the red banner shows them: what,
        where (places by name), since when."""
        if not communes:
            return []
        marks = ",".join("?" * len(communes))
        rows = self.store.query(
            f"SELECT * FROM alerts WHERE status='active' AND commune_id IN ({marks})"  # noqa: S608
            " ORDER BY confirmed_us DESC",
            communes,
        )
        out = []
        for r in rows:
            a = _public(r)
            names = {h["id"]: h["name"] for h in self.store.hamlets(r["commune_id"])}
            commune = self.store.require_commune(r["commune_id"])["name"]
            places = [
                names.get(t.get("hamlet", ""), "") or t.get("zone") or t.get("device") or commune
                for t in a["targets"]
            ]
            out.append(
                {
                    "id": a["id"],
                    "commune_id": a["commune_id"],
                    "type_name": a["type_name"],
                    "risk": a["risk"],
                    "title": a["title"],
                    "where": ", ".join(dict.fromkeys(places)),
                    "since_us": a["confirmed_us"],
                }
            )
        return out

    def get(self, alert_id: str) -> dict[str, Any]:
        """The alert with per-speaker accountability and a per-hamlet board."""
        a = _public(self._row(alert_id))
        a["broadcasts"] = self.store.query(
            "SELECT ab.broadcast_id, ab.kind, ab.at_us, b.status, b.start_pts_us, b.end_pts_us"
            " FROM alert_broadcasts ab JOIN broadcasts b ON b.id = ab.broadcast_id"
            " WHERE ab.alert_id=? ORDER BY ab.at_us",
            [alert_id],
        )
        rows = self.store.query(
            "SELECT d.device_id, d.hamlet_id, d.online_at_start, d.outcome, d.started_us,"
            " d.frames_played, d.frames_missing, d.reason, ab.kind, ab.at_us"
            " FROM deliveries d JOIN alert_broadcasts ab ON ab.broadcast_id = d.broadcast_id"
            " WHERE ab.alert_id=? ORDER BY ab.at_us",
            [alert_id],
        )
        a["speakers"] = speaker_board(rows)
        try:
            devices = self._resolution(a).devices
        except LoaError:  # a target removed since: the board shows what was delivered
            devices = ()
        expected: dict[str, int] = {}
        for d in devices:
            expected[d.hamlet_id] = expected.get(d.hamlet_id, 0) + 1
        names = {h["id"]: h["name"] for h in self.store.hamlets(a["commune_id"])}
        a["speaker_count"] = len(devices)
        a["hamlets"] = hamlet_board(a["speakers"], expected, names)
        a["events"] = self.store.query(
            "SELECT at_us, action, actor, detail FROM alert_events WHERE alert_id=?"
            " ORDER BY at_us, rowid",
            [alert_id],
        )
        return a


def _via(detail: str, via: str) -> str:
    return f"{detail} ({via})" if via else detail


def _src(via: str) -> dict[str, str]:
    """Audit fields: the account is the audit actor; a CAP sender goes beside it."""
    return {"via": via} if via else {}
