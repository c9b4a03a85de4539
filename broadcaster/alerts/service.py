"""Emergency alerts: create → confirm → sound; cancel, update, all-clear; re-air; replay.

An alert's audio (siren, then the message read ``repeat`` times) is rendered and
encoded when the alert is *created*, so *confirm* only starts a stream of audio that is
already on disk: the path from confirm to the first publish reads one file and
publishes; the per-speaker delivery rows are written after the first frames are out.

Every change is an ``alert_events`` row (who, when, what) as well as an audit line.
:class:`AlertService` is what the API, the pages and CAP import call; it takes the
operators' steps itself and wires the rest: checking and rendering a request
(:mod:`.prepare`), the rows, events and airings (:mod:`.records`), reading
(:mod:`.views`) and what alerts do on their own (:mod:`.reair`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.lowlevel

from loa.clock import Clock
from loa.errors import Conflict

from ..broadcasts.dispatcher import Dispatcher
from ..broadcasts.ledger import Ledger
from ..library.service import Library
from ..places.targeting import Target
from ..store.store import Store
from .model import ALL_CLEAR_TEXT, AlertStatus, next_airing
from .prepare import AlertRenderer, AlertRequest
from .reair import Reairing
from .records import AlertRecords
from .views import AlertViews, Rows

ENDED = (AlertStatus.CANCELLED, AlertStatus.ALL_CLEAR, AlertStatus.EXPIRED)


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
        self.audit = audit
        self.loudness_lufs = loudness_lufs  # alerts are rendered louder than bulletins
        self.records = AlertRecords(store, dispatcher, clock, timezone)
        self.renderer = AlertRenderer(
            store,
            library,
            clock,
            default_expiry_s=default_expiry_s,
            loudness_lufs=loudness_lufs,
        )
        self.views = AlertViews(self.records)
        self.reairing = Reairing(self.records, store, clock)

    # --- creating and sounding -------------------------------------------------------

    def by_key(self, commune: str, client_key: str) -> dict[str, Any] | None:
        """The alert a form already created with this key (None if none)."""
        return self.views.by_key(commune, client_key)

    def targets_of(self, alert_id: str) -> list[Target]:
        """Where an alert sounds (for area checks before acting on it)."""
        return [Target(**t) for t in json.loads(self.records.row(alert_id)["targets"])]

    async def create(self, req: AlertRequest, actor: str = "api", via: str = "") -> dict[str, Any]:
        """Validate, render and encode the alert; it waits (draft) for a confirm.

        ``actor`` is the account; ``via`` says how it came (a CAP document and sender)."""
        same = self.by_key(req.commune, req.client_key)
        if same is not None:
            return same
        columns, resolution = await self.renderer.prepare(req)
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
            self.records.event(
                alert_id, "create", actor, _via(f"{req.type.value} level {req.risk_level}", via)
            )
        self.records.resolutions[alert_id] = resolution
        self.audit("alert.create", alert=alert_id, commune=req.commune, **_src(via))
        return self.get(alert_id)

    def confirm(self, alert_id: str, actor: str = "api", via: str = "") -> dict[str, Any]:
        """The second step: sound it now on every targeted speaker."""
        rec = self.records
        a = rec.row(alert_id)
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
            rec.end(alert_id, AlertStatus.EXPIRED, "expired before it was confirmed", actor)
            raise Conflict("the alert expired before it was confirmed")
        bid = rec.air(a, "initial")
        nxt = next_airing(now, a["reair_hours"], rec.zone(a)) if a["reair_hours"] else None
        with self.db.atomic():
            self.db.table("alerts").update(
                alert_id,
                {"status": AlertStatus.ACTIVE.value, "confirmed_us": now, "next_airing_us": nxt},
            )
            rec.event(alert_id, "confirm", actor, _via(f"broadcast {bid}", via))
        self.audit("alert.confirm", alert=alert_id, broadcast=bid, **_src(via))
        self.reairing.wake()
        return self.get(alert_id)

    # --- ending and changing -----------------------------------------------------------

    def cancel(self, alert_id: str, actor: str = "api", reason: str = "") -> dict[str, Any]:
        """Stop it everywhere now; no more re-airing."""
        a = self.records.row(alert_id)
        if a["status"] in ENDED:
            raise Conflict(f"this alert is already {a['status']}")
        stopped = self.records.stop_running(alert_id)
        self.records.end(alert_id, AlertStatus.CANCELLED, reason or "cancelled", actor, stopped)
        self.audit("alert.cancel", alert=alert_id, stopped=stopped, reason=reason)
        return self.get(alert_id)

    async def update(
        self, alert_id: str, changes: AlertRequest, actor: str = "api", via: str = ""
    ) -> dict[str, Any]:
        """Replace the message (and level, siren, repeat); an active alert airs it now."""
        rec = self.records
        a = rec.row(alert_id)
        if a["status"] in ENDED:
            raise Conflict(f"this alert is already {a['status']}")
        changes.commune = a["commune_id"]
        columns, resolution = await self.renderer.prepare(changes)
        rec.resolutions[alert_id] = resolution
        with self.db.atomic():
            self.db.table("alerts").update(alert_id, columns)
            rec.event(alert_id, "update", actor, _via(f"level {columns['risk_level']}", via))
        if a["status"] == AlertStatus.ACTIVE:
            rec.stop_running(alert_id)
            rec.air(rec.row(alert_id), "update")
        self.audit("alert.update", alert=alert_id, **_src(via))
        return self.get(alert_id)

    async def all_clear(self, alert_id: str, actor: str = "api") -> dict[str, Any]:
        """The danger is over: stop the alert, play the all-clear tone and text."""
        rec = self.records
        a = rec.row(alert_id)
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
        rec.stop_running(alert_id)
        bid = rec.air(a, "all_clear", media_id=media["id"])
        rec.end(alert_id, AlertStatus.ALL_CLEAR, f"all clear (broadcast {bid})", actor)
        self.audit("alert.all_clear", alert=alert_id, broadcast=bid)
        return self.get(alert_id)

    # --- on their own (in .reair) --------------------------------------------------------

    @property
    def loop_token(self) -> anyio.lowlevel.EventLoopToken | None:
        """The event loop :meth:`run` runs on, for callers on other threads."""
        return self.reairing.loop_token

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Re-air active alerts on their hours and expire them; runs with the app."""
        await self.reairing.run(task_status=task_status)

    def tick(self) -> int:
        """Expire what is over, re-air what is due; returns how many broadcasts started."""
        return self.reairing.tick()

    def speaker_online(self, commune: str, device: str) -> None:
        """A speaker came back: play it every active alert it has not played yet."""
        self.reairing.speaker_online(commune, device)

    # --- reading (in .views) -------------------------------------------------------------

    def list(self, commune: str, limit: int = 50) -> Rows:
        return self.views.list(commune, limit)

    def active(self, communes: Sequence[str]) -> Rows:
        """Alerts sounding now in these communes, as the red banner shows them."""
        return self.views.active(communes)

    def get(self, alert_id: str) -> dict[str, Any]:
        """The alert with per-speaker accountability and a per-hamlet board."""
        return self.views.get(alert_id)


def _via(detail: str, via: str) -> str:
    return f"{detail} ({via})" if via else detail


def _src(via: str) -> dict[str, str]:
    """Audit fields: the account is the audit actor; a CAP sender goes beside it."""
    return {"via": via} if via else {}
