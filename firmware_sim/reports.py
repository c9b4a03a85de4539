"""What a speaker tells the controller on its own: proof of play and telemetry.

Proof of play goes out in order and is kept (in the :class:`~firmware_sim.outbox.Outbox`,
on flash when there is a state directory) until the broker has taken it, through
broker outages, dead links and restarts; telemetry is sent every interval, QoS 0.
"""

from __future__ import annotations

from contextlib import suppress

import anyio

from devices.messages import Counters, PlayReport, Telemetry, dump
from devices.topics import DeviceTopic
from devices.transport import MqttLink
from loa.errors import LoaError

from .device import Device, Publish
from .outbox import Outbox


class Reports:
    def __init__(self, dev: Device, link: MqttLink, publish: Publish, outbox: Outbox) -> None:
        self.dev = dev
        self.link = link
        self._publish = publish
        self.outbox = outbox  # reports the broker has not taken yet, kept across restarts
        self._ready = anyio.Event()

    def add(self, report: PlayReport) -> None:
        self.outbox.append(report)  # sent by run_reporter, kept until the broker has it
        self._ready.set()

    def resend(self) -> None:
        """A new connection: send what the broker did not take before."""
        if self.outbox:
            self._ready.set()

    async def run_reporter(self) -> None:
        """Send proof of play in order; keep it through broker outages (bounded)."""
        while True:
            await self._ready.wait()
            self._ready = anyio.Event()
            while self.outbox:
                await self.dev.wait_link_up()  # a dead link: keep the proof until it is back
                topic = self.dev.topic(DeviceTopic.REPORT)
                try:
                    await self.link.publish(topic, dump(self.outbox[0]))
                except LoaError:
                    with suppress(TimeoutError):
                        await self.link.wait_connected(3600)  # retry after the reconnect
                    continue
                self.outbox.popleft()  # the broker has it (QoS 1)

    async def run_telemetry(self) -> None:
        dev = self.dev
        while True:
            await self.link.wait_connected(3600)
            await dev.wait_link_up()
            t = Telemetry(
                at_us=dev.controller_now(),
                uptime_s=int(dev.clock.monotonic() - dev.started_mono),
                volume=dev.volume,
                rssi_dbm=-70 - dev.rng.randint(0, 30),
                temperature_c=round(35 + dev.rng.random() * 10, 1),
                supply_v=12.1,
                fw=dev.firmware,
                clock_offset_us=dev.sync.offset_us(),
                counters=Counters(**dev.counters),
            )
            await self._publish(DeviceTopic.TELEMETRY, dump(t), qos=0)
            await dev.clock.sleep(dev.opt.telemetry_interval_s)
