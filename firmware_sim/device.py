"""What every part of one simulated speaker shares: identity, clocks, counters, the air.

The speaker's concerns (:mod:`.receive`, :mod:`.player`, :mod:`.prefetch`,
:mod:`.firmware`, :mod:`.commands`) each get this object rather than the whole
:class:`~firmware_sim.speaker.Speaker`, so none reaches into another's internals.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import anyio

from devices.frames import Frame
from devices.messages import Message, TimeRequest, parse
from devices.topics import DeviceTopic, device_topic
from loa.clock import SkewedClock
from loa.errors import ProtocolError

from .clocksync import ClockSync
from .framecache import FrameCache
from .options import SpeakerOptions
from .playlog import PlayLog
from .spec import DeviceSpec

M = TypeVar("M", bound=Message)


class Publish(Protocol):
    """Publish on one of the device's own topics; False when the broker is away."""

    def __call__(self, which: DeviceTopic, payload: bytes, qos: int = 1) -> Awaitable[bool]: ...


class Device:
    """One speaker's shared state; the parts change it, the speaker reports it."""

    def __init__(
        self,
        spec: DeviceSpec,
        clock: SkewedClock,
        log: PlayLog,
        opt: SpeakerOptions,
        frames: FrameCache,
        send_time_request: Callable[[TimeRequest], Awaitable[None]],
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.log = log
        self.opt = opt
        self.frames = frames  # replaced when a config rotates the trusted keys
        self.sync = ClockSync(
            spec.id,
            clock,
            send_time_request,
            log,
            first_samples=opt.first_sync_samples,
            interval_s=opt.sync_interval_s,
            settle_s=opt.settle_s,
            settle_interval_s=opt.settle_interval_s,
            step_ms=opt.clock_step_ms,
        )
        self.volume = 80
        self.firmware = spec.firmware
        self.started_mono = clock.monotonic()  # boot; a reboot or an install sets it again
        self.counters = {"refused": 0, "late": 0, "duplicate": 0, "played": 0, "ignored": 0}
        self.rng = random.Random(spec.id)  # noqa: S311 - fault injection, not crypto
        self._link_up = anyio.Event()
        self._link_up.set()

    @property
    def id(self) -> str:
        return self.spec.id

    def topic(self, which: DeviceTopic) -> str:
        return device_topic(self.spec.commune, self.spec.id, which)

    def controller_now(self) -> int:
        return self.sync.controller_now()

    def event(self, kind: str, /, **fields: Any) -> None:
        """Record what this device did in the play log (the tests' ground truth)."""
        self.log.add(event=kind, device=self.spec.id, **fields)

    # --- refusals ------------------------------------------------------------------

    def refuse(self, reason: str, topic: str) -> None:
        self.counters["refused"] += 1
        self.event("refused", reason=reason, topic=topic, true_us=self.clock.true_us())

    def parse(self, model: type[M], frame: Frame, topic: str) -> M | None:
        """The frame's JSON payload as ``model``, or None (refused and counted)."""
        try:
            return parse(model, frame.payload)
        except ProtocolError as exc:
            self.refuse(exc.message, topic)
            return None

    # --- the air (fault injection) -------------------------------------------------

    @property
    def link_cut(self) -> bool:
        return not self._link_up.is_set()

    def cut_link(self) -> None:
        if self._link_up.is_set():
            self._link_up = anyio.Event()
        self.event("link_cut", true_us=self.clock.true_us())

    def restore_link(self) -> None:
        self._link_up.set()
        self.event("link_restored", true_us=self.clock.true_us())

    async def wait_link_up(self) -> None:
        await self._link_up.wait()

    def lost(self) -> bool:
        """The link is cut, or this inbound message is lost (``spec.loss``)."""
        return self.link_cut or bool(self.spec.loss and self.rng.random() < self.spec.loss)

    async def delay(self) -> None:
        """Injected one-way network delay for this message (``delay_ms`` + jitter)."""
        if self.spec.delay_ms or self.spec.jitter_ms:
            jitter = self.rng.random() * self.spec.jitter_ms if self.spec.jitter_ms else 0.0
            await self.clock.sleep((self.spec.delay_ms + jitter) / 1000)
