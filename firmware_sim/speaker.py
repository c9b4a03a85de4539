"""One simulated speaker: its own MQTT client, clock, groups, buffer and reports.

:class:`Speaker` wires the parts, each in its own module: :mod:`.receive` (the front
door: verify and route), :mod:`.player` (pre-emption and playing on time),
:mod:`.prefetch` (cached items and armed plays), :mod:`.firmware`, :mod:`.commands`
(commands and config), :mod:`.reports` (proof of play, telemetry), :mod:`.clocksync`;
:mod:`.device` holds what they share. The speaker itself keeps the MQTT link: its
presence, its session, and the time requests.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from typing import Any

import anyio

from devices.frames import Frame
from devices.messages import CodecName, Presence, TimeRequest, TimeResponse, dump
from devices.signing import Verifier
from devices.topics import DeviceTopic, device_inbox_filter
from devices.transport import LinkOptions, MqttLink
from loa.clock import Clock, SkewedClock
from loa.errors import BrokerError, LoaError

from .cache import ItemCache
from .commands import Commands, group_topics
from .device import Device
from .firmware import FirmwareUpdater
from .framecache import FrameCache
from .options import SpeakerOptions
from .outbox import Outbox
from .player import Player
from .playlog import PlayLog
from .playout import StreamState
from .prefetch import Prefetch
from .receive import Handlers, Receiver
from .recorder import Recorder
from .reports import Reports
from .spec import DeviceSpec

__all__ = ["Speaker", "SpeakerOptions"]  # SpeakerOptions: where callers have always found it

logger = logging.getLogger(__name__)


class Speaker:
    def __init__(
        self,
        spec: DeviceSpec,
        *,
        host: str,
        port: int,
        verifier: Verifier | FrameCache,
        clock: Clock,
        log: PlayLog,
        options: SpeakerOptions | None = None,
    ) -> None:
        self.spec = spec
        self.log = log
        self.opt = opt = options or SpeakerOptions()
        frames = verifier if isinstance(verifier, FrameCache) else FrameCache(verifier, 8)
        self.clock = SkewedClock(clock, offset_s=spec.offset_s, drift_ppm=spec.drift_ppm)
        self.dev = dev = Device(spec, self.clock, log, opt, frames, self._send_time_request)
        self.recorder = Recorder(opt.record_dir, spec.id) if opt.record_dir is not None else None
        self.outbox = Outbox(
            opt.state_dir / f"{spec.id}.reports.jsonl" if opt.state_dir else None,
            opt.outbox_max,
        )  # reports the broker has not taken yet, kept across restarts
        self.session: str | None = None
        self.cache = ItemCache(opt.cache_bytes, opt.cache_items, corrupt=opt.corrupt_items)
        # Decode Opus when able; a speaker that only decodes MP3 listens on the mp3/ topics.
        codec = "opus" if "opus" in spec.codecs else "mp3"
        topics = group_topics(spec.commune, spec.groups, codec)
        self.link = MqttLink(
            LinkOptions(
                host=host,
                port=port,
                client_id=f"loa-sim-{spec.id}",
                username=spec.id if spec.password else None,
                password=spec.password or None,
                tls_ca=str(opt.tls_ca) if opt.tls_ca else None,
                tls_ca_pem=opt.tls_ca_pem,
                will_topic=self._topic(DeviceTopic.PRESENCE),
                will_factory=self._new_session_will,
                farewell_payload=dump(Presence(state="offline", reason="shut down")),
                subscriptions=tuple(
                    (t, 1) for t in [*device_inbox_filter(spec.commune, spec.id), *sorted(topics)]
                ),
            ),
            self._on_message,
            clock,
        )
        self.link.on_connect(self._announce)
        self.reports = Reports(dev, self.link, self._publish, self.outbox)
        self.player = Player(
            dev,
            recorder=self.recorder,
            connected=lambda: self.link.connected,
            release_item=self.cache.unpin,
            on_report=self.reports.add,
        )
        self.prefetch = Prefetch(dev, self.cache, self.player, self._publish)
        self.updater = FirmwareUpdater(
            dev, self._publish, self._announce, corrupt=opt.corrupt_firmware
        )
        self.commands = Commands(
            dev, self.player, self.link, self._publish, codec=codec, topics=topics
        )
        self.receiver = Receiver(
            dev,
            Handlers(
                time=self._on_time,
                config=self.commands.on_config,
                command=self.commands.on_command,
                firmware=self.updater.on_frame,
                prefetch=self.prefetch.on_frame,
                stream=self.player.on_stream_frame,
            ),
        )

    # --- what tests, benches and the demo read (and a few fault switches) ---------

    @property
    def counters(self) -> dict[str, int]:
        return self.dev.counters

    @property
    def volume(self) -> int:
        return self.dev.volume

    @volume.setter
    def volume(self, value: int) -> None:
        self.dev.volume = value

    @property
    def firmware(self) -> str:
        return self.dev.firmware

    @firmware.setter
    def firmware(self, value: str) -> None:
        self.dev.firmware = value

    @property
    def corrupt_firmware(self) -> bool:
        return self.updater.corrupt

    @corrupt_firmware.setter
    def corrupt_firmware(self, value: bool) -> None:
        self.updater.corrupt = value

    @property
    def topics(self) -> set[str]:
        return self.commands.topics

    @property
    def streams(self) -> dict[uuid.UUID, StreamState]:
        return self.player.streams

    @property
    def current(self) -> StreamState | None:
        return self.player.current

    @property
    def pending(self) -> StreamState | None:
        return self.player.pending

    @property
    def synced(self) -> bool:
        return self.dev.sync.synced

    @property
    def offset_us(self) -> int:
        """Current estimate of controller clock − device clock (0 before any sync)."""
        return self.dev.sync.offset_us()

    def controller_now(self) -> int:
        return self.dev.controller_now()

    @property
    def link_cut(self) -> bool:
        return self.dev.link_cut

    def cut_link(self) -> None:
        """Fault injection: drop all traffic both ways (a dead 4G link); the MQTT session
        itself stays up, as it does until keep-alive notices."""
        self.dev.cut_link()

    def restore_link(self) -> None:
        self.dev.restore_link()

    def _stream_for(self, frame: Frame, topic: str) -> StreamState | None:
        return self.player.stream_for(frame, topic)

    def stats(self) -> dict[str, Any]:
        return {"id": self.spec.id, **self.counters, "offset_us": self.offset_us}

    # --- the link ------------------------------------------------------------------

    def _new_session_will(self) -> bytes:
        """A new connection: a new session id, in its will and in its online message."""
        self.session = secrets.token_hex(8)
        return dump(Presence(state="offline", reason="connection lost", session=self.session))

    def _topic(self, which: DeviceTopic) -> str:
        return self.dev.topic(which)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.link.run)
            tg.start_soon(self.player.run)
            tg.start_soon(self.reports.run_telemetry)
            tg.start_soon(self._sync_loop)
            tg.start_soon(self.reports.run_reporter)
            tg.start_soon(self.prefetch.run)
            try:
                await self.link.wait_connected(self.opt.connect_timeout_s)
            except TimeoutError:
                o = self.link.options
                raise BrokerError(
                    f"speaker {self.spec.id}: no MQTT broker at {o.host}:{o.port}"
                ) from None
            task_status.started()

    async def _on_message(self, topic: str, payload: bytes) -> None:
        await self.receiver.on_message(topic, payload)

    async def _announce(self) -> None:
        codecs: list[CodecName] = [c for c in ("opus", "mp3") if c in self.spec.codecs]
        p = Presence(
            state="online",
            at_us=self.controller_now(),
            fw=self.firmware,
            codecs=codecs,
            proto="1.1",
        )
        await self.link.publish(self._topic(DeviceTopic.PRESENCE), dump(p), retain=True)
        self.reports.resend()  # what the broker did not take before

    async def _publish(self, which: DeviceTopic, payload: bytes, qos: int = 1) -> bool:
        """Publish on one of our own topics; a lost broker is logged, never raised (a
        speaker keeps playing whatever its link does)."""
        try:
            await self.link.publish(self._topic(which), payload, qos=qos)
        except LoaError as exc:
            logger.info("speaker %s: %s not sent: %s", self.spec.id, which, exc.message)
            return False
        return True

    # --- clock sync ----------------------------------------------------------------

    def _on_time(self, frame: Frame, topic: str, t4: int) -> None:
        resp = self.dev.parse(TimeResponse, frame, topic)
        if resp is not None:
            self.dev.sync.answer(resp, t4)

    async def _send_time_request(self, req: TimeRequest) -> None:
        await self.dev.delay()  # the uplink leg
        if not self.link_cut:
            await self._publish(DeviceTopic.TIME_REQ, dump(req), qos=0)

    async def _sync_loop(self) -> None:
        await self.link.wait_connected(3600)
        await self.dev.sync.run()
