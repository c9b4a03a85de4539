"""What the controller tells one speaker: signed commands (acknowledged once) and its config.

A command (``dev/{id}/cmd``) is obeyed at most once, before it expires, and always
answered with an ACK; a config (``dev/{id}/config``, retained) sets the volume, the
trusted keys and the groups — that is, the topics the speaker listens on.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from devices.frames import Frame
from devices.messages import Ack, Command, DeviceConfig, GroupRef, dump
from devices.topics import DeviceTopic, Group, GroupKind
from devices.transport import MqttLink
from loa.errors import LoaError

from .device import Device, Publish
from .player import Player


def group_topics(commune: str, groups: Iterable[GroupRef], codec: str) -> set[str]:
    """The audio topics a speaker of these groups listens on, for the codec it decodes."""
    return {t for g in groups for t in Group(commune, GroupKind(g.kind), g.id).topics_for(codec)}


class Commands:
    def __init__(
        self,
        dev: Device,
        player: Player,
        link: MqttLink,
        publish: Publish,
        *,
        codec: str,
        topics: set[str],
    ) -> None:
        self.dev = dev
        self.player = player
        self.link = link
        self._publish = publish
        self.codec = codec
        self.topics = topics  # the group topics subscribed now
        self.config_sent_us = -1  # the newest config taken (an older one changes nothing)
        self._seen: OrderedDict[str, None] = OrderedDict()  # command ids (replay check)

    async def on_config(self, frame: Frame, topic: str) -> None:
        dev = self.dev
        cfg = dev.parse(DeviceConfig, frame, topic)
        if cfg is None:
            return
        if cfg.device != dev.spec.id or cfg.commune != dev.spec.commune:
            dev.refuse("config addressed to another device", topic)
            return
        if frame.sent_us <= self.config_sent_us:
            return  # older than what we have
        self.config_sent_us = frame.sent_us
        if cfg.volume is not None:
            dev.volume = cfg.volume
        if cfg.keys:  # key rotation: trust exactly these from now on
            try:
                dev.frames = dev.frames.for_keys(list(cfg.keys))
            except LoaError as exc:
                dev.refuse(f"config keys: {exc.message}", topic)
                return
            dev.event("keys", keys=len(cfg.keys))
        wanted = group_topics(dev.spec.commune, cfg.groups, self.codec)
        for t in sorted(wanted - self.topics):
            await self.link.subscribe(t)
        for t in sorted(self.topics - wanted):
            await self.link.unsubscribe(t)
        self.topics = wanted
        dev.event("config", groups=sorted(wanted))

    async def on_command(self, frame: Frame, topic: str) -> None:
        dev = self.dev
        cmd = dev.parse(Command, frame, topic)
        if cmd is None:
            return
        if cmd.id in self._seen:
            dev.refuse("command replayed", topic)
            return
        self._seen[cmd.id] = None
        while len(self._seen) > dev.opt.remember_streams:
            self._seen.popitem(last=False)
        ok, detail = True, ""
        if cmd.expires_us < dev.controller_now():
            ok, detail = False, "command expired"
        elif cmd.action == "set_volume" and isinstance(cmd.args.get("volume"), int):
            dev.volume = max(0, min(100, int(cmd.args["volume"])))
        elif cmd.action == "stop":
            self.player.stop()
        elif cmd.action == "resync_clock":
            dev.sync.reset()  # the clock may have been stepped
        elif cmd.action == "test_tone":
            dev.event("test_tone", true_us=dev.clock.true_us())
        elif cmd.action == "update_config":  # ask the broker for the retained config again
            cfg = dev.topic(DeviceTopic.CONFIG)
            await self.link.unsubscribe(cfg)
            await self.link.subscribe(cfg)
        elif cmd.action == "reboot":
            dev.started_mono = dev.clock.monotonic()  # uptime since boot starts again
            dev.event("reboot", true_us=dev.clock.true_us())
        else:
            ok, detail = False, f"{cmd.action} is not supported by {dev.firmware}"
        await self._publish(DeviceTopic.ACK, dump(Ack(id=cmd.id, ok=ok, detail=detail)))
