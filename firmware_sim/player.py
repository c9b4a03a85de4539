"""A speaker's player: which stream owns the speaker (pre-emption), and playing it on time.

Streams arrive as START / AUDIO / END frames (or are injected from the cache by
:mod:`.prefetch`); a newcomer competes by priority with what is about to play, a
pre-empting stream takes over at its first presentation time, and every stream ends in
a proof-of-play report. The bookkeeping rules themselves are pure, in :mod:`.playout`.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable

import anyio
import anyio.lowlevel

from devices.frames import Frame, FrameType, Priority
from devices.messages import PlayReport, StreamEnd, StreamStart
from loa.errors import ProtocolError

from .device import Device
from .playout import Arrival, StreamState, accept_audio, chunk_of, finished, should_preempt
from .recorder import Recorder

#: The event loop's timers wake up to a millisecond late (epoll counts whole ms), which
#: put speakers in two processes up to ~1 ms apart on top of their clocks: a timer
#: brings the player to this far before a chunk, the rest is waited by yielding.
PRECISE_S = 0.002


class Player:
    def __init__(
        self,
        dev: Device,
        *,
        recorder: Recorder | None,
        connected: Callable[[], bool],
        release_item: Callable[[str], None],
        on_report: Callable[[PlayReport], None],
    ) -> None:
        self.dev = dev
        self.recorder = recorder
        self._connected = connected  # is the broker reachable?
        self._release_item = release_item  # a cached item's play is over (unpin it)
        self._on_report = on_report  # proof of play, to send
        self.streams: dict[uuid.UUID, StreamState] = {}
        self.closed: OrderedDict[uuid.UUID, bool] = OrderedDict()  # id → was pre-empted
        self.current: StreamState | None = None
        self.pending: StreamState | None = None  # takes over at its first presentation time
        self._arrived: set[uuid.UUID] = set()  # streams whose first audio frame is logged
        self._offline_since: int | None = None  # controller time the link went down
        self._wake = anyio.Event()

    def wake(self) -> None:
        """Something changed: the play loop looks again now."""
        self._wake.set()

    def known(self, sid: uuid.UUID) -> bool:
        """The stream is playing, waiting, or over (a new one may not reuse its id)."""
        return sid in self.streams or sid in self.closed

    # --- admission (pre-emption) ---------------------------------------------------

    def stream_for(self, frame: Frame, topic: str) -> StreamState | None:
        st = self.streams.get(frame.stream_id)
        if st is not None:
            return st
        if frame.stream_id in self.closed:
            if self.closed[frame.stream_id]:  # the rest of a pre-empted stream: expected
                self.dev.counters["ignored"] += 1
            else:
                self.dev.refuse("frame of a stream that already ended (replay)", topic)
            return None
        return self.admit(frame.stream_id, frame.priority, frame.pts_us)

    def admit(self, sid: uuid.UUID, priority: Priority, first_pts_us: int) -> StreamState:
        """A new stream competes for the speaker by priority (pre-emption rules)."""
        st = StreamState(sid, priority, last_activity_us=self.dev.controller_now())
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

    def stop(self) -> None:
        """The ``stop`` command: silence what plays and what was about to."""
        for st in (self.current, self.pending):
            if st is not None:
                st.preempted = True
                st.buffer.clear()
        self.pending = None

    def cancel(self, sid: uuid.UUID) -> bool:
        """Stop one stream if it is sounding or waiting; False if there is none."""
        st = self.streams.get(sid)
        if st is None:
            return False
        st.preempted = True
        st.buffer.clear()
        self._wake.set()
        return True

    # --- arrival -------------------------------------------------------------------

    async def on_stream_frame(self, frame: Frame, topic: str, packets: int) -> None:
        dev = self.dev
        st = self.stream_for(frame, topic)
        if st is None:
            return
        if frame.priority != st.priority:
            dev.refuse("priority changed within a stream", topic)
            return
        if frame.type is FrameType.START:
            st.header = dev.parse(StreamStart, frame, topic)
            if st.header is None:
                return
            st.expected = st.header.chunks or None  # 0: a live stream, told by its END
        elif frame.type is FrameType.END:
            end = dev.parse(StreamEnd, frame, topic)
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
                dev.refuse(exc.message, topic)
                return
            now = dev.controller_now()
            result = accept_audio(st, chunk, now, dev.opt.late_tolerance_ms * 1000)
            if st.id not in self._arrived:  # the stream's first audio frame (benches)
                self._arrived.add(st.id)
                dev.event(
                    "arrive",
                    stream=str(st.id),
                    seq=chunk.seq,
                    true_us=dev.clock.true_us(),
                    spare_us=chunk.pts_us - now,
                    late=result == Arrival.LATE,
                )
            if result == Arrival.DUPLICATE:
                dev.counters["duplicate"] += 1
            elif result == Arrival.LATE:
                dev.counters["late"] += 1
        self._wake.set()

    # --- playing -------------------------------------------------------------------

    async def _wait(self, seconds: float) -> None:
        with anyio.move_on_after(max(0.0, seconds)):
            await self._wake.wait()
        if self._wake.is_set():
            self._wake = anyio.Event()

    async def run(self) -> None:
        dev = self.dev
        idle_us = int(dev.opt.idle_timeout_s * 1e6)
        tol = dev.opt.late_tolerance_ms * 1000
        while True:
            now = dev.controller_now()
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
            chunk = cur.buffer[min(cur.buffer)]
            delay = (chunk.pts_us - now) / 1e6
            if delay > PRECISE_S:
                await self._wait(min(delay - PRECISE_S, horizon))
                continue
            if delay > 0:  # the last stretch: yield to the loop and look again
                await anyio.lowlevel.checkpoint()
                continue
            self._play(cur, now)

    def _play(self, st: StreamState, now: int) -> None:
        """Hand the stream's next chunk to the DAC and log it."""
        # The chunk arrived in time (accept_audio judged that), so a real speaker has
        # already queued it to its DAC for the exact local time; this task waking a
        # little late is the simulator's scheduling, not the speaker's, and is only
        # recorded (wake_late_us).
        dev = self.dev
        chunk = st.buffer.pop(min(st.buffer))
        if self.recorder is not None:
            self.recorder.played(st.id, chunk.payload)
        st.played += 1
        dev.counters["played"] += 1
        st.last_played_seq = chunk.seq
        if st.first_pts_us is None:
            st.first_pts_us = chunk.pts_us
        st.last_end_us = chunk.pts_us + chunk.duration_us
        # true_play_us: the model (a real speaker's DAC plays the chunk at the
        # sample-exact local time). handed_true_us: what this simulator actually
        # achieved — the true time it handed the chunk over, after its sleep, wake-up
        # jitter included; spread figures use it.
        local_target = chunk.pts_us - dev.sync.offset_us()
        handed = dev.clock.true_us()
        dev.event(
            "play",
            stream=str(st.id),
            seq=chunk.seq,
            pts_us=chunk.pts_us,
            true_us=handed,
            handed_true_us=handed,
            true_play_us=dev.clock.true_of(local_target),
            wake_late_us=now - chunk.pts_us,
            volume=st.header.volume if st.header and st.header.volume is not None else dev.volume,
        )

    def _hold_streams(self, now: int) -> None:
        """While the broker is unreachable (up to ``outage_grace_s``), open streams do not
        time out: the idle timeout counts connected time only."""
        if self._connected():
            self._offline_since = None
            return
        if self._offline_since is None:
            self._offline_since = now
        if now - self._offline_since <= self.dev.opt.outage_grace_s * 1e6:
            for st in self.streams.values():
                if not st.ended:
                    st.last_activity_us = max(st.last_activity_us, now)

    async def _finish(self, st: StreamState) -> None:
        self.streams.pop(st.id, None)
        self._arrived.discard(st.id)
        if st.item is not None:
            self._release_item(st.item)
        self.closed[st.id] = st.preempted or st.suppressed
        while len(self.closed) > self.dev.opt.remember_streams:
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
        self.dev.event("report", **report.model_dump())
        self._on_report(report)  # sent by the speaker's reporter, kept until the broker has it
