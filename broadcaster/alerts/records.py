"""An alert's records and airings: its row, whom it reaches, its events, ending it, and
starting its emergency broadcasts (the steps the service and the re-airing share).

Every change is an ``alert_events`` row (who, when, what), logged by this module's
logger as well.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from devices.frames import Priority
from loa.clock import Clock
from loa.errors import NotFound

from ..broadcasts.dispatcher import BroadcastRequest, Dispatcher
from ..places.directory import resolve_in
from ..places.targeting import Resolution, Target
from ..store.store import Store
from .model import AlertStatus

logger = logging.getLogger(__name__)


class AlertRecords:
    def __init__(self, store: Store, dispatcher: Dispatcher, clock: Clock, timezone: str) -> None:
        self.store = store
        self.db = store.db
        self.dispatcher = dispatcher
        self.clock = clock
        self.timezone = timezone  # the controller's; a commune's own zone comes first
        self.resolutions: dict[str, Resolution] = {}  # alert id → resolved at creation

    def row(self, alert_id: str) -> dict[str, Any]:
        rows = self.store.query("SELECT * FROM alerts WHERE id=?", [alert_id])
        if not rows:
            raise NotFound(f"alert {alert_id!r} does not exist")
        return rows[0]

    def resolution(self, a: dict[str, Any]) -> Resolution:
        """The speakers an alert row targets: as resolved at creation, else now."""
        cached = self.resolutions.get(a["id"])
        if cached is not None:
            return cached
        targets = [Target(**t) for t in json.loads(a["targets"])]
        resolution = resolve_in(self.store, targets)
        self.resolutions[a["id"]] = resolution
        return resolution

    def zone(self, a: dict[str, Any]) -> str:
        """Re-airs fall on the hours of the alert's commune, not the controller's zone."""
        rows = self.store.query("SELECT timezone FROM communes WHERE id=?", [a["commune_id"]])
        return str(rows[0]["timezone"]) if rows and rows[0]["timezone"] else self.timezone

    def air(
        self,
        a: dict[str, Any],
        kind: str,
        media_id: str | None = None,
        targets: Resolution | None = None,
    ) -> str:
        """Start one emergency broadcast of the alert (or of ``media_id``); its id."""
        resolution = targets or self.resolution(a)
        media = self.store.media(media_id or a["media_id"])
        bid = self.dispatcher.start(
            BroadcastRequest(media, resolution, Priority.EMERGENCY, a["title"])
        )
        self.db.table("alert_broadcasts").insert(
            {"alert_id": a["id"], "broadcast_id": bid, "kind": kind, "at_us": self.clock.now_us()}
        )
        return bid

    def stop_running(self, alert_id: str) -> int:
        """Stop the alert's broadcasts still streaming; how many were."""
        stopped = 0
        for r in self.store.query(
            "SELECT ab.broadcast_id FROM alert_broadcasts ab JOIN broadcasts b"
            " ON b.id = ab.broadcast_id WHERE ab.alert_id=? AND b.status='streaming'",
            [alert_id],
        ):
            stopped += int(self.dispatcher.stop(r["broadcast_id"]))
        return stopped

    def end(
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
            self.event(alert_id, status.value, actor, detail)

    def event(self, alert_id: str, action: str, actor: str, detail: str = "") -> None:
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
