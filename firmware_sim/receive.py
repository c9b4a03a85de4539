"""A speaker's front door: every inbound MQTT message is parsed, verified and checked here.

A message is decoded and its signature verified (:class:`~firmware_sim.framecache.FrameCache`),
its frame type must belong on the topic it came by, emergency audio only on alert topics,
and everything but TIME and CONFIG must be within the replay window. What passes goes to
the one handler for its frame type; what fails is refused, counted and logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from devices.frames import Frame, FrameType, Priority
from devices.topics import DeviceTopic, parse_topic
from loa.errors import ProtocolError

from .device import Device

#: Which frame type may arrive on which of the device's own topics.
TOPIC_FRAMES = {
    DeviceTopic.CMD: (FrameType.COMMAND,),
    DeviceTopic.CONFIG: (FrameType.CONFIG,),
    DeviceTopic.TIME_RESP: (FrameType.TIME,),
    DeviceTopic.FW: (FrameType.FIRMWARE, FrameType.FIRMWARE_DATA),
}
AUDIO_FRAMES = (FrameType.START, FrameType.AUDIO, FrameType.END)
PREFETCH_FRAMES = (FrameType.ITEM, FrameType.ITEM_DATA, FrameType.PLAY)
FIRMWARE_FRAMES = (FrameType.FIRMWARE, FrameType.FIRMWARE_DATA)

OnFrame = Callable[[Frame, str], Awaitable[None]]


@dataclass(frozen=True)
class Handlers:
    """Where each kind of verified frame goes (the speaker wires its parts in here)."""

    time: Callable[[Frame, str, int], None]  # frame, topic, arrival (device clock, µs)
    config: OnFrame
    command: OnFrame
    firmware: OnFrame
    prefetch: OnFrame
    stream: Callable[[Frame, str, int], Awaitable[None]]  # frame, topic, Opus packets


class Receiver:
    def __init__(self, dev: Device, handlers: Handlers) -> None:
        self.dev = dev
        self.handlers = handlers

    def admissible(self, frame: Frame, which: DeviceTopic | None, emergency: bool) -> bool:
        """May this frame type arrive on this kind of topic? (device topic or group topic)"""
        if which is not None:
            expected = TOPIC_FRAMES.get(which)
            return expected is None or frame.type in expected
        return frame.type in AUDIO_FRAMES or (frame.type in PREFETCH_FRAMES and not emergency)

    async def on_message(self, topic: str, payload: bytes) -> None:
        dev = self.dev
        try:
            parsed = parse_topic(topic)
        except ProtocolError:
            return
        if dev.lost():
            return
        await dev.delay()
        arrived = dev.clock.now_us()
        try:
            frame, packets = dev.frames.decode(payload, topic)
        except ProtocolError as exc:
            dev.refuse(exc.message, topic)
            return
        if not self.admissible(frame, parsed.which, parsed.emergency):
            dev.refuse(f"a {frame.type.name} frame does not belong on {topic}", topic)
            return
        if parsed.group is not None and parsed.emergency != (frame.priority is Priority.EMERGENCY):
            dev.refuse("emergency audio travels only on alert topics, and only it", topic)
            return
        h = self.handlers
        if frame.type is FrameType.TIME:
            h.time(frame, topic, arrived)
            return
        if frame.type is FrameType.CONFIG:
            await h.config(frame, topic)
            return
        if abs(frame.sent_us - dev.controller_now()) > dev.opt.replay_window_s * 1e6:
            dev.refuse("frame outside the replay window (stale or replayed)", topic)
            return
        if frame.type is FrameType.COMMAND:
            await h.command(frame, topic)
        elif frame.type in FIRMWARE_FRAMES:
            await h.firmware(frame, topic)
        elif frame.type in PREFETCH_FRAMES:
            await h.prefetch(frame, topic)
        elif frame.type in AUDIO_FRAMES:
            await h.stream(frame, topic, packets)
