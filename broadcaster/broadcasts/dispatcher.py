"""The dispatcher: paces signed frames onto MQTT and keeps the ledger.

One publish per target group per frame (the broker fans out to the speakers); each
group's copy is signed for its own topic. Nothing on the path from "start" to the
first publish loops over devices. Speakers that only decode MP3 get a second stream
(an MP3 "leg") on the same timeline.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from devices.frames import Codec, Frame, FrameType, Priority
from devices.messages import dump
from devices.signing import Signer
from loa.clock import Clock
from loa.errors import BrokerError, LoaError, first_loa_error

from ..places.targeting import Resolution, devices_only
from ..settings import StreamSettings
from ..store.rows import MediaRow
from .ledger import Ledger, delivery_row
from .legs import Leg, StopReason, Timing, end_frame
from .live import LiveBroadcast, LiveRequest, ledger_rows
from .outage import Outage, send_through
from .prefetch import Prefetched
from .renditions import media_legs
from .streams import Publisher, broadcast_row, publish_frame, target_rows

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BroadcastRequest:
    media: MediaRow
    resolution: Resolution
    priority: Priority
    title: str
    volume: int | None = None
    cached: Prefetched | None = None  # armed ahead on the speakers (scheduled firings)
    requested_us: int | None = None  # when it was asked for (a late start is recorded)
    #: Runs in the transaction that records the broadcast (a firing's occurrence row).
    also: Callable[[str], object] | None = None
    #: Too late to stream: record what the speakers that armed it played from cache.
    record_only: bool = False


class Dispatcher:
    def __init__(
        self,
        ledger: Ledger,
        publisher: Publisher,
        signer: Signer,
        clock: Clock,
        settings: StreamSettings,
        qos: int = 1,
    ) -> None:
        self.ledger = ledger
        self.publisher = publisher
        self.signer = signer
        self.clock = clock
        self.settings = settings
        self.qos = qos
        self._tg: TaskGroup | None = None
        self.publishes = 0
        self.before_finalize: Callable[[], object] | None = None
        self._running: dict[str, anyio.CancelScope] = {}  # broadcast id → its stream's scope
        # Who each running stored broadcast reaches (for pre-emption), and the takeover
        # time of those a newer broadcast has pre-empted everywhere.
        self._reach: dict[str, tuple[Priority, frozenset[str]]] = {}
        self._preempted: dict[str, int] = {}
        self._sent: dict[uuid.UUID, int] = {}  # AUDIO frames sent, per stream
        self._live: dict[str, LiveBroadcast] = {}
        self._outages: dict[str, Outage] = {}

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Own the streaming tasks; returns when cancelled (lifespan shutdown)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._tg = None
                tg.cancel_scope.cancel()

    def start(self, req: BroadcastRequest) -> str:
        """Record a broadcast and begin streaming it; returns the broadcast id.

        A prefetched firing (``req.cached``) is already armed on the speakers that said
        so; it streams only to the targeted speakers that did not arm it.
        """
        if self._tg is None:
            raise LoaError("the dispatcher is not running")
        now = self.clock.now_us()
        lead_ms, chunk_ms, first_ms = self.settings.timing(
            req.priority >= Priority.LIVE, req.priority is Priority.EMERGENCY
        )
        timing = Timing(now + lead_ms * 1000, chunk_ms, first_ms)
        cached = req.cached
        if cached is None:
            bid = str(uuid.uuid4())
            legs = self._legs(req, timing, bid)
            streams, start_us, end_us = [], timing.start_us, max(leg.end_us for leg in legs)
        else:
            bid = cached.broadcast_id
            timing = Timing(max(cached.at_us, timing.start_us), chunk_ms, first_ms)
            rest = (
                []
                if req.record_only
                else [d for d in req.resolution.devices if d.id not in cached.armed]
            )
            fallback = req.resolution if not cached.armed else devices_only(req.resolution, rest)
            legs = self._legs(replace(req, resolution=fallback), timing, bid) if rest else []
            streams = [
                {
                    "stream_id": cached.stream_id,
                    "broadcast_id": bid,
                    "codec": "opus",
                    "chunks": cached.chunks,
                }
            ]
            start_us = cached.at_us
            end_us = max([cached.end_us, *(leg.end_us for leg in legs)])
        if legs and not self.publisher.connected:  # (speakers armed ahead need no broker)
            raise BrokerError("the MQTT broker is not reachable; nothing was sent")
        groups = target_rows(req.resolution)
        self.ledger.create(
            {
                **broadcast_row(
                    bid,
                    str(streams[0]["stream_id"]) if streams else str(legs[0].stream_id),
                    media_id=req.media.id,
                    title=req.title,
                    priority=req.priority,
                    resolution=req.resolution,
                    now_us=now,
                    start_us=start_us,
                    end_us=end_us,
                    chunks=cached.chunks if cached else len(legs[0].frames),
                    kind="media",
                ),
                "late_ms": max(0, now - (req.requested_us or now)) // 1000,
            },
            list(req.resolution.communes),
            [],
            streams
            + [
                {
                    "stream_id": str(leg.stream_id),
                    "broadcast_id": bid,
                    "codec": leg.codec,
                    "chunks": len(leg.frames),
                }
                for leg in legs
            ],
            also=req.also,
        )
        logger.info(
            "broadcast %s started: %r, %s, to %s (%d speakers)",
            bid,
            req.title,
            req.priority.name.lower(),
            ", ".join(f"{g['commune']}/{g['kind']}:{g['id'] or '*'}" for g in groups),
            len(req.resolution.devices),
        )
        self._preempt_covered(req, start_us)
        self._reach[bid] = (req.priority, frozenset(d.id for d in req.resolution.devices))
        self._tg.start_soon(self._stream, bid, legs, end_us, req.priority)
        # The per-speaker rows are written once the first frames are on their way: the
        # path from a request to the first publish never loops over devices.
        self._tg.start_soon(self._record_deliveries, bid, req.resolution)
        return bid

    def _preempt_covered(self, req: BroadcastRequest, takeover_us: int) -> None:
        """A broadcast of equal or higher class that reaches every speaker of a running
        one pre-empts it everywhere: its streams stop and END says ``preempted``
        (protocol v1.1). One that reaches only some of them keeps streaming for the
        rest; the pre-empted speakers end it on their own at the takeover time."""
        mine = {d.id for d in req.resolution.devices}
        for bid, (priority, devices) in list(self._reach.items()):
            scope = self._running.get(bid)
            if scope is None or not devices or priority > req.priority or not devices <= mine:
                continue
            self._preempted[bid] = takeover_us
            scope.cancel()

    async def _record_deliveries(self, bid: str, resolution: Resolution) -> None:
        await anyio.lowlevel.checkpoint()
        online = self.ledger.online_now([d.id for d in resolution.devices])
        self.ledger.add_deliveries([delivery_row(bid, d, online) for d in resolution.devices])

    def _legs(self, req: BroadcastRequest, timing: Timing, bid: str) -> list[Leg]:
        return media_legs(
            req.media, req.resolution, timing, req.priority, bid, req.title, req.volume
        )

    async def _send(self, topics: tuple[str, ...], frame: Frame) -> None:
        await self.send_frame(list(topics), frame)

    async def _send_through(self, bid: str, topics: tuple[str, ...], frame: Frame) -> bool:
        """Send a stream frame, riding out a broker outage (:mod:`.outage`)."""
        outage = self._outages.setdefault(bid, Outage())
        grace = self.settings.outage_grace_s
        send = partial(self._send, topics, frame)
        return await send_through(outage, self.publisher, self.clock, grace, bid, frame, send)

    async def send_frame(self, topics: list[str], frame: Frame) -> None:
        """Sign and publish one frame to each group topic."""
        await publish_frame(self.publisher, self.signer, topics, frame, self.qos)
        self.publishes += len(topics)

    def spawn(self, func: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> None:
        """Run a task (a relay) for as long as the dispatcher runs."""
        if self._tg is None:
            raise LoaError("the dispatcher is not running")

        async def run() -> None:
            try:
                await func(*args, **kwargs)
            except LoaError as exc:  # one task's failure never takes the dispatcher down
                logger.error("%s failed: %s", getattr(func, "__name__", func), exc.message)
            except Exception:
                logger.exception("%s failed unexpectedly", getattr(func, "__name__", func))

        self._tg.start_soon(run)

    def stop(self, bid: str) -> bool:
        """Stop a running broadcast (stored, live or relayed); False if it is not running."""
        live = self._live.get(bid)
        if live is not None:
            live.stop_requested.set()
            return True
        scope = self._running.get(bid)
        if scope is None:
            return False
        scope.cancel()
        return True

    def open_live(self, req: LiveRequest) -> LiveBroadcast:
        """Record a live (or relayed) broadcast; the caller pushes packets into it."""
        if self._tg is None:
            raise LoaError("the dispatcher is not running")
        if not self.publisher.connected:
            raise BrokerError("the MQTT broker is not reachable; nothing was sent")
        bid = str(uuid.uuid4())
        live = LiveBroadcast(self, bid, req)
        broadcast, deliveries, streams = ledger_rows(bid, live.stream_id, req, self.clock.now_us())
        self.ledger.create(
            broadcast, list(req.resolution.communes), deliveries, streams, also=req.also
        )
        self._live[bid] = live
        return live

    def finish_later(self, bid: str, end_us: int, status: str, error: str) -> None:
        """After the last frame: wait for proof of play, then close the ledger rows."""
        self._live.pop(bid, None)
        if self._tg is None:  # shutting down: the next start-up sweeps it
            return
        self.ledger.update(bid, status="finishing")
        self._tg.start_soon(self._finish, bid, end_us, status, error)

    async def _finish(self, bid: str, end_us: int, status: str, error: str) -> None:
        try:
            wait = (end_us - self.clock.now_us()) / 1e6 + self.settings.report_grace_s
            await self.clock.sleep(max(0.0, wait))
            if self.before_finalize is not None:
                self.before_finalize()
            self._close(bid, status, error)
        except anyio.get_cancelled_exc_class():
            self._close(bid, "interrupted", "the controller stopped during the broadcast")
            raise

    async def _run_leg(self, bid: str, leg: Leg, priority: Priority) -> None:
        lead_us = (
            self.settings.timing(priority >= Priority.LIVE, priority is Priority.EMERGENCY)[0]
            * 1000
        )
        codec = Codec.OPUS if leg.codec == "opus" else Codec.MP3
        await self._send_through(
            bid,
            leg.topics,
            Frame(
                FrameType.START,
                leg.stream_id,
                0,
                leg.start_us,
                self.clock.now_us(),
                dump(leg.header),
                codec,
                priority,
            ),
        )
        self._sent[leg.stream_id] = 0
        for f in leg.frames:
            wait = (f.pts_us - lead_us - self.clock.now_us()) / 1e6
            if wait > 0:
                await self.clock.sleep(wait)
            await self._send_through(
                bid,
                leg.topics,
                Frame(
                    f.type,
                    f.stream_id,
                    f.seq,
                    f.pts_us,
                    self.clock.now_us(),
                    f.payload,
                    f.codec,
                    priority,
                ),
            )
            self._sent[leg.stream_id] = f.seq
        await self._send_through(bid, leg.topics, self._end_frame(leg, priority, "complete"))

    def _end_frame(
        self, leg: Leg, priority: Priority, reason: StopReason, at_us: int | None = None
    ) -> Frame:
        sent = self._sent.get(leg.stream_id, 0) if reason == "preempted" else len(leg.frames)
        return end_frame(leg, priority, reason, sent, at_us, self.clock.now_us())

    async def _stream(self, bid: str, legs: list[Leg], end_us: int, priority: Priority) -> None:
        ending, error = "done", ""
        try:
            try:
                try:
                    with anyio.CancelScope() as scope:
                        self._running[bid] = scope
                        async with anyio.create_task_group() as tg:
                            for leg in legs:
                                tg.start_soon(self._run_leg, bid, leg, priority)
                except BaseExceptionGroup as group:
                    err = first_loa_error(group)
                    if isinstance(err, BrokerError):
                        raise err from group
                    raise
                finally:
                    self._running.pop(bid, None)
                    self._reach.pop(bid, None)
            except BrokerError as exc:  # an outage longer than the grace: keep the facts
                logger.error("broadcast %s interrupted: %s", bid, exc.message)
                ending, error = "interrupted", exc.message
                end_us = self.clock.now_us()
            else:
                takeover = self._preempted.pop(bid, None)
                if scope.cancelled_caught and takeover is not None:  # a higher class took over
                    ending, error = "done", "pre-empted by a broadcast of an equal or higher class"
                    end_us = min(end_us, takeover)
                    for leg in legs:
                        end = self._end_frame(leg, priority, "preempted", at_us=takeover)
                        with anyio.move_on_after(self.settings.report_grace_s + 1):
                            try:
                                await self._send(leg.topics, end)
                            except BrokerError:
                                logger.warning("broadcast %s: END not sent (broker away)", bid)
                elif scope.cancelled_caught:  # stopped by a user: tell the speakers at once
                    ending, error = "stopped", "stopped before the end"
                    end_us = self.clock.now_us()
                    for leg in legs:
                        with anyio.move_on_after(self.settings.report_grace_s + 1):
                            try:
                                await self._send(
                                    leg.topics, self._end_frame(leg, priority, "stopped")
                                )
                            except BrokerError:
                                logger.warning("broadcast %s: END not sent (broker away)", bid)
            self.ledger.update(bid, status="finishing")
            wait = (end_us - self.clock.now_us()) / 1e6 + self.settings.report_grace_s
            await self.clock.sleep(max(0.0, wait))
            await self._reports_can_arrive()
            if self.before_finalize is not None:
                self.before_finalize()  # write proof of play still queued
            status = self._close(bid, ending, error)
            for leg in legs:
                self._sent.pop(leg.stream_id, None)
            outcomes = self.ledger.outcome_counts(bid)
            logger.info(
                "broadcast %s ended %s: %s",
                bid,
                status,
                ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "no speakers",
            )
        except anyio.get_cancelled_exc_class():
            self._close(bid, "interrupted", "the controller stopped during the broadcast")
            raise
        except Exception as exc:  # a bug must fail one broadcast, never the dispatcher
            logger.exception("broadcast %s failed unexpectedly", bid)
            self._close(bid, "failed", f"internal error: {exc}")

    async def _reports_can_arrive(self) -> None:
        """Proof of play cannot arrive without a broker: if it is away (an outage, or the
        controller just started), wait for it (up to ``outage_grace_s``), then the grace."""
        if self.publisher.connected:
            return
        with anyio.move_on_after(self.settings.outage_grace_s), suppress(TimeoutError):
            await self.publisher.wait_connected(self.settings.outage_grace_s)
        await self.clock.sleep(self.settings.report_grace_s)

    def _close(self, bid: str, ending: str, error: str) -> str:
        outage = self._outages.pop(bid, None)
        rows = self.ledger.store.query("SELECT late_ms FROM broadcasts WHERE id=?", [bid])
        late_ms = (rows[0]["late_ms"] or 0) if rows else 0
        notes = [outage.note(self.clock.monotonic())] if outage is not None else []
        if late_ms >= 1000:
            notes.append(f"accepted {late_ms / 1000:.1f} s after it was asked for")
        return self.ledger.close(bid, ending, error, "; ".join(n for n in notes if n))
