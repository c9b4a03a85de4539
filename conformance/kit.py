"""The kit's controller side: one MQTT session that signs what it sends (as a Loa
controller does) and records everything the speaker under test publishes.

Everything on the wire goes through ``devices/`` (topics, frames, messages, signing):
the kit writes no topic string or byte layout of its own. The kit's clock is the
"controller clock" of docs/protocol.md; it is deliberately offset from this machine's
clock (``--clock-offset-ms``), so a speaker that does not sync its clock over MQTT hears
every frame late and fails.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from devices.frames import Codec, Frame, FrameType, Priority, decode_frame, encode_frame
from devices.messages import (
    Ack,
    CacheReport,
    Command,
    DeviceConfig,
    FirmwareStatus,
    Message,
    PlayReport,
    Presence,
    Telemetry,
    TimeRequest,
    TimeResponse,
    dump,
    parse,
)
from devices.provisioning import Provisioning
from devices.signing import Signer, Verifier, public_from_hex
from devices.topics import DeviceTopic, device_topic
from devices.transport import LinkOptions, MqttLink
from loa.clock import Clock
from loa.errors import ProtocolError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    step_s: float = 5.0  # an answer may come this long after its expected time
    lead_s: float = 0.8  # audio is sent this far ahead of its presentation time
    presence_s: float = 10.0  # wait this long for the speaker's presence
    quiet_s: float = 1.5  # after a refused stream's time, wait this long for a report


NIL = uuid.UUID(int=0)

#: What the speaker publishes, and the model each topic carries.
INBOUND: dict[DeviceTopic, type[Message]] = {
    DeviceTopic.PRESENCE: Presence,
    DeviceTopic.TELEMETRY: Telemetry,
    DeviceTopic.REPORT: PlayReport,
    DeviceTopic.ACK: Ack,
    DeviceTopic.CACHE: CacheReport,
    DeviceTopic.FW_STATUS: FirmwareStatus,
    DeviceTopic.TIME_REQ: TimeRequest,
}


@dataclass(frozen=True)
class Heard:
    """One message from the speaker, with the kit-clock time it arrived."""

    which: DeviceTopic
    message: Message
    at_us: int


@dataclass
class Facts:
    """Everything the speaker reported during the session."""

    heard: list[Heard] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)  # "topic: why"
    time_answered: int = 0  # time requests answered

    def of(self, kind: type[Message]) -> list[Message]:
        return [h.message for h in self.heard if isinstance(h.message, kind)]

    def reports(self, stream: uuid.UUID) -> list[PlayReport]:
        return [
            m for m in self.of(PlayReport) if isinstance(m, PlayReport) and m.stream == str(stream)
        ]

    def acks(self, command: uuid.UUID) -> list[Ack]:
        return [m for m in self.of(Ack) if isinstance(m, Ack) and m.id == str(command)]

    def cache(self, item: uuid.UUID, *states: str) -> list[CacheReport]:
        return [
            m
            for m in self.of(CacheReport)
            if isinstance(m, CacheReport) and m.item == str(item) and m.state in states
        ]

    def firmware(self, rollout: uuid.UUID) -> list[FirmwareStatus]:
        return [
            m
            for m in self.of(FirmwareStatus)
            if isinstance(m, FirmwareStatus) and m.rollout == str(rollout)
        ]


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: bool = False
    ca_pem: str | None = None
    username: str | None = None
    password: str | None = None


class Kit:
    """Acts as the speaker's controller for one session."""

    def __init__(
        self, prov: Provisioning, signer: Signer, endpoint: Endpoint, clock: Clock
    ) -> None:
        self.prov = prov
        self.device = prov.device
        self.commune = prov.commune
        self.signer = signer
        self.clock = clock
        self.facts = Facts()
        self._changed = anyio.Event()
        #: The speaker's config as the kit found it (retained, signed by a trusted key),
        #: to give it back its own groups at the end.
        self.found_config: DeviceConfig | None = None
        self.config_sent = False
        self._trusted = Verifier([public_from_hex(k.public) for k in prov.keys])
        watched = [DeviceTopic.CONFIG, *INBOUND]  # the retained config first, before presence
        subs = tuple((device_topic(self.commune, self.device, w), 1) for w in watched)
        self.link = MqttLink(
            LinkOptions(
                host=endpoint.host,
                port=endpoint.port,
                client_id=f"loa-conformance-{uuid.uuid4().hex[:12]}",
                username=endpoint.username,
                password=endpoint.password,
                tls_ca_pem=(endpoint.ca_pem or "") if endpoint.tls else None,
                subscriptions=subs,
                backoff_max_s=2.0,
                publish_timeout_s=5.0,
            ),
            self._on_message,
            clock,
        )

    def now(self) -> int:
        return self.clock.now_us()

    def topic(self, which: DeviceTopic, device: str | None = None) -> str:
        return device_topic(self.commune, device or self.device, which)

    # --- inbound -----------------------------------------------------------------

    async def _on_message(self, topic: str, payload: bytes) -> None:
        at = self.now()
        if topic == self.topic(DeviceTopic.CONFIG):
            self._found(topic, payload)
            return
        which = next(
            (w for w in INBOUND if topic == self.topic(w)),
            None,
        )
        if which is None or (which is DeviceTopic.PRESENCE and not payload):
            return
        try:
            message = parse(INBOUND[which], payload)
        except ProtocolError as exc:
            self.facts.malformed.append(f"{which.value}: {exc.message}")
            self._wake()
            return
        self.facts.heard.append(Heard(which, message, at))
        if isinstance(message, TimeRequest):
            await self._answer_time(message, at)
        self._wake()

    def _found(self, topic: str, payload: bytes) -> None:
        """The retained config that was there before the kit published its own."""
        if self.config_sent or self.found_config is not None or not payload:
            return
        try:
            frame = decode_frame(payload, self._trusted, topic)
            if frame.type is FrameType.CONFIG:
                self.found_config = parse(DeviceConfig, frame.payload)
        except ProtocolError as exc:
            logger.info("the retained config is not one the speaker trusts: %s", exc.message)

    async def _answer_time(self, req: TimeRequest, t2: int) -> None:
        t3 = self.now()
        resp = TimeResponse(id=req.id, t1_us=req.t1_us, t2_us=t2, t3_us=t3)
        frame = Frame(FrameType.TIME, NIL, 0, t3, t3, dump(resp))
        await self.publish(self.topic(DeviceTopic.TIME_RESP), frame, qos=0)
        self.facts.time_answered += 1

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``done()`` is true (re-checked on every message) or the timeout."""
        with anyio.move_on_after(max(0.0, timeout_s)):
            while not done():
                await self._changed.wait()
            return True
        return bool(done())

    async def sleep_until(self, at_us: int) -> None:
        await self.clock.sleep(max(0.0, (at_us - self.now()) / 1e6))

    # --- outbound ----------------------------------------------------------------

    def sign(self, frame: Frame, topic: str, signer: Signer | None = None) -> bytes:
        return encode_frame(frame, signer or self.signer, topic)

    async def publish(
        self, topic: str, frame: Frame, *, qos: int = 1, retain: bool = False
    ) -> bytes:
        data = self.sign(frame, topic)
        await self.link.publish(topic, data, qos=qos, retain=retain)
        return data

    async def publish_raw(self, topic: str, data: bytes, *, retain: bool = False) -> None:
        await self.link.publish(topic, data, qos=1, retain=retain)

    def command_frame(
        self, action: str, *, sent_us: int | None = None, expires_s: float = 30.0, **args: object
    ) -> tuple[uuid.UUID, Frame]:
        sent = self.now() if sent_us is None else sent_us
        cid = uuid.uuid4()
        cmd = Command.model_validate(
            {
                "id": str(cid),
                "action": action,
                "args": args,
                "expires_us": max(0, sent + int(expires_s * 1e6)),
            }
        )
        return cid, Frame(FrameType.COMMAND, cid, 0, sent, sent, dump(cmd))


__all__ = ["Codec", "Endpoint", "Facts", "Heard", "Kit", "Priority"]
