"""Live and relayed audio on the air: packets arrive as they are spoken, frames leave.

A live broadcast has no stored item. Packets from a :class:`audio.live.LiveEncoder` are
grouped into small frames (``stream.live_chunk_ms``) and published as soon as each is
complete, on a timeline anchored when the first frame is ready plus
``stream.live_lead_ms``. If the source stalls (a phone on a weak network, a radio
stream that drops) the timeline would fall behind real time; :class:`LiveTimeline`
then moves it forward and records a gap instead of sending audio the speakers would
throw away as late. One publish per target group per frame, as for stored items.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from devices.frames import Codec, Frame, FrameType, Priority, pack_packets
from devices.messages import StreamEnd, StreamStart, dump
from loa.errors import BrokerError, LoaError

from ..places.targeting import Resolution
from .ledger import delivery_row
from .streams import StreamRunner, broadcast_row

logger = logging.getLogger(__name__)


@dataclass
class LiveTimeline:
    """Presentation times for live frames (pure; every time is passed in)."""

    lead_us: int
    frame_us: int
    start_us: int | None = None
    next_us: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (pts, length) in µs

    def place(self, packets: int, now_us: int) -> int:
        """The presentation time of a frame of ``packets`` packets that is ready now."""
        if self.start_us is None:
            self.start_us = self.next_us = now_us + self.lead_us
        elif self.next_us < now_us + self.lead_us // 2:
            # Fell behind (the source stalled): skip ahead rather than arrive late.
            target = now_us + self.lead_us
            self.gaps.append((self.next_us, target - self.next_us))
            self.next_us = target
        pts = self.next_us
        self.next_us += packets * self.frame_us
        return pts

    @property
    def covered_us(self) -> int:
        """Air time so far, gaps included."""
        return 0 if self.start_us is None else self.next_us - self.start_us

    @property
    def gap_us(self) -> int:
        return sum(length for _, length in self.gaps)


@dataclass(frozen=True)
class LiveRequest:
    resolution: Resolution
    title: str
    kind: str = "live"  # live or relay
    source: str = ""
    priority: Priority = Priority.LIVE
    #: Runs in the transaction that records the broadcast (a firing's occurrence row).
    also: Callable[[str], object] | None = None


class LiveBroadcast:
    """One live broadcast: :meth:`push` packets, then :meth:`close`.

    Driven by a :class:`~.streams.StreamRunner` (the dispatcher), through its public
    methods only."""

    def __init__(self, runner: StreamRunner, broadcast_id: str, req: LiveRequest) -> None:
        st = runner.settings
        self.runner = runner
        self.id = broadcast_id
        self.req = req
        self.stream_id = uuid.uuid4()
        self.topics = [g.topic_for("opus") for g in req.resolution.groups]
        self.frame_ms = 20
        self.per_chunk = max(1, st.live_chunk_ms // self.frame_ms)
        self.timeline = LiveTimeline(st.live_lead_ms * 1000, self.frame_ms * 1000)
        self.pending: list[bytes] = []
        self.seq = 0
        self.pre_skip = 312
        self.closed = False
        self.stop_requested = anyio.Event()
        self.published_us: list[tuple[int, int]] = []  # (pts, clock at publish), for benches

    async def push(self, packet: bytes, *, pre_skip: int | None = None) -> None:
        if self.closed:
            raise LoaError("this live broadcast is over")
        if pre_skip is not None:
            self.pre_skip = pre_skip
        self.pending.append(packet)
        if len(self.pending) >= self.per_chunk:
            await self._flush()

    async def _flush(self) -> None:
        if not self.pending:
            return
        d = self.runner
        packets, self.pending = self.pending, []
        now = d.clock.now_us()
        pts = self.timeline.place(len(packets), now)
        early = (pts - self.timeline.lead_us - now) / 1e6
        if early > 0:  # a source faster than real time (a file, a burst): pace it
            await d.clock.sleep(early)
        if self.seq == 0:
            await self._start()
        self.seq += 1
        frame = Frame(
            FrameType.AUDIO,
            self.stream_id,
            self.seq,
            pts,
            d.clock.now_us(),
            pack_packets(packets),
            Codec.OPUS,
            self.req.priority,
        )
        await d.send_frame(self.topics, frame)
        self.published_us.append((pts, d.clock.now_us()))

    async def _start(self) -> None:
        d = self.runner
        assert self.timeline.start_us is not None
        header = StreamStart(
            broadcast=self.id,
            codec="opus",
            sample_rate=48000,
            channels=1,
            frame_ms=self.frame_ms,
            pre_skip=self.pre_skip,
            chunk_ms=self.per_chunk * self.frame_ms,
            chunks=0,  # unknown: a live stream's length is told by its END
            duration_ms=0,
            title=self.req.title[:200],
        )
        await d.send_frame(
            self.topics,
            Frame(
                FrameType.START,
                self.stream_id,
                0,
                self.timeline.start_us,
                d.clock.now_us(),
                dump(header),
                Codec.OPUS,
                self.req.priority,
            ),
        )
        d.ledger.update(self.id, start_pts_us=self.timeline.start_us)

    async def close(self, reason: str = "complete", error: str = "", note: str = "") -> None:
        """Send what is left and the END frame; the ledger is closed after the reports.

        ``error`` fails the broadcast; ``note`` is kept with a broadcast that played
        (a relay's upstream interruptions).
        """
        if self.closed:
            return
        self.closed = True
        d = self.runner
        try:
            await self._flush()
            end_us = self.timeline.next_us or d.clock.now_us()
            if self.seq:
                end = StreamEnd(
                    chunks=self.seq, reason="complete" if reason == "complete" else "stopped"
                )
                await d.send_frame(
                    self.topics,
                    Frame(
                        FrameType.END,
                        self.stream_id,
                        self.seq + 1,
                        end_us,
                        d.clock.now_us(),
                        dump(end),
                        Codec.NONE,
                        self.req.priority,
                    ),
                )
        except BrokerError as exc:
            error = error or exc.message
            end_us = d.clock.now_us()
        d.ledger.update(
            self.id,
            chunks=self.seq,
            end_pts_us=end_us,
            gaps=len(self.timeline.gaps),
            gap_ms=self.timeline.gap_us // 1000,
            error=error or note,
        )
        d.ledger.set_stream_chunks(str(self.stream_id), self.seq)
        d.finish_later(self.id, end_us, "failed" if error else "done", error or note)


def ledger_rows(
    bid: str, stream_id: uuid.UUID, req: LiveRequest, now_us: int
) -> tuple[dict[str, object], list[dict[str, object]], list[dict[str, object]]]:
    """The broadcast, delivery and stream rows a live broadcast starts with."""
    online = {d.id for d in req.resolution.devices if d.online}
    broadcast = broadcast_row(
        bid,
        str(stream_id),
        media_id=None,
        title=req.title,
        priority=req.priority,
        resolution=req.resolution,
        now_us=now_us,
        start_us=now_us,
        end_us=now_us,
        chunks=0,
        kind=req.kind,
        source=req.source,
    )
    deliveries: list[dict[str, object]] = [
        {
            **delivery_row(bid, d, online),
            # Live audio is Opus only: an MP3-only speaker is told why it stayed silent.
            **({"reason": "live audio is sent as Opus only"} if d.needs_mp3 else {}),
        }
        for d in req.resolution.devices
    ]
    streams: list[dict[str, object]] = [
        {"stream_id": str(stream_id), "broadcast_id": bid, "codec": "opus", "chunks": 0}
    ]
    return broadcast, deliveries, streams
