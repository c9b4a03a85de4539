"""A deliberately broken speaker, for the conformance kit's own tests.

Written only on ``devices/`` (the wire protocol), not on ``firmware_sim``: it is what a
careless vendor might ship. It connects from its provisioning file, announces itself,
syncs its clock, answers commands, stores prefetched items and checks firmware hashes
properly, and remembers ended streams and command ids (so replays are refused). Its
faults, each switchable:

- ``verify=False``: it never checks a frame's signature (forged frames, frames signed
  for another device's topic play);
- ``window=False``: it never checks a frame's sent time (frames a minute old play);
- it never pre-empts: every stream plays to its end, side by side, and an END
  ``preempted`` is ignored.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field

import anyio
import anyio.abc

from devices.frames import Frame, FrameType, decode_frame, unpack_packets
from devices.items import sha256_hex, unpack_item
from devices.messages import (
    Ack,
    CacheReport,
    Command,
    DeviceConfig,
    FirmwareOffer,
    FirmwareStatus,
    ItemOffer,
    PlayItem,
    PlayReport,
    Presence,
    StreamEnd,
    StreamStart,
    TimeRequest,
    TimeResponse,
    dump,
    parse,
)
from devices.provisioning import Provisioning, endpoint
from devices.signing import Verifier, public_from_hex
from devices.timesync import Sample, estimate
from devices.topics import DeviceTopic, Group, GroupKind, device_inbox_filter, device_topic
from devices.transport import LinkOptions, MqttLink
from loa.clock import SystemClock
from loa.errors import ProtocolError

LATE_US = 40_000


class AnyKey(Verifier):
    """The fault: a 'verifier' that believes every signature."""

    def verify(self, kid: bytes, signed: bytes, signature: bytes) -> None:
        return None


@dataclass
class Playing:
    start: StreamStart | None = None
    on_time: list[int] = field(default_factory=list)  # presentation times played
    late: int = 0


class BrokenSpeaker:
    def __init__(self, prov: Provisioning, *, verify: bool = False, window: bool = False) -> None:
        self.prov = prov
        self.clock = SystemClock()
        trusted = Verifier([public_from_hex(k.public) for k in prov.keys])
        self.verifier: Verifier = (
            trusted if verify else AnyKey([public_from_hex(prov.keys[0].public)])
        )
        self.window = window
        self.offset_us = 0
        self.samples: list[Sample] = []
        self.asked: dict[int, int] = {}
        self.next_id = 0
        self.resync = anyio.Event()
        self.streams: dict[uuid.UUID, Playing] = {}
        self.done: set[uuid.UUID] = set()
        self.commands: set[str] = set()
        self.items: dict[str, tuple[ItemOffer, bytearray]] = {}
        self.stored: dict[str, list[bytes]] = {}
        self.fw: tuple[FirmwareOffer, bytearray] | None = None
        self.tg: anyio.abc.TaskGroup | None = None
        host, port, _ = endpoint(prov)
        groups = [
            Group(prov.commune, GroupKind.COMMUNE),
            Group(prov.commune, GroupKind.HAMLET, prov.hamlet),
            Group(prov.commune, GroupKind.DEVICE, prov.device),
        ]
        subs = [*device_inbox_filter(prov.commune, prov.device)]
        subs += [t for g in groups for t in g.topics_for("opus")]
        session = secrets.token_hex(8)
        self.session = session
        self.link = MqttLink(
            LinkOptions(
                host=host,
                port=port,
                client_id=f"broken-{prov.device}",
                will_topic=self.topic(DeviceTopic.PRESENCE),
                will_payload=dump(Presence(state="offline", session=session)),
                subscriptions=tuple((t, 1) for t in subs),
            ),
            self.on_message,
            self.clock,
        )
        self.link.on_connect(self.announce)

    def topic(self, which: DeviceTopic) -> str:
        return device_topic(self.prov.commune, self.prov.device, which)

    def now(self) -> int:
        """Controller time, as this speaker estimates it."""
        return self.clock.now_us() + self.offset_us

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with anyio.create_task_group() as tg:
            self.tg = tg
            tg.start_soon(self.link.run)
            tg.start_soon(self.sync_loop)
            await self.link.wait_connected(10)
            task_status.started()

    async def announce(self) -> None:
        p = Presence(
            state="online", fw="broken/1", codecs=["opus"], proto="1.1", session=self.session
        )
        await self.link.publish(self.topic(DeviceTopic.PRESENCE), dump(p), retain=True)

    async def send(self, which: DeviceTopic, payload: bytes) -> None:
        await self.link.publish(self.topic(which), payload)

    # --- clock sync ----------------------------------------------------------------

    async def sync_loop(self) -> None:
        await self.link.wait_connected(10)
        while True:
            for _ in range(10):
                self.next_id += 1
                t1 = self.clock.now_us()
                self.asked[self.next_id] = t1
                await self.send(DeviceTopic.TIME_REQ, dump(TimeRequest(id=self.next_id, t1_us=t1)))
                await anyio.sleep(0.05)
            with anyio.move_on_after(5):
                await self.resync.wait()
            self.resync = anyio.Event()

    def on_time_answer(self, resp: TimeResponse, t4: int) -> None:
        if self.asked.pop(resp.id, None) != resp.t1_us:
            return
        self.samples.append(Sample(resp.t1_us, resp.t2_us, resp.t3_us, t4))
        est = estimate(self.samples[-40:])
        if est is not None:
            self.offset_us = est.offset_us

    # --- inbound -------------------------------------------------------------------

    async def on_message(self, topic: str, payload: bytes) -> None:
        try:
            await self.handle(topic, payload, self.clock.now_us())
        except ProtocolError:
            return  # garbage or a bad signature (when it checks one): dropped

    async def handle(self, topic: str, payload: bytes, t4: int) -> None:
        frame = decode_frame(payload, self.verifier, topic)
        if frame.type is FrameType.TIME:
            self.on_time_answer(parse(TimeResponse, frame.payload), t4)
            return
        if frame.type is FrameType.CONFIG:
            await self.on_config(parse(DeviceConfig, frame.payload))
            return
        if self.window and abs(frame.sent_us - self.now()) > 30_000_000:
            return
        if frame.type is FrameType.COMMAND:
            await self.on_command(parse(Command, frame.payload))
        elif frame.type in (FrameType.START, FrameType.AUDIO, FrameType.END):
            self.on_stream(frame)
        elif frame.type in (FrameType.ITEM, FrameType.ITEM_DATA, FrameType.PLAY):
            await self.on_prefetch(frame)
        elif frame.type in (FrameType.FIRMWARE, FrameType.FIRMWARE_DATA):
            await self.on_firmware(frame)

    async def on_config(self, cfg: DeviceConfig) -> None:
        for g in cfg.groups:
            group = Group(self.prov.commune, GroupKind(g.kind), g.id)
            for t in group.topics_for("opus"):
                await self.link.subscribe(t)

    async def on_command(self, cmd: Command) -> None:
        if cmd.id in self.commands:
            return  # replay: refused
        self.commands.add(cmd.id)
        ok = cmd.expires_us >= self.now()
        if ok and cmd.action == "resync_clock":
            self.samples.clear()
            self.resync.set()
        detail = "" if ok else "command expired"
        await self.send(DeviceTopic.ACK, dump(Ack(id=cmd.id, ok=ok, detail=detail)))

    def on_stream(self, frame: Frame) -> None:
        sid = frame.stream_id
        if sid in self.done:
            return  # a completed stream's frames again: refused
        st = self.streams.setdefault(sid, Playing())
        if frame.type is FrameType.START:
            st.start = parse(StreamStart, frame.payload)
        elif frame.type is FrameType.AUDIO:
            if self.now() > frame.pts_us + LATE_US:
                st.late += 1
            else:
                st.on_time.append(frame.pts_us)
        else:  # END, whatever its reason: the fault is that "preempted" changes nothing
            end = parse(StreamEnd, frame.payload)
            self.done.add(sid)
            last = max(st.on_time, default=frame.pts_us)
            chunk_ms = st.start.chunk_ms if st.start else 500
            assert self.tg is not None
            self.tg.start_soon(
                self.report_at, sid, st, end.chunks, last + chunk_ms * 1000, "stream"
            )

    async def report_at(
        self, sid: uuid.UUID, st: Playing, chunks: int, at_us: int, source: str
    ) -> None:
        await anyio.sleep(max(0.0, (at_us - self.now()) / 1e6))
        played = len(st.on_time)
        outcome = "played" if played == chunks else ("partial" if played else "missed")
        rep = PlayReport(
            stream=str(sid),
            outcome=outcome,  # type: ignore[arg-type]
            started_us=min(st.on_time) if st.on_time else None,
            frames_played=played,
            frames_late=st.late,
            frames_missing=max(0, chunks - played - st.late),
            source=source,  # type: ignore[arg-type]
        )
        await self.send(DeviceTopic.REPORT, dump(rep))

    async def on_prefetch(self, frame: Frame) -> None:
        if frame.type is FrameType.ITEM:
            offer = parse(ItemOffer, frame.payload)
            self.items[offer.item] = (offer, bytearray())
            return
        if frame.type is FrameType.ITEM_DATA:
            got = self.items.get(str(frame.stream_id))
            if got is None:
                return
            offer, data = got
            data += frame.payload
            if frame.seq < offer.slices:
                return
            del self.items[offer.item]
            if sha256_hex(bytes(data)) != offer.sha256:
                rep = CacheReport(item=offer.item, state="refused", detail="SHA-256 mismatch")
            else:
                self.stored[offer.item] = unpack_item(bytes(data))
                rep = CacheReport(item=offer.item, state="stored")
            await self.send(DeviceTopic.CACHE, dump(rep))
            return
        play = parse(PlayItem, frame.payload)
        chunks = self.stored.get(play.item)
        state = "armed" if chunks is not None else "missing"
        rep = CacheReport(item=play.item, state=state, broadcast=play.broadcast)  # type: ignore[arg-type]
        await self.send(DeviceTopic.CACHE, dump(rep))
        if chunks is not None:
            st, pts = Playing(), play.at_us
            for c in chunks:
                st.on_time.append(pts)
                pts += len(unpack_packets(c)) * 20_000
            assert self.tg is not None
            self.tg.start_soon(self.report_at, frame.stream_id, st, len(chunks), pts, "cache")

    async def on_firmware(self, frame: Frame) -> None:
        if frame.type is FrameType.FIRMWARE:
            self.fw = (parse(FirmwareOffer, frame.payload), bytearray())
            return
        if self.fw is None:
            return
        offer, data = self.fw
        data += frame.payload
        if frame.seq < offer.slices:
            return
        self.fw = None
        ok = sha256_hex(bytes(data)) == offer.sha256 and len(data) == offer.size
        status = FirmwareStatus(
            rollout=offer.rollout,
            version=offer.version if ok else "broken/1",
            state="installed" if ok else "refused",
            detail="" if ok else "SHA-256 does not match",
        )
        await self.send(DeviceTopic.FW_STATUS, dump(status))
