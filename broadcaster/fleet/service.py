"""Fleet upkeep: the controller's own runs (for "unknown" uptime), alarms raised and
cleared from device facts, signed commands with acknowledgement and timeout."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from devices.frames import Codec, Frame, FrameType, encode_frame
from devices.messages import Ack, Command, dump
from devices.signing import Signer
from devices.topics import DeviceTopic, device_topic
from devices.uptime import Interval, Uptime, uptime
from loa.clock import Clock
from loa.errors import BrokerError, FieldError, InvalidInput, NotFound, is_disk_full

from ..settings import FleetSettings
from ..store.store import Store
from .alarms import KINDS, evaluate
from .checks import gather

logger = logging.getLogger(__name__)
#: Up to this many alarm changes in one check are logged one by one.
LOG_EACH = 20

Publish = Callable[[str, bytes], Awaitable[None]]
ACTIONS = ("set_volume", "test_tone", "reboot", "resync_clock", "stop", "update_config")


class FleetService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: FleetSettings,
        signer: Signer,
        publish: Publish,
        *,
        audit: Callable[..., None] = lambda *a, **k: None,
    ) -> None:
        self.store = store
        self.db = store.db
        self.clock = clock
        self.settings = settings
        self.signer = signer
        self.publish = publish
        self.audit = audit
        self._run: int | None = None
        self.webhook_failures = 0
        self._watchers: list[MemoryObjectSendStream[dict[str, Any]]] = []

    # --- the controller's own runs ---------------------------------------------------

    def start_run(self) -> None:
        now = self.clock.now_us()
        self.db.table("controller_runs").insert({"started_us": now, "alive_us": now}, replace=True)
        self._run = now

    def alive(self) -> None:
        if self._run is not None:
            self.db.execute(
                "UPDATE controller_runs SET alive_us=? WHERE started_us=?",
                [self.clock.now_us(), self._run],
            )

    def watched(self, store: Store | None = None) -> list[Interval]:
        now = self.clock.now_us()
        return [
            (r["started_us"], now if r["started_us"] == self._run else r["alive_us"])
            for r in (store or self.store).query(
                "SELECT * FROM controller_runs ORDER BY started_us"
            )
        ]

    # --- uptime ------------------------------------------------------------------------

    def device_uptime(
        self,
        device: str,
        start: int,
        end: int,
        watched: list[Interval],
        store: Store | None = None,
    ) -> Uptime:
        store = store or self.store
        events = [
            (r["at_us"], bool(r["online"]))
            for r in store.query(
                "SELECT at_us, online FROM presence_log WHERE device_id=? AND at_us>=? AND at_us<?"
                " ORDER BY at_us",
                [device, start, end],
            )
        ]
        prior = store.query(
            "SELECT online FROM presence_log WHERE device_id=? AND at_us<? ORDER BY at_us DESC"
            " LIMIT 1",
            [device, start],
        )
        return uptime(events, bool(prior and prior[0]["online"]), watched, start, end)

    def area_uptime(
        self, commune: str, start: int, end: int, store: Store | None = None
    ) -> dict[str, Any]:
        """Per speaker, per hamlet and for the commune: online, offline, unknown, ratio.

        ``store``: a reader (:meth:`Store.read`) when run off the event loop."""
        store = store or self.store
        if end <= start:
            raise InvalidInput(
                "the period must end after it starts",
                errors=[FieldError("to_us", "before from_us", "range")],
            )
        store.require_commune(commune)
        watched = self.watched(store)
        hamlets: dict[str, Uptime] = {}
        devices = {}
        total = Uptime(0, 0, 0)
        for d in store.devices(commune):
            u = self.device_uptime(d.id, start, end, watched, store)
            devices[d.id] = u.as_dict()
            hamlets[d.hamlet_id] = hamlets.get(d.hamlet_id, Uptime(0, 0, 0)) + u
            total = total + u
        return {
            "commune": total.as_dict(),
            "hamlets": {h: u.as_dict() for h, u in sorted(hamlets.items())},
            "devices": devices,
        }

    # --- alarms ---------------------------------------------------------------------------

    def check(self) -> list[dict[str, Any]]:
        """Raise alarms whose rule now holds, clear those whose rule no longer does."""
        now = self.clock.now_us()
        return self._write(_plan(self.store, self.settings, now, self._run))

    async def check_off_loop(self) -> list[dict[str, Any]]:
        """:meth:`check` with its reads and the rules over every speaker in a worker
        thread on a reader connection (the loop keeps streaming); only the alarm rows
        are written here, in one transaction of two statements."""
        now = self.clock.now_us()
        return self._write(await self.store.read(_plan, self.settings, now, self._run))

    def _write(self, plan: AlarmPlan) -> list[dict[str, Any]]:
        """Write the plan as far as it still holds: no alarm for a speaker deleted (or
        moved to another commune) since the snapshot, no second clear of an alarm
        cleared meanwhile; the events returned are those of the rows written."""
        raised: list[dict[str, Any]] = []
        cleared: list[tuple[int, str]] = []
        if plan.raised or plan.cleared:
            with self.db.atomic():  # one transaction; reads and writes whatever the count
                if plan.raised:
                    where = {
                        (r[0], r[1]) for r in self.db.execute("SELECT id, commune_id FROM devices")
                    }
                    raised = [a for a in plan.raised if (a["device_id"], a["commune_id"]) in where]
                if plan.cleared:
                    still = {
                        r[0]
                        for r in self.db.execute("SELECT id FROM alarms WHERE cleared_us IS NULL")
                    }
                    cleared = [c for c in plan.cleared if c[1] in still]
                if raised:  # plain SQL: a whole fleet's alarms at once
                    cols = list(raised[0])
                    self.db.conn.executemany(
                        f"INSERT INTO alarms ({', '.join(cols)})"  # noqa: S608
                        f" VALUES ({', '.join('?' * len(cols))})",
                        [[a[c] for c in cols] for a in raised],
                    )
                if cleared:
                    self.db.conn.executemany(
                        "UPDATE alarms SET cleared_us=? WHERE id=? AND cleared_us IS NULL",
                        cleared,
                    )
        written = {a["id"] for a in raised} | {i for _, i in cleared}
        events = [e for e in plan.events if e["id"] in written]
        if len(events) <= LOG_EACH:
            for e in events:
                logger.warning(
                    "alarm %s: %s %s %s", e["event"], e["device_id"], e["kind"], e["detail"]
                )
        else:  # a whole fleet at once (a broker restart): one line, not thousands
            tally = Counter((e["event"], e["kind"]) for e in events)
            logger.warning(
                "alarms: %s",
                ", ".join(f"{n} {kind} {event}" for (event, kind), n in sorted(tally.items())),
            )
        return events

    def alarms(self, commune: str, open_only: bool) -> list[dict[str, Any]]:
        self.store.require_commune(commune)
        sql = "SELECT * FROM alarms WHERE commune_id=?"
        if open_only:
            sql += " AND cleared_us IS NULL"
        return self.store.query(sql + " ORDER BY raised_us DESC LIMIT 1000", [commune])

    def ack(self, alarm_id: str, who: str) -> dict[str, Any]:
        rows = self.store.query("SELECT * FROM alarms WHERE id=?", [alarm_id])
        if not rows:
            raise NotFound(f"alarm {alarm_id!r} does not exist")
        if rows[0]["acked_us"] is None:
            self.db.execute(
                "UPDATE alarms SET acked_us=?, acked_by=? WHERE id=?",
                [self.clock.now_us(), who, alarm_id],
            )
            self.audit("alarm.ack", alarm=alarm_id, device=rows[0]["device_id"])
        return self.store.query("SELECT * FROM alarms WHERE id=?", [alarm_id])[0]

    async def notify(self, events: list[dict[str, Any]]) -> None:
        """POST raised/cleared alarms to the webhook, if one is set (failures only logged)."""
        if not events or not self.settings.webhook_url:
            return
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                await client.post(self.settings.webhook_url, json={"alarms": events})
        except httpx.HTTPError as exc:
            self.webhook_failures += 1
            logger.warning("alarm webhook failed: %s", exc)

    # --- commands -------------------------------------------------------------------------

    async def command(
        self, device: str, action: str, args: dict[str, int | str | bool], actor: str
    ) -> dict[str, Any]:
        commune = self.store.device_commune(device)
        if commune is None:
            raise NotFound(f"speaker {device!r} does not exist")
        if action not in ACTIONS:
            raise InvalidInput(
                f"unknown action {action!r}",
                errors=[FieldError("action", f"one of {', '.join(ACTIONS)}", "unknown")],
            )
        now = self.clock.now_us()
        expires = now + int(self.settings.command_timeout_s * 1e6)
        cid = uuid.uuid4()
        cmd = Command(id=str(cid), action=action, args=args, expires_us=expires)  # type: ignore[arg-type]
        topic = device_topic(commune, device, DeviceTopic.CMD)
        frame = Frame(FrameType.COMMAND, cid, 0, now, now, dump(cmd), Codec.NONE)
        row = {
            "id": str(cid),
            "device_id": device,
            "action": action,
            "args": json.dumps(args),
            "actor": actor,
            "sent_us": now,
            "expires_us": expires,
            "status": "sent",
            "detail": "",
            "acked_us": None,
        }
        self.db.table("commands").insert(row, pk="id")
        try:
            await self.publish(topic, encode_frame(frame, self.signer, topic))
        except BrokerError as exc:
            self.db.execute(
                "UPDATE commands SET status='failed', detail=? WHERE id=?", [exc.message, str(cid)]
            )
            raise BrokerError(
                f"the MQTT broker is not reachable; not sent ({exc.message})"
            ) from exc
        self.audit("device.command", device=device, command=str(cid), op=action)
        return row

    def on_ack(self, device: str, ack: Ack) -> None:
        self.db.execute(
            "UPDATE commands SET status=?, detail=?, acked_us=? WHERE id=? AND device_id=?"
            " AND status='sent'",
            ["ok" if ack.ok else "failed", ack.detail, self.clock.now_us(), ack.id, device],
        )

    def expire(self) -> int:
        return int(
            self.db.execute(
                "UPDATE commands SET status='timeout', detail='no acknowledgement in time'"
                " WHERE status='sent' AND expires_us<?",
                [self.clock.now_us()],
            ).rowcount
        )

    def commands(self, device: str) -> list[dict[str, Any]]:
        return self.store.query(
            "SELECT * FROM commands WHERE device_id=? ORDER BY sent_us DESC LIMIT 200", [device]
        )

    def prune(self) -> int:
        """Bound the telemetry series: one row per speaker per hour after
        ``telemetry_full_days``, nothing after ``telemetry_keep_days``."""
        now = self.clock.now_us()
        keep = now - int(self.settings.telemetry_keep_days * 86400e6)
        full = now - int(self.settings.telemetry_full_days * 86400e6)
        with self.db.atomic():
            gone = self.db.execute("DELETE FROM telemetry WHERE at_us<?", [keep]).rowcount
            gone += self.db.execute(
                "DELETE FROM telemetry WHERE at_us<? AND rowid NOT IN (SELECT MAX(rowid)"
                " FROM telemetry WHERE at_us<? GROUP BY device_id, at_us / 3600000000)",
                [full, full],
            ).rowcount
        return int(gone)

    def watch(self) -> MemoryObjectReceiveStream[dict[str, Any]]:
        """A live feed of alarms raised and cleared (for the UI); close it when done."""
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](100)
        self._watchers.append(send)
        return receive

    def _push(self, events: list[dict[str, Any]]) -> None:
        for w in list(self._watchers):
            for e in events:
                try:
                    w.send_nowait(e)
                except anyio.WouldBlock:  # a slow watcher misses events, never blocks us
                    break
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    self._watchers.remove(w)
                    break

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        self.start_run()
        task_status.started()
        beat, pruned = 0.0, 0
        while True:
            try:
                if beat <= 0:
                    self.alive()
                    beat = self.settings.heartbeat_s
                events = await self.check_off_loop()
                self.expire()
                if self.clock.now_us() - pruned > 3600e6:
                    self.prune()
                    pruned = self.clock.now_us()
            except Exception as exc:  # a bad row must not stop the checks
                if is_disk_full(exc):  # one line, not a traceback every few seconds
                    logger.error("fleet check not recorded: the server's disk is full")
                else:
                    logger.exception("fleet check failed")
                events = []
            self._push(events)
            await self.notify(events)
            await self.clock.sleep(self.settings.check_s)
            beat -= self.settings.check_s


@dataclass(frozen=True)
class AlarmPlan:
    """What one fleet check changes: alarm rows to insert, (cleared_us, id) to clear,
    and the events telling of both."""

    raised: list[dict[str, Any]]
    cleared: list[tuple[int, str]]
    events: list[dict[str, Any]]


def _plan(store: Store, settings: FleetSettings, now: int, run: int | None) -> AlarmPlan:
    """Read the fleet (six queries) and its open alarms, and apply the rules to every
    speaker. Reads only: runs in a worker thread on a reader connection."""
    snap = gather(store, settings, now, run)
    open_alarms: dict[tuple[str, str], dict[str, Any]] = {
        (a["device_id"], a["kind"]): a
        for a in store.query("SELECT * FROM alarms WHERE cleared_us IS NULL")
    }
    kinds_open: dict[str, list[str]] = {}
    for dev, kind in open_alarms:
        kinds_open.setdefault(dev, []).append(kind)
    plan = AlarmPlan([], [], [])
    for d in snap.devices:
        holds = evaluate(snap.states[d["id"]], now, settings)
        for kind, detail in holds.items():
            if (d["id"], kind) in open_alarms:
                continue
            alarm = {
                "id": str(uuid.uuid4()),
                "device_id": d["id"],
                "commune_id": d["commune_id"],
                "hamlet_id": d["hamlet_id"],
                "kind": kind,
                "detail": detail[:300],
                "raised_us": now,
                "cleared_us": None,
                "acked_us": None,
                "acked_by": None,
            }
            plan.raised.append(alarm)
            plan.events.append({"event": "raised", **alarm, "what": KINDS[kind]})
        for kind in [k for k in kinds_open.get(d["id"], []) if k not in holds]:
            a = open_alarms[(d["id"], kind)]
            plan.cleared.append((now, a["id"]))
            plan.events.append({"event": "cleared", **a, "cleared_us": now, "what": KINDS[kind]})
    return plan
