"""Speakers ride out a broker restart: they reconnect, and proof of play is not lost."""

from __future__ import annotations

import aiomqtt
import anyio

from broadcaster.broker.process import free_port, start_broker
from devices.messages import PlayReport, parse
from devices.signing import Signer, Verifier
from devices.topics import DeviceTopic, device_filter
from firmware_sim.fleet import Fleet
from firmware_sim.playlog import PlayLog
from firmware_sim.speaker import SpeakerOptions
from firmware_sim.spec import DeviceSpec
from tests.test_signed_frames import COMMUNE, COMMUNE_TOPIC, stream_frames, wait_for


async def test_reports_made_while_the_broker_is_down_arrive_after_it_returns() -> None:
    port = free_port()
    broker = start_broker("auto", port=port)
    controller = Signer.generate()
    specs = [DeviceSpec(id=f"br-{i}", commune=COMMUNE, hamlet="h-restart") for i in range(2)]
    fleet = Fleet(
        specs,
        host=broker.host,
        port=port,
        verifier=Verifier([controller.public]),
        log=PlayLog(),
        options=SpeakerOptions(first_sync_samples=0, sync_interval_s=0),
    )
    for sp in fleet.speakers.values():  # reconnect quickly in a test
        sp.link.options = sp.link.options.__class__(
            **{**sp.link.options.__dict__, "backoff_max_s": 0.3, "publish_timeout_s": 30}
        )
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(fleet.run)
            async with aiomqtt.Client(broker.host, port, identifier="restart-ctl") as client:
                for frame in stream_frames(controller, seconds=1.0):
                    await client.publish(COMMUNE_TOPIC, frame, qos=1)
                await wait_for(lambda: len(fleet.log.of("play")) >= 2)
            broker.stop()  # the speakers finish playing with no broker
            await wait_for(lambda: len(fleet.log.of("report")) == 2, timeout=10)
            assert all(sp.outbox for sp in fleet.speakers.values())  # kept, not dropped
            broker = start_broker("auto", port=port)
            async with aiomqtt.Client(broker.host, port, identifier="restart-sub") as sub:
                await sub.subscribe(device_filter(DeviceTopic.REPORT, COMMUNE), qos=1)
                got: dict[str, PlayReport] = {}
                with anyio.fail_after(20):
                    async for message in sub.messages:
                        assert isinstance(message.payload, bytes)
                        got[message.topic.value] = parse(PlayReport, message.payload)
                        if len(got) == 2:
                            break
            assert {r.outcome for r in got.values()} == {"played"}
            # the broker has them; each speaker drops its copy once the publish returns
            await wait_for(lambda: not any(sp.outbox for sp in fleet.speakers.values()))
            tg.cancel_scope.cancel()
    finally:
        broker.stop()
