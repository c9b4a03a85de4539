"""One handler table for inbound messages, keyed by the parsed topic."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from loa.errors import ProtocolError

from .topics import DeviceTopic, GroupKind, ParsedTopic, parse_topic

logger = logging.getLogger(__name__)

RouteHandler = Callable[[ParsedTopic, bytes], Awaitable[None]]


class Router:
    """Maps ``DeviceTopic`` (device topics) or ``GroupKind`` (audio topics) to handlers.

    Garbage — an unparsable topic, a handler raising ProtocolError — is dropped and
    counted (per device where one is known), never raised into the MQTT loop.
    """

    def __init__(self) -> None:
        self._device: dict[DeviceTopic, RouteHandler] = {}
        self._audio: RouteHandler | None = None
        self.dropped: Counter[str] = Counter()

    def on_device(self, which: DeviceTopic, handler: RouteHandler) -> None:
        self._device[which] = handler

    def on_audio(self, handler: RouteHandler) -> None:
        self._audio = handler

    async def __call__(self, topic: str, payload: bytes) -> None:
        try:
            parsed = parse_topic(topic)
        except ProtocolError as exc:
            self.dropped["(bad topic)"] += 1
            logger.debug("dropped message on bad topic: %s", exc)
            return
        handler: RouteHandler | None
        if parsed.group is not None:
            handler = self._audio
        else:
            assert parsed.which is not None
            handler = self._device.get(parsed.which)
        if handler is None:
            return
        try:
            await handler(parsed, payload)
        except ProtocolError as exc:
            who = parsed.device or (parsed.group.topic if parsed.group else topic)
            self.dropped[who] += 1
            logger.info("dropped message from %s on %s: %s", who, topic, exc.message)


__all__ = ["DeviceTopic", "GroupKind", "ParsedTopic", "Router"]
