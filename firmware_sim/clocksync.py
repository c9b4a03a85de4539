"""A speaker's side of clock sync: request exchanges, keep the offset model.

At boot the model is empty and the first answer that echoes one of our outstanding
requests (its ``id`` and ``t1_us``: the nonce) is accepted whatever the offset, so a
speaker whose clock is hours off can sync. Afterwards an answer whose offset
disagrees with the model by more than ``step_us`` (beyond its own round trip) is not
fed to the model: it is a suspect. A quick probe follows; when ``STEP_CONFIRM``
suspects in a row agree with each other, the controller's clock has stepped: the model
is dropped, rebuilt from the suspects, and a burst of exchanges re-converges it. One
stray answer (a delayed packet) is only dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

from devices.messages import TimeRequest, TimeResponse
from devices.timesync import OffsetModel, Sample
from loa.clock import SkewedClock
from loa.errors import LoaError

from .playlog import PlayLog

logger = logging.getLogger(__name__)

#: Suspect answers in a row, agreeing with each other, that make a clock step.
STEP_CONFIRM = 3


class ClockSync:
    """Estimates controller clock − device clock from ``time/req`` ↔ ``time/resp``.

    ``send`` publishes a request (with whatever uplink delay the simulator injects);
    :meth:`answer` is fed each verified answer with its arrival time.
    """

    def __init__(
        self,
        device: str,
        clock: SkewedClock,
        send: Callable[[TimeRequest], Awaitable[None]],
        log: PlayLog,
        *,
        first_samples: int,
        interval_s: float,
        settle_s: float = 0.0,
        settle_interval_s: float = 0.0,
        step_ms: int = 500,
    ) -> None:
        self.device = device
        self.clock = clock
        self._send = send
        self.log = log
        self.first_samples = first_samples
        self.interval_s = interval_s
        self.settle_s = settle_s
        self.settle_interval_s = settle_interval_s
        self._burst_at_us: int | None = None  # device time of the last burst
        self.step_us = step_ms * 1000
        self.model = self._new_model()
        self.synced = False
        self.steps = 0  # clock steps detected
        self._suspects: list[Sample] = []
        self._probe = anyio.Event()
        self._waiters: dict[int, tuple[int, anyio.Event]] = {}
        self._next_id = 0

    def _new_model(self) -> OffsetModel:
        """History scaled to the sync rate: 1,200 exchanges' worth of time."""
        step = max(self.interval_s, 1.0)
        return OffsetModel(history_s=1200 * step)

    def offset_us(self, local_us: int | None = None) -> int:
        """Controller − device at ``local_us`` (now if None); 0 before any sync."""
        local = self.clock.now_us() if local_us is None else local_us
        return self.model.predict(local) or 0

    def controller_now(self) -> int:
        local = self.clock.now_us()
        return local + self.offset_us(local)

    def reset(self) -> None:
        """Forget every sample (``resync_clock``, or the device clock was stepped)."""
        self.model = self._new_model()
        self.synced = False
        self._suspects = []
        self._probe.set()

    def answer(self, resp: TimeResponse, t4: int) -> None:
        waiter = self._waiters.pop(resp.id, None)
        if waiter is None or waiter[0] != resp.t1_us:
            return  # not an answer to a request we have outstanding (not our nonce)
        sample = Sample(resp.t1_us, resp.t2_us, resp.t3_us, t4)
        waiter[1].set()
        if sample.delay < 0:
            return
        predicted = self.model.predict(resp.t1_us)
        if predicted is None:  # boot (or after a reset): any offset is accepted
            self.model.add(sample)
            return
        if abs(sample.offset - predicted) - sample.delay / 2 <= self.step_us:
            self._suspects = []
            self.model.add(sample)
            return
        self._suspects.append(sample)
        offsets = [s.offset for s in self._suspects[-STEP_CONFIRM:]]
        if len(offsets) >= STEP_CONFIRM and max(offsets) - min(offsets) <= self.step_us:
            self._stepped(predicted, self._suspects[-STEP_CONFIRM:])
        else:
            self._probe.set()  # ask again at once rather than at the next interval

    def _stepped(self, old_us: int, samples: list[Sample]) -> None:
        self.steps += 1
        self.model = self._new_model()
        for s in samples:
            self.model.add(s)
        self._suspects = []
        self.synced = False  # the run loop takes a burst of exchanges
        self._probe.set()
        new_us = self.model.predict(samples[-1].t1) or 0
        logger.warning(
            "speaker %s: the controller's clock stepped by %.3f s; re-syncing",
            self.device,
            (new_us - old_us) / 1e6,
        )
        self.log.add(
            event="clock_step",
            device=self.device,
            step_us=new_us - old_us,
            true_us=self.clock.true_us(),
        )

    async def exchange(self) -> None:
        """One request; the answer (if any within 1 s) feeds the model. A request that
        cannot be sent (the broker is away) is just lost, like one lost on the air."""
        self._next_id += 1
        rid, event, t1 = self._next_id, anyio.Event(), self.clock.now_us()
        self._waiters[rid] = (t1, event)
        try:
            await self._send(TimeRequest(id=rid, t1_us=t1))
            with anyio.move_on_after(1.0):
                await event.wait()
        except LoaError as exc:
            logger.info("speaker %s: time request not sent: %s", self.device, exc.message)
            await self.clock.sleep(1.0)
        finally:
            self._waiters.pop(rid, None)

    async def _pause(self, seconds: float) -> None:
        """Sleep until the next exchange is due, or a probe is asked for."""
        async with anyio.create_task_group() as tg:

            async def alarm() -> None:
                await self.clock.sleep(seconds)  # the device's clock, not the host's
                tg.cancel_scope.cancel()

            tg.start_soon(alarm)
            await self._probe.wait()
            tg.cancel_scope.cancel()
        if self._probe.is_set():
            self._probe = anyio.Event()

    def next_pause_s(self) -> float:
        """The wait before the next periodic exchange: ``settle_interval_s`` for the
        first ``settle_s`` after a burst (the drift is learnt from a longer baseline
        sooner), then ``interval_s``."""
        settling = (
            self._burst_at_us is not None
            and 0 < self.settle_interval_s < self.interval_s
            and self.clock.now_us() - self._burst_at_us < self.settle_s * 1e6
        )
        return self.settle_interval_s if settling else self.interval_s

    async def run(self) -> None:
        """A burst of exchanges at start (and after a reset or a step), then one every
        ``settle_interval_s`` while settling, then one per interval; a suspect answer
        is probed at once."""
        if self.first_samples <= 0 and self.interval_s <= 0:
            return  # clock sync switched off (fleet benchmarks on one host)
        exchanges = 0
        while True:
            if not self.synced:
                for _ in range(max(1, self.first_samples)):
                    await self.exchange()
                    await self.clock.sleep(0.05)
                self.synced = bool(self.model.samples)
                self._burst_at_us = self.clock.now_us()
            elif self._suspects:
                await self.exchange()
                await self.clock.sleep(0.05)
            elif self.interval_s > 0:
                await self._pause(self.next_pause_s())
                await self.exchange()
            else:
                await self._pause(3600)
            exchanges += 1
            if exchanges % 10 == 1:
                self.log.add(
                    event="sync",
                    device=self.device,
                    offset_us=self.offset_us(),
                    drift_ppm=round(self.model.drift_ppm, 2),
                    true_offset_us=self.clock.true_us() - self.clock.now_us(),
                )
