"""What alerts do on their own: re-air on their hours, expire, and replay to a speaker
that comes back online without having played them. Runs with the app."""

from __future__ import annotations

import logging

import anyio
import anyio.lowlevel

from loa.clock import Clock
from loa.errors import LoaError

from ..places.directory import resolve_in
from ..places.targeting import Target
from ..store.store import Store
from .model import AlertStatus, next_airing
from .records import AlertRecords

logger = logging.getLogger(__name__)


class Reairing:
    def __init__(self, records: AlertRecords, store: Store, clock: Clock) -> None:
        self.records = records
        self.store = store
        self.clock = clock
        self._wake = anyio.Event()
        self.loop_token: anyio.lowlevel.EventLoopToken | None = None

    def wake(self) -> None:
        """An alert became active (or changed): look at the timetable again now."""
        self._wake.set()

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
        rec = self.records
        now = self.clock.now_us()
        started = 0
        for a in self.store.query("SELECT * FROM alerts WHERE status='active'"):
            if a["expires_us"] <= now:
                rec.stop_running(a["id"])
                rec.end(a["id"], AlertStatus.EXPIRED, "expired", "system")
                continue
            if a["next_airing_us"] and a["next_airing_us"] <= now:
                bid = rec.air(a, "reair")
                nxt = next_airing(now, a["reair_hours"], rec.zone(a))
                rec.db.table("alerts").update(a["id"], {"next_airing_us": nxt})
                rec.event(a["id"], "reair", "system", f"broadcast {bid}")
                started += 1
        return started

    def speaker_online(self, commune: str, device: str) -> None:
        """A speaker came back: play it every active alert it has not played yet."""
        rec = self.records
        for a in self.store.query(
            "SELECT * FROM alerts WHERE status='active' AND commune_id=?", [commune]
        ):
            if not any(d.id == device for d in rec.resolution(a).devices):
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
                bid = rec.air(a, "reconnect", targets=only)
            except LoaError as exc:
                logger.warning("could not replay alert %s to %s: %s", a["id"], device, exc)
                continue
            rec.event(a["id"], "replay", "system", f"{device} came back online: {bid}")
