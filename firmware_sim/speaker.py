"""One simulated speaker: its own MQTT client, clock, groups, buffer and reports."""

from __future__ import annotations

import hashlib
import logging
import random
import secrets
import uuid
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio

from devices.frames import Frame, FrameType, Priority, unpack_packets
from devices.messages import (
    MANIFEST_CONTEXT,
    Ack,
    CacheReport,
    CodecName,
    Command,
    Counters,
    DeviceConfig,
    FirmwareOffer,
    FirmwareStatus,
    ItemOffer,
    Message,
    PlayItem,
    Presence,
    StreamEnd,
    StreamStart,
    Telemetry,
    TimeRequest,
    TimeResponse,
    dump,
    manifest_bytes,
    parse,
)
from devices.signing import Verifier
from devices.topics import (
    DeviceTopic,
    Group,
    GroupKind,
    device_inbox_filter,
    device_topic,
    parse_topic,
)
from devices.transport import LinkOptions, MqttLink
from loa.clock import Clock, SkewedClock
from loa.errors import BrokerError, LoaError, ProtocolError

from .cache import CachedItem, ItemCache
from .clocksync import ClockSync
from .framecache import FrameCache
from .outbox import Outbox
from .playlog import PlayLog
from .playout import (
    Arrival,
    Chunk,
    StreamState,
    accept_audio,
    chunk_of,
    finished,
    should_preempt,
)
from .recorder import Recorder
from .spec import DeviceSpec

logger = logging.getLogger(__name__)

#: Which frame type may arrive on which of the device's own topics.
TOPIC_FRAMES = {
    DeviceTopic.CMD: (FrameType.COMMAND,),
    DeviceTopic.CONFIG: (FrameType.CONFIG,),
    DeviceTopic.TIME_RESP: (FrameType.TIME,),
    DeviceTopic.FW: (FrameType.FIRMWARE, FrameType.FIRMWARE_DATA),
}
AUDIO_FRAMES = (FrameType.START, FrameType.AUDIO, FrameType.END)
PREFETCH_FRAMES = (FrameType.ITEM, FrameType.ITEM_DATA, FrameType.PLAY)
#: An armed play enters the player this long before it sounds.
ARM_LEAD_US = 1_000_000
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class SpeakerOptions:
    telemetry_interval_s: float = 30.0
    first_sync_samples: int = 20  # burst at start and on resync_clock
    # Then one exchange per interval (0 = never). Each costs ~350 bytes on the air:
    # every 10 s is ~3 MB a day per SIM; faster converges sooner and tracks tighter.
    sync_interval_s: float = 10.0
    replay_window_s: float = 30.0
    late_tolerance_ms: int = 40
    idle_timeout_s: float = 10.0
    connect_timeout_s: float = 30.0
    remember_streams: int = 1024  # ended stream ids and command ids kept for replay checks
    record_dir: Path | None = None  # write what was played, per stream, for tests
    cache_bytes: int = 16 * 1024 * 1024  # prefetched items kept (least recently used go)
    cache_items: int = 32
    corrupt_items: bool = False  # fault injection: every download arrives damaged
    corrupt_firmware: bool = False  # fault injection: firmware images arrive damaged
    tls_ca: Path | None = None  # connect with TLS, trusting this CA (the broker's TLS URL)
    tls_ca_pem: str | None = None  # or TLS trusting this PEM ("" = the system CAs)
    #: Reports not yet taken by the broker are kept here (one file per speaker), so a
    #: restart resends them; None = in memory only.
    state_dir: Path | None = None
    outbox_max: int = 1000  # reports kept at most (the oldest go first)
    #: While the broker is unreachable, open streams stay open this long (the idle
    #: timeout counts connected time only); frames still ahead of their time play.
    outage_grace_s: float = 60.0
    clock_step_ms: int = 500  # a TIME answer this far off the model is a suspect step


@dataclass
class Armed:
    """A PLAY this speaker accepted: the item plays at ``play.at_us`` without the network."""

    play: PlayItem
    priority: Priority
    item: CachedItem


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
        self.frames = verifier if isinstance(verifier, FrameCache) else FrameCache(verifier, 8)
        self.clock = SkewedClock(clock, offset_s=spec.offset_s, drift_ppm=spec.drift_ppm)
        self.log = log
        self.opt = options or SpeakerOptions()
        self.recorder = (
            Recorder(self.opt.record_dir, spec.id) if self.opt.record_dir is not None else None
        )
        self.sync = ClockSync(
            spec.id,
            self.clock,
            self._send_time_request,
            log,
            first_samples=self.opt.first_sync_samples,
            interval_s=self.opt.sync_interval_s,
            step_ms=self.opt.clock_step_ms,
        )
        self.volume = 80
        self.streams: dict[uuid.UUID, StreamState] = {}
        self.closed: OrderedDict[uuid.UUID, bool] = OrderedDict()  # id → was pre-empted
        self.current: StreamState | None = None
        self.outbox = Outbox(
            self.opt.state_dir / f"{spec.id}.reports.jsonl" if self.opt.state_dir else None,
            self.opt.outbox_max,
        )  # reports the broker has not taken yet, kept across restarts
        self._offline_since: int | None = None  # controller time the link went down
        self._outbox_ready = anyio.Event()
        self.pending: StreamState | None = None  # takes over at its first presentation time
        self.counters = {"refused": 0, "late": 0, "duplicate": 0, "played": 0, "ignored": 0}
        self._arrived: set[uuid.UUID] = set()  # streams whose first audio frame is logged
        self.config_sent_us = -1
        self.started_mono = self.clock.monotonic()
        self._rng = random.Random(spec.id)  # noqa: S311 - fault injection, not crypto
        self._wake = anyio.Event()
        self._commands: OrderedDict[str, None] = OrderedDict()
        self.cache = ItemCache(
            self.opt.cache_bytes, self.opt.cache_items, corrupt=self.opt.corrupt_items
        )
        self.armed: dict[uuid.UUID, Armed] = {}
        self.session: str | None = None
        self.firmware = spec.firmware
        self.corrupt_firmware = self.opt.corrupt_firmware
        self._fw: tuple[FirmwareOffer, bytearray, int] | None = None  # offer, data, next slice
        self._armed_changed = anyio.Event()
        self._link_up = anyio.Event()
        self._link_up.set()
        # Decode Opus when able; a speaker that only decodes MP3 listens on the mp3/ topics.
        self.codec = "opus" if "opus" in spec.codecs else "mp3"
        self.topics = {
            t
            for g in spec.groups
            for t in Group(spec.commune, GroupKind(g.kind), g.id).topics_for(self.codec)
        }
        self.link = MqttLink(
            LinkOptions(
                host=host,
                port=port,
                client_id=f"loa-sim-{spec.id}",
                username=spec.id if spec.password else None,
                password=spec.password or None,
                tls_ca=str(self.opt.tls_ca) if self.opt.tls_ca else None,
                tls_ca_pem=self.opt.tls_ca_pem,
                will_topic=self._topic(DeviceTopic.PRESENCE),
                will_factory=self._new_session_will,
                farewell_payload=dump(Presence(state="offline", reason="shut down")),
                subscriptions=tuple(
                    (t, 1)
                    for t in [*device_inbox_filter(spec.commune, spec.id), *sorted(self.topics)]
                ),
            ),
            self._on_message,
            clock,
        )
        self.link.on_connect(self._announce)

    def _new_session_will(self) -> bytes:
        """A new connection: a new session id, in its will and in its online message."""
        self.session = secrets.token_hex(8)
        return dump(Presence(state="offline", reason="connection lost", session=self.session))

    def _topic(self, which: DeviceTopic) -> str:
        return device_topic(self.spec.commune, self.spec.id, which)

    @property
    def synced(self) -> bool:
        return self.sync.synced

    @property
    def offset_us(self) -> int:
        """Current estimate of controller clock − device clock (0 before any sync)."""
        return self.sync.offset_us()

    def controller_now(self) -> int:
        return self.sync.controller_now()

    @property
    def link_cut(self) -> bool:
        return not self._link_up.is_set()

    def cut_link(self) -> None:
        """Fault injection: drop all traffic both ways (a dead 4G link); the MQTT session
        itself stays up, as it does until keep-alive notices."""
        if self._link_up.is_set():
            self._link_up = anyio.Event()
        self.log.add(event="link_cut", device=self.spec.id, true_us=self.clock.true_us())

    def restore_link(self) -> None:
        self._link_up.set()
        self.log.add(event="link_restored", device=self.spec.id, true_us=self.clock.true_us())

    def _net_delay(self) -> float:
        """Injected one-way network delay for this message, seconds."""
        jitter = self._rng.random() * self.spec.jitter_ms if self.spec.jitter_ms else 0.0
        return (self.spec.delay_ms + jitter) / 1000

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.link.run)
            tg.start_soon(self._player)
            tg.start_soon(self._telemetry_loop)
            tg.start_soon(self._sync_loop)
            tg.start_soon(self._reporter)
            tg.start_soon(self._armer)
            try:
                await self.link.wait_connected(self.opt.connect_timeout_s)
            except TimeoutError:
                o = self.link.options
                raise BrokerError(
                    f"speaker {self.spec.id}: no MQTT broker at {o.host}:{o.port}"
                ) from None
            task_status.started()

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
        if self.outbox:
            self._outbox_ready.set()  # resend what the broker did not take before

    async def _publish(self, which: DeviceTopic, payload: bytes, qos: int = 1) -> bool:
        """Publish on one of our own topics; a lost broker is logged, never raised (a
        speaker keeps playing whatever its link does)."""
        try:
            await self.link.publish(self._topic(which), payload, qos=qos)
        except LoaError as exc:
            logger.info("speaker %s: %s not sent: %s", self.spec.id, which, exc.message)
            return False
        return True

    # --- inbound -------------------------------------------------------------------

    def _payload(self, model: type[M], frame: Frame, topic: str) -> M | None:
        """The frame's JSON payload as ``model``, or None (refused and counted)."""
        try:
            return parse(model, frame.payload)
        except ProtocolError as exc:
            self._refuse(exc.message, topic)
            return None

    def _refuse(self, reason: str, topic: str) -> None:
        self.counters["refused"] += 1
        self.log.add(
            event="refused",
            device=self.spec.id,
            reason=reason,
            topic=topic,
            true_us=self.clock.true_us(),
        )

    async def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            parsed = parse_topic(topic)
        except ProtocolError:
            return
        if self.link_cut or (self.spec.loss and self._rng.random() < self.spec.loss):
            return
        if self.spec.delay_ms or self.spec.jitter_ms:
            await self.clock.sleep(self._net_delay())
        arrived = self.clock.now_us()
        try:
            frame, packets = self.frames.decode(payload, topic)
        except ProtocolError as exc:
            self._refuse(exc.message, topic)
            return
        expected = TOPIC_FRAMES.get(parsed.which) if parsed.which else None
        if (expected is not None and frame.type not in expected) or (
            parsed.which is None
            and frame.type not in AUDIO_FRAMES
            and not (frame.type in PREFETCH_FRAMES and not parsed.emergency)
        ):
            self._refuse(f"a {frame.type.name} frame does not belong on {topic}", topic)
            return
        if parsed.group is not None and parsed.emergency != (frame.priority is Priority.EMERGENCY):
            self._refuse("emergency audio travels only on alert topics, and only it", topic)
            return
        if frame.type is FrameType.TIME:
            self._on_time(frame, topic, arrived)
            return
        if frame.type is FrameType.CONFIG:
            await self._on_config(frame, topic)
            return
        if abs(frame.sent_us - self.controller_now()) > self.opt.replay_window_s * 1e6:
            self._refuse("frame outside the replay window (stale or replayed)", topic)
            return
        if frame.type is FrameType.COMMAND:
            await self._on_command(frame, topic)
        elif frame.type in (FrameType.FIRMWARE, FrameType.FIRMWARE_DATA):
            await self._on_firmware(frame, topic)
        elif frame.type in PREFETCH_FRAMES:
            await self._on_prefetch(frame, topic)
        elif frame.type in (FrameType.START, FrameType.AUDIO, FrameType.END):
            await self._on_stream_frame(frame, topic, packets)

    def _stream_for(self, frame: Frame, topic: str) -> StreamState | None:
        st = self.streams.get(frame.stream_id)
        if st is not None:
            return st
        if frame.stream_id in self.closed:
            if self.closed[frame.stream_id]:  # the rest of a pre-empted stream: expected
                self.counters["ignored"] += 1
            else:
                self._refuse("frame of a stream that already ended (replay)", topic)
            return None
        return self._admit(frame.stream_id, frame.priority, frame.pts_us)

    def _admit(self, sid: uuid.UUID, priority: Priority, first_pts_us: int) -> StreamState:
        """A new stream competes for the speaker by priority (pre-emption rules)."""
        st = StreamState(sid, priority, last_activity_us=self.controller_now())
        self.streams[sid] = st
        cur, pending = self.current, self.pending
        # A newcomer competes with what is about to play (pending) or else what plays.
        if not should_preempt(pending or cur, priority):
            st.suppressed = True
        elif pending is None and (cur is None or (cur.ended and not cur.buffer)):
            self.current = st
        else:
            # Keep playing the current stream up to the newcomer's first presentation time.
            if pending is not None:  # displaced before it ever played
                pending.preempted = True
                pending.buffer.clear()
                self.pending = None
            st.takes_over_us = first_pts_us
            self.pending = st
        self._wake.set()
        return st

    async def _on_stream_frame(self, frame: Frame, topic: str, packets: int) -> None:
        st = self._stream_for(frame, topic)
        if st is None:
            return
        if frame.priority != st.priority:
            self._refuse("priority changed within a stream", topic)
            return
        if frame.type is FrameType.START:
            st.header = self._payload(StreamStart, frame, topic)
            if st.header is None:
                return
            st.expected = st.header.chunks or None  # 0: a live stream, told by its END
        elif frame.type is FrameType.END:
            end = self._payload(StreamEnd, frame, topic)
            if end is None:
                return
            st.expected, st.ended, st.end_pts_us = end.chunks, True, frame.pts_us
        else:
            frame_ms = st.header.frame_ms if st.header else 20
            chunk_ms = st.header.chunk_ms if st.header else 1000
            try:
                chunk = chunk_of(frame, frame_ms, chunk_ms, packets)
                if self.recorder is not None:
                    chunk.payload = frame.payload
            except ProtocolError as exc:
                self._refuse(exc.message, topic)
                return
            now = self.controller_now()
            result = accept_audio(st, chunk, now, self.opt.late_tolerance_ms * 1000)
            if st.id not in self._arrived:  # the stream's first audio frame (benches)
                self._arrived.add(st.id)
                self.log.add(
                    event="arrive",
                    device=self.spec.id,
                    stream=str(st.id),
                    seq=chunk.seq,
                    true_us=self.clock.true_us(),
                    spare_us=chunk.pts_us - now,
                    late=result == Arrival.LATE,
                )
            if result == Arrival.DUPLICATE:
                self.counters["duplicate"] += 1
            elif result == Arrival.LATE:
                self.counters["late"] += 1
        self._wake.set()

    async def _on_prefetch(self, frame: Frame, topic: str) -> None:
        """ITEM / ITEM_DATA fill the cache; PLAY arms (or calls off) a cached play."""
        report: CacheReport | None = None
        if frame.type is FrameType.ITEM:
            offer = self._payload(ItemOffer, frame, topic)
            if offer is None:
                return
            if offer.item != str(frame.stream_id):
                self._refuse("item offer under another stream id", topic)
                return
            report = self.cache.offer(offer)
        elif frame.type is FrameType.ITEM_DATA:
            report = self.cache.slice(str(frame.stream_id), frame.seq, frame.payload)
        else:
            play = self._payload(PlayItem, frame, topic)
            if play is None:
                return
            report = self._on_play(frame, play, topic)
        if report is not None:
            if report.state == "refused":
                self.log.add(event="cache_refused", device=self.spec.id, detail=report.detail)
            await self._send_cache(report)

    def _on_play(self, frame: Frame, play: PlayItem, topic: str) -> CacheReport | None:
        sid = frame.stream_id
        if play.action == "cancel":
            armed = self.armed.pop(sid, None)
            if armed is not None:
                self.cache.unpin(play.item)
            st = self.streams.get(sid)
            if st is not None:  # already sounding: stop it
                st.preempted = True
                st.buffer.clear()
                self._wake.set()
            elif armed is None:
                return None
            return CacheReport(item=play.item, state="cancelled", broadcast=play.broadcast)
        again = self.armed.get(sid)
        if again is not None and again.play == play:  # offered again (we came back): fine
            return CacheReport(item=play.item, state="armed", broadcast=play.broadcast)
        if sid in self.armed or sid in self.streams or sid in self.closed:
            self._refuse("PLAY replayed", topic)
            return None
        item = self.cache.get(play.item, play.sha256)
        if item is None:
            return CacheReport(
                item=play.item,
                state="missing",
                broadcast=play.broadcast,
                detail="item not in cache; send the stream",
            )
        self.cache.pin(play.item)
        self.armed[sid] = Armed(play, frame.priority, item)
        self._armed_changed.set()
        return CacheReport(item=play.item, state="armed", broadcast=play.broadcast)

    async def _send_cache(self, report: CacheReport) -> None:
        if self.link_cut:
            return  # lost on the air, like everything else while the link is down
        await self._publish(DeviceTopic.CACHE, dump(report))

    async def _armer(self) -> None:
        """Hand each armed play to the player shortly before it sounds (no network)."""
        while True:
            self._armed_changed = anyio.Event()
            now = self.controller_now()
            for sid, armed in sorted(self.armed.items(), key=lambda kv: kv[1].play.at_us):
                if armed.play.at_us - ARM_LEAD_US <= now:
                    del self.armed[sid]
                    self._inject(sid, armed)
            nxt = min((a.play.at_us for a in self.armed.values()), default=None)
            wait = 3600.0 if nxt is None else max(0.0, (nxt - ARM_LEAD_US - now) / 1e6)
            with anyio.move_on_after(min(wait, 1.0)):
                await self._armed_changed.wait()

    def _inject(self, sid: uuid.UUID, armed: Armed) -> None:
        """Play a cached item as if its stream had arrived: the same rules and report."""
        play, offer = armed.play, armed.item.offer
        st = self._admit(sid, armed.priority, play.at_us)
        st.source = "cache"
        st.item = play.item
        st.header = StreamStart(
            broadcast=play.broadcast,
            codec="opus",
            sample_rate=offer.sample_rate,
            channels=offer.channels,
            frame_ms=offer.frame_ms,
            pre_skip=offer.pre_skip,
            chunk_ms=max(20, offer.frame_ms),
            chunks=offer.chunks,
            duration_ms=offer.duration_ms,
            title=play.title,
            volume=play.volume,
        )
        now = self.controller_now()
        pts = play.at_us
        for seq, payload in enumerate(armed.item.payloads, start=1):
            frames = len(unpack_packets(payload))
            chunk = Chunk(seq, pts, frames * offer.frame_ms * 1000)
            if self.recorder is not None:
                chunk.payload = payload
            if accept_audio(st, chunk, now, self.opt.late_tolerance_ms * 1000) == Arrival.LATE:
                self.counters["late"] += 1
            pts += chunk.duration_us
        st.expected, st.ended, st.end_pts_us = offer.chunks, True, pts
        self.log.add(event="armed_play", device=self.spec.id, stream=str(sid), at_us=play.at_us)
        self._wake.set()

    async def _on_firmware(self, frame: Frame, topic: str) -> None:
        """Download an image in slices; install it only if size, SHA-256 and the signed
        manifest all check out; say which."""
        if frame.type is FrameType.FIRMWARE:
            offer = self._payload(FirmwareOffer, frame, topic)
            if offer is not None:
                self._fw = (offer, bytearray(), 1)
            return
        if self._fw is None:
            return
        offer, data, want = self._fw
        if frame.seq != want:
            self._fw = None
            await self._fw_status(offer, "refused", f"slice {want} lost")
            return
        data += frame.payload
        self._fw = (offer, data, want + 1)
        if want < offer.slices:
            return
        self._fw = None
        image = bytes(data)
        if self.corrupt_firmware:
            image = bytes([image[0] ^ 0xFF]) + image[1:]
        manifest = MANIFEST_CONTEXT + manifest_bytes(offer.version, offer.sha256, offer.size)
        try:
            self.frames.verifier.verify(
                bytes.fromhex(offer.key_id), manifest, bytes.fromhex(offer.manifest_sig)
            )
        except ProtocolError as exc:
            await self._fw_status(offer, "refused", f"manifest signature: {exc.message}"[:200])
            return
        if len(image) != offer.size:
            await self._fw_status(offer, "refused", "size does not match the manifest")
        elif hashlib.sha256(image).hexdigest() != offer.sha256:
            await self._fw_status(offer, "refused", "SHA-256 does not match the manifest")
        else:
            self.firmware = offer.version
            self.started_mono = self.clock.monotonic()  # "installed": a reboot
            await self._fw_status(offer, "installed")
            try:
                await self._announce()
            except LoaError as exc:
                logger.info("speaker %s: presence not sent: %s", self.spec.id, exc.message)

    async def _fw_status(self, offer: FirmwareOffer, state: str, detail: str = "") -> None:
        status = FirmwareStatus(
            rollout=offer.rollout,
            version=offer.version if state == "installed" else self.firmware,
            state=state,  # type: ignore[arg-type]
            detail=detail,
        )
        self.log.add(event="firmware", device=self.spec.id, state=state, detail=detail)
        await self._publish(DeviceTopic.FW_STATUS, dump(status))

    async def _on_config(self, frame: Frame, topic: str) -> None:
        cfg = self._payload(DeviceConfig, frame, topic)
        if cfg is None:
            return
        if cfg.device != self.spec.id or cfg.commune != self.spec.commune:
            self._refuse("config addressed to another device", topic)
            return
        if frame.sent_us <= self.config_sent_us:
            return  # older than what we have
        self.config_sent_us = frame.sent_us
        if cfg.volume is not None:
            self.volume = cfg.volume
        if cfg.keys:  # key rotation: trust exactly these from now on
            try:
                self.frames = self.frames.for_keys(list(cfg.keys))
            except LoaError as exc:
                self._refuse(f"config keys: {exc.message}", topic)
                return
            self.log.add(event="keys", device=self.spec.id, keys=len(cfg.keys))
        wanted = {
            t
            for g in cfg.groups
            for t in Group(self.spec.commune, GroupKind(g.kind), g.id).topics_for(self.codec)
        }
        for t in sorted(wanted - self.topics):
            await self.link.subscribe(t)
        for t in sorted(self.topics - wanted):
            await self.link.unsubscribe(t)
        self.topics = wanted
        self.log.add(event="config", device=self.spec.id, groups=sorted(wanted))

    async def _on_command(self, frame: Frame, topic: str) -> None:
        cmd = self._payload(Command, frame, topic)
        if cmd is None:
            return
        if cmd.id in self._commands:
            self._refuse("command replayed", topic)
            return
        self._commands[cmd.id] = None
        while len(self._commands) > self.opt.remember_streams:
            self._commands.popitem(last=False)
        ok, detail = True, ""
        if cmd.expires_us < self.controller_now():
            ok, detail = False, "command expired"
        elif cmd.action == "set_volume" and isinstance(cmd.args.get("volume"), int):
            self.volume = max(0, min(100, int(cmd.args["volume"])))
        elif cmd.action == "stop":
            for st in (self.current, self.pending):
                if st is not None:
                    st.preempted = True
                    st.buffer.clear()
            self.pending = None
        elif cmd.action == "resync_clock":
            self.sync.reset()  # the clock may have been stepped
        elif cmd.action == "test_tone":
            self.log.add(event="test_tone", device=self.spec.id, true_us=self.clock.true_us())
        elif cmd.action == "update_config":  # ask the broker for the retained config again
            cfg = self._topic(DeviceTopic.CONFIG)
            await self.link.unsubscribe(cfg)
            await self.link.subscribe(cfg)
        elif cmd.action == "reboot":
            self.started_mono = self.clock.monotonic()  # uptime since boot starts again
            self.log.add(event="reboot", device=self.spec.id, true_us=self.clock.true_us())
        else:
            ok, detail = False, f"{cmd.action} is not supported by {self.firmware}"
        await self._publish(DeviceTopic.ACK, dump(Ack(id=cmd.id, ok=ok, detail=detail)))

    def _on_time(self, frame: Frame, topic: str, t4: int) -> None:
        resp = self._payload(TimeResponse, frame, topic)
        if resp is not None:
            self.sync.answer(resp, t4)

    # --- loops ---------------------------------------------------------------------

    async def _send_time_request(self, req: TimeRequest) -> None:
        if self.spec.delay_ms or self.spec.jitter_ms:
            await self.clock.sleep(self._net_delay())  # the uplink leg
        if not self.link_cut:
            await self._publish(DeviceTopic.TIME_REQ, dump(req), qos=0)

    async def _sync_loop(self) -> None:
        await self.link.wait_connected(3600)
        await self.sync.run()

    async def _telemetry_loop(self) -> None:
        while True:
            await self.link.wait_connected(3600)
            await self._link_up.wait()
            t = Telemetry(
                at_us=self.controller_now(),
                uptime_s=int(self.clock.monotonic() - self.started_mono),
                volume=self.volume,
                rssi_dbm=-70 - self._rng.randint(0, 30),
                temperature_c=round(35 + self._rng.random() * 10, 1),
                supply_v=12.1,
                fw=self.firmware,
                clock_offset_us=self.offset_us,
                counters=Counters(**self.counters),
            )
            await self._publish(DeviceTopic.TELEMETRY, dump(t), qos=0)
            await self.clock.sleep(self.opt.telemetry_interval_s)

    async def _wait(self, seconds: float) -> None:
        with anyio.move_on_after(max(0.0, seconds)):
            await self._wake.wait()
        if self._wake.is_set():
            self._wake = anyio.Event()

    async def _player(self) -> None:
        idle_us = int(self.opt.idle_timeout_s * 1e6)
        tol = self.opt.late_tolerance_ms * 1000
        while True:
            now = self.controller_now()
            self._hold_streams(now)
            for st in [
                s for s in self.streams.values() if s is not self.current and s is not self.pending
            ]:
                if st.preempted or finished(st, now, idle_us):
                    await self._finish(st)
            nxt, cur = self.pending, self.current
            if nxt is not None and (
                cur is None
                or now >= (nxt.takes_over_us or 0)
                or (cur.buffer and cur.buffer[min(cur.buffer)].pts_us >= (nxt.takes_over_us or 0))
            ):
                self.pending = None
                if cur is not None:
                    cur.preempted = True
                    cur.buffer.clear()
                    await self._finish(cur)
                self.current = cur = nxt
                kept = {k: c for k, c in nxt.buffer.items() if c.pts_us >= now - tol}
                nxt.late += len(nxt.buffer) - len(kept)  # only if we took over too late
                nxt.buffer = kept
            # Never sleep past the moment a pending stream must take over.
            horizon = (
                5.0
                if nxt is None or nxt is cur
                else max(0.0, ((nxt.takes_over_us or now) - now) / 1e6)
            )
            if cur is None:
                await self._wait(horizon)
                continue
            if finished(cur, now, idle_us):
                await self._finish(cur)
                continue
            if not cur.buffer:
                await self._wait(min(0.5, horizon))
                continue
            st = cur
            chunk = st.buffer[min(st.buffer)]
            delay = (chunk.pts_us - now) / 1e6
            if delay > 0:
                await self._wait(min(delay, horizon))
                continue
            # The chunk arrived in time (accept_audio judged that), so a real speaker has
            # already queued it to its DAC for the exact local time; this task waking a
            # little late is the simulator's scheduling, not the speaker's, and is only
            # recorded (wake_late_us).
            del st.buffer[chunk.seq]
            if self.recorder is not None:
                self.recorder.played(st.id, chunk.payload)
            st.played += 1
            self.counters["played"] += 1
            st.last_played_seq = chunk.seq
            if st.first_pts_us is None:
                st.first_pts_us = chunk.pts_us
            st.last_end_us = chunk.pts_us + chunk.duration_us
            # true_play_us: the model (a real speaker's DAC plays the chunk at the
            # sample-exact local time). handed_true_us: what this simulator actually
            # achieved — the true time it handed the chunk over, after its sleep, wake-up
            # jitter included; spread figures use it.
            local_target = chunk.pts_us - self.offset_us
            handed = self.clock.true_us()
            self.log.add(
                event="play",
                device=self.spec.id,
                stream=str(st.id),
                seq=chunk.seq,
                pts_us=chunk.pts_us,
                true_us=handed,
                handed_true_us=handed,
                true_play_us=self.clock.true_of(local_target),
                wake_late_us=now - chunk.pts_us,
                volume=st.header.volume
                if st.header and st.header.volume is not None
                else self.volume,
            )

    def _hold_streams(self, now: int) -> None:
        """While the broker is unreachable (up to ``outage_grace_s``), open streams do not
        time out: the idle timeout counts connected time only."""
        if self.link.connected:
            self._offline_since = None
            return
        if self._offline_since is None:
            self._offline_since = now
        if now - self._offline_since <= self.opt.outage_grace_s * 1e6:
            for st in self.streams.values():
                if not st.ended:
                    st.last_activity_us = max(st.last_activity_us, now)

    async def _finish(self, st: StreamState) -> None:
        self.streams.pop(st.id, None)
        self._arrived.discard(st.id)
        if st.item is not None:
            self.cache.unpin(st.item)
        self.closed[st.id] = st.preempted or st.suppressed
        while len(self.closed) > self.opt.remember_streams:
            self.closed.popitem(last=False)
        if self.current is st:
            self.current = None
        if self.pending is st:
            self.pending = None
        report = st.outcome()
        if self.recorder is not None:
            h = st.header
            self.recorder.finish(
                st.id, h.codec if h else "opus", h.pre_skip if h else 312, h.frame_ms if h else 20
            )
        self.log.add(event="report", device=self.spec.id, **report.model_dump())
        self.outbox.append(report)  # sent by _reporter, kept until the broker has it
        self._outbox_ready.set()

    async def _reporter(self) -> None:
        """Send proof of play in order; keep it through broker outages (bounded)."""
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready = anyio.Event()
            while self.outbox:
                await self._link_up.wait()  # a dead link: keep the proof until it is back
                try:
                    await self.link.publish(self._topic(DeviceTopic.REPORT), dump(self.outbox[0]))
                except LoaError:
                    with suppress(TimeoutError):
                        await self.link.wait_connected(3600)  # retry after the reconnect
                    continue
                self.outbox.popleft()  # the broker has it (QoS 1)

    def stats(self) -> dict[str, Any]:
        return {"id": self.spec.id, **self.counters, "offset_us": self.offset_us}
