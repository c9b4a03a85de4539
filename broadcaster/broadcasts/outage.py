"""Riding out a broker outage while a broadcast streams.

For up to ``stream.outage_grace_s`` a frame waits for the broker to come back; one whose
presentation time passed meanwhile is not sent (it could not play: a gap the speakers
report), and the broadcast's note says how long the broker was away and what was lost.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass

import anyio

from devices.frames import Frame, FrameType
from loa.clock import Clock
from loa.errors import BrokerError

from .streams import Publisher

logger = logging.getLogger(__name__)


@dataclass
class Outage:
    """A broker outage met while streaming one broadcast."""

    since: float | None = None  # monotonic, while the broker is away
    total_s: float = 0.0
    skipped: int = 0  # frames whose time had passed when the broker came back

    @property
    def met(self) -> bool:
        return self.since is not None or bool(self.total_s)

    def note(self, now: float) -> str:
        away = self.total_s + (now - self.since if self.since is not None else 0.0)
        if not away and not self.skipped:
            return ""
        return (
            f"MQTT broker unreachable for {away:.0f} s during the broadcast;"
            f" {self.skipped} frames were past their time and not sent"
        )

    def past(self, frame: Frame, now_us: int) -> bool:
        """An AUDIO frame whose time has passed is skipped (counted), never sent late."""
        if frame.type is FrameType.AUDIO and now_us > frame.pts_us:
            self.skipped += 1
            return True
        return False


async def send_through(
    outage: Outage,
    publisher: Publisher,
    clock: Clock,
    grace_s: float,
    bid: str,
    frame: Frame,
    send: Callable[[], Awaitable[None]],
) -> bool:
    """Send a stream frame (``send``), riding out a broker outage of up to ``grace_s``:
    False if the frame's time passed meanwhile; BrokerError once the outage is longer."""
    while True:
        if outage.met and outage.past(frame, clock.now_us()):
            return False
        try:
            if not publisher.connected:
                raise BrokerError("the MQTT broker is not reachable")
            await send()
        except BrokerError:
            now = clock.monotonic()
            if outage.since is None:
                outage.since = now
                logger.warning("broadcast %s: the MQTT broker is away; riding through", bid)
            left = grace_s - (now - outage.since)
            if left <= 0:
                raise BrokerError(
                    f"the MQTT broker was unreachable for more than "
                    f"{grace_s:.0f} s (stream.outage_grace_s)"
                ) from None
            with anyio.move_on_after(min(left, 1.0)), suppress(TimeoutError):
                await publisher.wait_connected(left)
            continue
        if outage.since is not None:
            outage.total_s += clock.monotonic() - outage.since
            outage.since = None
            logger.warning("broadcast %s: the MQTT broker is back", bid)
        return True
