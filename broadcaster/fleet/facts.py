"""Facts from the speakers: presence, telemetry, proof of play, clock-sync requests.

Every payload is parsed into a strict model first; garbage raises ProtocolError, which
the router drops and counts per device. Nothing here can crash the MQTT loop.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

from devices.frames import Codec, Frame, FrameType, encode_frame
from devices.messages import (
    Ack,
    CacheReport,
    DeviceConfig,
    FirmwareStatus,
    GroupRef,
    PlayReport,
    Presence,
    Telemetry,
    TimeRequest,
    TimeResponse,
    dump,
    parse,
)
from devices.router import Router
from devices.signing import Signer
from devices.topics import DeviceTopic, ParsedTopic, device_topic
from devices.transport import MqttLink
from loa.clock import Clock
from loa.errors import LoaError, ProtocolError

from ..broadcasts.ledger import Ledger
from ..store.rows import DeviceRow
from ..store.store import Store

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Proof-of-play reports, presence and telemetry wait at most this long to be written.
REPORT_FLUSH_S = 0.2
#: They are written this many per transaction, the loop getting a turn between slices:
#: a reconnect storm or a thousand speakers reporting at once never hold it for long.
FLUSH_SLICE = 100
#: Facts kept for a retry while the store is failing; older ones are dropped.
FACTS_KEPT = 20_000
#: Configs republished after a (re)connect go out this many at a time, with a pause
#: between batches so device input (reports, presence) is read in between.
CONFIG_BATCH = 10  # publishes in flight at once, then a pause: input is read in between
CONFIG_PAUSE_S = 0.005

#: CONFIG and TIME frames use the nil stream id and sequence 0.
CONFIG_STREAM = uuid.UUID(int=0)


class Facts:
    """Handlers for device → controller topics, and retained config pushes."""

    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        link: MqttLink,
        signer: Signer,
        clock: Clock,
        trusted_keys: tuple[str, ...] = (),
    ) -> None:
        self.telemetry_min_us = 0
        self._telemetry_at: dict[str, int] = {}
        #: Announced in every config: this controller's key, then any others to trust.
        self.keys = [signer.public_hex(), *(k for k in trusted_keys if k != signer.public_hex())]
        self.store = store
        self.ledger = ledger
        self.link = link
        self.signer = signer
        self.clock = clock
        self.unknown_devices: Counter[str] = Counter()
        self.untargeted_reports = 0
        self.unknown_reports = 0
        self._reports: list[tuple[str, str, PlayReport, int]] = []
        self._facts: list[tuple[str, str, Any, int]] = []  # (kind, commune, message, at)
        self._republish = anyio.Event()
        self._facts_flushed_us = 0
        self.configs_pushed = 0
        #: Called with (commune, device) when a speaker comes online (alerts replay).
        self.on_online: list[Callable[[str, str], object]] = []
        #: Called with (device, status) for firmware results on ``dev/{id}/fw/status``.
        self.on_firmware: Callable[[str, FirmwareStatus], object] | None = None
        #: Called with (device, ack) for command results on ``dev/{id}/ack``.
        self.on_command_ack: Callable[[str, Ack], object] | None = None
        #: Called with (device, report) for prefetch answers on ``dev/{id}/cache``.
        self.on_cache: Callable[[str, CacheReport], object] | None = None

    def install(self, router: Router) -> None:
        router.on_device(DeviceTopic.PRESENCE, self.on_presence)
        router.on_device(DeviceTopic.TELEMETRY, self.on_telemetry)
        router.on_device(DeviceTopic.REPORT, self.on_report)
        router.on_device(DeviceTopic.TIME_REQ, self.on_time_request)
        router.on_device(DeviceTopic.CACHE, self.on_cache_report)
        router.on_device(DeviceTopic.ACK, self.on_ack)
        router.on_device(DeviceTopic.FW_STATUS, self.on_firmware_status)

    def _known(self, t: ParsedTopic) -> str:
        assert t.device is not None
        if self.store.device_commune(t.device) != t.commune:
            self.unknown_devices[t.device] += 1
            raise ProtocolError(f"device {t.device!r} is not registered in {t.commune!r}")
        return t.device

    async def on_presence(self, t: ParsedTopic, payload: bytes) -> None:
        """Validate now; write with the next batch (thousands reconnect at once)."""
        if not payload:  # a cleared retained message
            return
        device = self._known(t)
        p = parse(Presence, payload)
        self._facts.append(("presence", t.commune, (device, p), self.clock.now_us()))
        self._maybe_flush()

    async def on_telemetry(self, t: ParsedTopic, payload: bytes) -> None:
        device = self._known(t)
        m = parse(Telemetry, payload)
        now = self.clock.now_us()
        if now - self._telemetry_at.get(device, -(2**62)) < self.telemetry_min_us:
            raise ProtocolError(f"telemetry from {device} faster than allowed (a flood)")
        self._telemetry_at[device] = now
        self._facts.append(("telemetry", t.commune, (device, m), now))
        self._maybe_flush()

    @property
    def queued(self) -> int:
        """Presence and telemetry messages accepted but not yet written."""
        return len(self._facts)

    def _maybe_flush(self) -> None:
        """A lone message (a quiet moment) is written at once; in a burst (thousands of
        speakers reconnecting) the rest wait for the next flush, at most
        ``REPORT_FLUSH_S``, and go ``FLUSH_SLICE`` to a transaction."""
        quiet = self.clock.now_us() - self._facts_flushed_us >= REPORT_FLUSH_S * 1e6
        if quiet and len(self._facts) == 1:
            try:
                self.flush_facts()
            except Exception:  # the message is queued; the next flush retries
                logger.exception("writing device facts failed; retrying at the next flush")

    def flush_facts(self, limit: int | None = None) -> int:
        """Write queued presence and telemetry (the oldest ``limit``, or all), in arrival
        order, in one transaction; then tell the listeners who came online. Returns how
        many were written."""
        batch = _take(self._facts, limit)
        if not batch:
            return 0
        self._facts_flushed_us = self.clock.now_us()
        online: list[tuple[str, str]] = []
        try:
            self._write_facts(batch, online)
        except Exception:
            # The store is busy or failing: keep the facts for the next flush (bounded:
            # past FACTS_KEPT the oldest are dropped, and said so), then let it be known.
            kept = (batch + self._facts)[-FACTS_KEPT:]
            dropped = len(batch) + len(self._facts) - len(kept)
            self._facts = kept
            if dropped:
                logger.error(
                    "dropped %d presence/telemetry messages: the store is failing", dropped
                )
            raise
        for commune, device in online:
            for listener in self.on_online:
                listener(commune, device)
        return len(batch)

    def _write_facts(
        self, batch: list[tuple[str, str, Any, int]], online: list[tuple[str, str]]
    ) -> None:
        with self.store.db.atomic():
            for kind, commune, (device, msg), at_us in batch:
                if kind == "telemetry":
                    self.store.set_telemetry(device, at_us, msg)
                    continue
                self.store.set_presence(
                    commune,
                    device,
                    online=msg.state == "online",
                    at_us=at_us,
                    firmware=msg.fw,
                    codecs=list(msg.codecs),
                    reason=msg.reason,
                    session=msg.session,
                )
                logger.info(
                    "speaker %s/%s %s%s",
                    commune,
                    device,
                    msg.state,
                    f" ({msg.reason})" if msg.reason else "",
                    extra={"device": device, "commune": commune, "state": msg.state},
                )
                if msg.state == "online":
                    online.append((commune, device))

    async def on_firmware_status(self, t: ParsedTopic, payload: bytes) -> None:
        device = self._known(t)
        status = parse(FirmwareStatus, payload)
        if self.on_firmware is not None:
            self.on_firmware(device, status)

    async def on_ack(self, t: ParsedTopic, payload: bytes) -> None:
        device = self._known(t)
        ack = parse(Ack, payload)
        if self.on_command_ack is not None:
            self.on_command_ack(device, ack)

    async def on_cache_report(self, t: ParsedTopic, payload: bytes) -> None:
        device = self._known(t)
        report = parse(CacheReport, payload)
        if self.on_cache is not None:
            self.on_cache(device, report)

    async def on_report(self, t: ParsedTopic, payload: bytes) -> None:
        """Validate now; write in batches (thousands of speakers report at the same moment)."""
        device = self._known(t)
        report = parse(PlayReport, payload)
        self._reports.append((device, t.commune, report, self.clock.now_us()))

    def flush_reports(self, limit: int | None = None) -> int:
        """Write queued proof-of-play reports (the oldest ``limit``, or all) in one
        transaction; returns how many."""
        batch = _take(self._reports, limit)
        if not batch:
            return 0
        try:
            self._write_reports(batch)
        except Exception:
            self._reports = batch + self._reports  # kept for the next flush
            raise
        return len(batch)

    def _write_reports(self, batch: list[tuple[str, str, PlayReport, int]]) -> None:
        with self.store.db.atomic():
            for device, commune, report, at_us in batch:
                hamlet = self.store.device_hamlet(device)
                result = self.ledger.record_report(device, commune, hamlet, report, at_us)
                if result == "untargeted":
                    self.untargeted_reports += 1
                    logger.warning(
                        "device %s reported playing untargeted stream %s", device, report.stream
                    )
                elif result == "pending":  # kept until its broadcast row exists
                    self.unknown_reports += 1
                    logger.info(
                        "device %s reported stream %s before its broadcast: kept",
                        device,
                        report.stream,
                    )

    async def run(self) -> None:
        """Flush queued facts and reports every ``REPORT_FLUSH_S``, and republish configs
        when asked (paced); returns when cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._republisher)
                while True:
                    await self.clock.sleep(REPORT_FLUSH_S)
                    await self._flush_in_slices()
        finally:
            self._flush_quietly()

    async def _flush_in_slices(self) -> None:
        """Flush facts and reports ``FLUSH_SLICE`` to a transaction, letting the loop
        stream and read between slices; a store error waits for the next flush."""
        work = (
            (self.flush_facts, self._facts, "presence and telemetry"),
            (self.flush_reports, self._reports, "proof-of-play reports"),
        )
        for flush, queue, what in work:
            for _ in range(0, len(queue), FLUSH_SLICE):  # what is queued now; later: next time
                try:
                    flush(FLUSH_SLICE)
                except Exception:
                    logger.exception("writing %s failed; retrying at the next flush", what)
                    break
                await anyio.lowlevel.checkpoint()

    def _flush_quietly(self) -> None:
        """Flush facts and reports at once (shutting down); a store error (a lock held
        too long) is logged — it must never stop the controller."""
        for flush in (self.flush_facts, self.flush_reports):
            try:
                flush()
            except Exception:
                logger.exception("writing device facts failed; retrying at the next flush")

    async def on_time_request(self, t: ParsedTopic, payload: bytes) -> None:
        """Answer a clock-sync request at once; no database access on this path."""
        t2 = self.clock.now_us()
        assert t.device is not None
        req = parse(TimeRequest, payload)
        topic = device_topic(t.commune, t.device, DeviceTopic.TIME_RESP)
        t3 = self.clock.now_us()
        resp = TimeResponse(id=req.id, t1_us=req.t1_us, t2_us=t2, t3_us=t3)
        frame = Frame(FrameType.TIME, CONFIG_STREAM, 0, t3, t3, dump(resp), Codec.NONE)
        await self.link.publish(topic, encode_frame(frame, self.signer, topic), qos=0)

    def config_frame(self, device: DeviceRow) -> bytes:
        groups = [GroupRef(kind="all"), GroupRef(kind="hamlet", id=device.hamlet_id)]
        groups += [GroupRef(kind="zone", id=z) for z in device.zones]
        groups.append(GroupRef(kind="device", id=device.id))
        now = self.clock.now_us()
        cfg = DeviceConfig(
            device=device.id,
            commune=device.commune_id,
            groups=groups,
            issued_us=now,
            keys=self.keys,
        )
        topic = device_topic(device.commune_id, device.id, DeviceTopic.CONFIG)
        frame = Frame(FrameType.CONFIG, CONFIG_STREAM, 0, now, now, dump(cfg), Codec.NONE)
        return encode_frame(frame, self.signer, topic)

    async def push_config(self, device: DeviceRow) -> None:
        """Publish one device's retained config (after a move to another hamlet)."""
        await self.link.publish(
            device_topic(device.commune_id, device.id, DeviceTopic.CONFIG),
            self.config_frame(device),
            qos=1,
            retain=True,
        )

    async def push_configs(self) -> None:
        """Republish every device's retained config (after each connect).

        Only asks for it: the republishing runs beside the input, paced
        (``CONFIG_BATCH`` at a time), so a reconnect of a big fleet never holds up the
        reports and presence arriving at the same moment."""
        self._republish.set()

    async def _republisher(self) -> None:
        while True:
            await self._republish.wait()
            self._republish = anyio.Event()
            try:
                count = await self._push_all()
                logger.info("pushed config to %d devices", count)
            except LoaError as exc:  # the broker went away again: the next connect retries
                logger.warning("config republishing stopped: %s", exc.message)

    async def _push_all(self) -> int:
        devices: list[DeviceRow] = await self.store.read(_all_devices)
        count = 0
        failed: list[LoaError] = []

        async def push(device: DeviceRow) -> None:
            try:
                await self.push_config(device)
            except LoaError as exc:
                failed.append(exc)

        for i in range(0, len(devices), CONFIG_BATCH):
            async with anyio.create_task_group() as tg:
                for device in devices[i : i + CONFIG_BATCH]:
                    tg.start_soon(push, device)
            if failed:
                raise failed[0]
            count += len(devices[i : i + CONFIG_BATCH])
            self.configs_pushed += len(devices[i : i + CONFIG_BATCH])
            await self.clock.sleep(CONFIG_PAUSE_S)
        return count


def _all_devices(store: Store) -> list[DeviceRow]:
    return [d for c in store.communes() for d in store.devices(c["id"])]


def _take(items: list[T], limit: int | None) -> list[T]:
    """The oldest ``limit`` items (all if None), taken out of ``items``."""
    batch = items[:limit]
    del items[: len(batch)]
    return batch
