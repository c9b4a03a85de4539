"""A speaker's side of clock sync: request exchanges, keep the offset model."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from devices.messages import TimeRequest, TimeResponse
from devices.timesync import OffsetModel, Sample
from loa.clock import SkewedClock

from .playlog import PlayLog


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
    ) -> None:
        self.device = device
        self.clock = clock
        self._send = send
        self.log = log
        self.first_samples = first_samples
        self.interval_s = interval_s
        self.model = self._new_model()
        self.synced = False
        self._waiters: dict[int, tuple[int, anyio.Event]] = {}
        self._next_id = 0

    def _new_model(self) -> OffsetModel:
        """Windows scaled to the sync rate: ~60 exchanges now, ~30 per drift bin."""
        step = max(self.interval_s, 1.0)
        return OffsetModel(recent_s=60 * step, bin_s=30 * step, history_s=1200 * step)

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

    def answer(self, resp: TimeResponse, t4: int) -> None:
        waiter = self._waiters.pop(resp.id, None)
        if waiter is None or waiter[0] != resp.t1_us:
            return  # not an answer to a request we have outstanding
        self.model.add(Sample(resp.t1_us, resp.t2_us, resp.t3_us, t4))
        waiter[1].set()

    async def exchange(self) -> None:
        """One request; the answer (if any within 1 s) feeds the model."""
        self._next_id += 1
        rid, event, t1 = self._next_id, anyio.Event(), self.clock.now_us()
        self._waiters[rid] = (t1, event)
        await self._send(TimeRequest(id=rid, t1_us=t1))
        with anyio.move_on_after(1.0):
            await event.wait()
        self._waiters.pop(rid, None)

    async def run(self) -> None:
        """A burst of exchanges at start (and after :meth:`reset`), then one per interval."""
        if self.first_samples <= 0 and self.interval_s <= 0:
            return  # clock sync switched off (fleet benchmarks on one host)
        exchanges = 0
        while True:
            if not self.synced:
                for _ in range(self.first_samples):
                    await self.exchange()
                    await self.clock.sleep(0.05)
                self.synced = bool(self.model.samples)
            elif self.interval_s > 0:
                await self.clock.sleep(self.interval_s)
                await self.exchange()
            else:
                await self.clock.sleep(3600)
            exchanges += 1
            if exchanges % 10 == 1:
                self.log.add(
                    event="sync",
                    device=self.device,
                    offset_us=self.offset_us(),
                    drift_ppm=round(self.model.drift_ppm, 2),
                    true_offset_us=self.clock.true_us() - self.clock.now_us(),
                )
