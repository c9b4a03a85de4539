"""Facts from the speakers: presence, telemetry, proof of play, clock-sync requests.

Every payload is parsed into a strict model first; garbage raises ProtocolError, which
the router drops and counts per device. Nothing here can crash the MQTT loop.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable

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
from loa.errors import ProtocolError

from .ledger import Ledger
from .store import DeviceRow, Store

logger = logging.getLogger(__name__)

REPORT_BATCH = 500
REPORT_FLUSH_S = 0.2

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
        if not payload:  # a cleared retained message
            return
        device = self._known(t)
        p = parse(Presence, payload)
        self.store.set_presence(
            t.commune,
            device,
            online=p.state == "online",
            at_us=self.clock.now_us(),
            firmware=p.fw,
            codecs=list(p.codecs),
            reason=p.reason,
            session=p.session,
        )
        logger.info(
            "speaker %s/%s %s%s",
            t.commune,
            device,
            p.state,
            f" ({p.reason})" if p.reason else "",
            extra={"device": device, "commune": t.commune, "state": p.state},
        )
        if p.state == "online":
            for listener in self.on_online:
                listener(t.commune, device)

    async def on_telemetry(self, t: ParsedTopic, payload: bytes) -> None:
        device = self._known(t)
        m = parse(Telemetry, payload)
        now = self.clock.now_us()
        if now - self._telemetry_at.get(device, -(2**62)) < self.telemetry_min_us:
            raise ProtocolError(f"telemetry from {device} faster than allowed (a flood)")
        self._telemetry_at[device] = now
        self.store.set_telemetry(device, now, m)

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
        if len(self._reports) >= REPORT_BATCH:
            self.flush_reports()

    def flush_reports(self) -> int:
        """Write queued proof-of-play reports in one transaction; returns how many."""
        batch, self._reports = self._reports, []
        if not batch:
            return 0
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
        return len(batch)

    async def run(self) -> None:
        """Flush queued reports every ``REPORT_FLUSH_S``; returns when cancelled."""
        try:
            while True:
                await self.clock.sleep(REPORT_FLUSH_S)
                self.flush_reports()
        finally:
            self.flush_reports()

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
        """Publish every device's retained config (after each connect)."""
        count = 0
        for commune in self.store.communes():
            for device in self.store.devices(commune["id"]):
                await self.push_config(device)
                count += 1
        logger.info("pushed config to %d devices", count)
