"""The reference speaker follows docs/protocol.md: replay window, config, commands."""

from __future__ import annotations

import uuid

import anyio

from broadcaster.broker.process import Broker
from devices.frames import Codec, Frame, FrameType, Priority, encode_frame
from devices.messages import Ack, Command, DeviceConfig, GroupRef, dump, parse
from devices.signing import Signer
from devices.topics import DeviceTopic, Group, GroupKind, device_topic
from loa.clock import SystemClock
from tests.test_signed_frames import COMMUNE, COMMUNE_TOPIC, speakers, stream_frames, wait_for

NIL = uuid.UUID(int=0)


async def test_stale_frames_are_refused(broker: Broker) -> None:
    async with speakers(broker) as (fleet, controller, client):
        now = SystemClock().now_us()
        old = Frame(FrameType.AUDIO, uuid.uuid4(), 1, now, now - 31_000_000, b"\x01a", Codec.OPUS)
        future = Frame(
            FrameType.AUDIO, uuid.uuid4(), 1, now, now + 31_000_000, b"\x01a", Codec.OPUS
        )
        for f in (old, future):
            await client.publish(COMMUNE_TOPIC, encode_frame(f, controller, COMMUNE_TOPIC), qos=1)
        await wait_for(lambda: len(fleet.log.of("refused")) >= 6)
        assert all("replay window" in e["reason"] for e in fleet.log.of("refused"))
        assert fleet.log.of("play") == []


async def test_config_moves_a_speaker_to_another_hamlet(broker: Broker) -> None:
    async with speakers(broker) as (fleet, controller, client):
        sp = next(iter(fleet.speakers.values()))
        topic = device_topic(COMMUNE, sp.spec.id, DeviceTopic.CONFIG)
        now = SystemClock().now_us()

        def config(groups: list[GroupRef], sent: int, device: str = sp.spec.id) -> bytes:
            cfg = DeviceConfig(device=device, commune=COMMUNE, groups=groups, issued_us=sent)
            frame = Frame(FrameType.CONFIG, NIL, 0, sent, sent, dump(cfg), Codec.NONE)
            return encode_frame(frame, controller, topic)

        moved = [GroupRef(kind="all"), GroupRef(kind="hamlet", id="ap-moi")]
        await client.publish(topic, config(moved, now), qos=1)
        await wait_for(lambda: bool(fleet.log.of("config", device=sp.spec.id)))
        want = {
            *Group(COMMUNE, GroupKind.COMMUNE).topics_for("opus"),
            *Group(COMMUNE, GroupKind.HAMLET, "ap-moi").topics_for("opus"),
        }
        assert set(fleet.log.of("config")[-1]["groups"]) == want
        # An older config (e.g. a replay) changes nothing; one for another device is refused.
        await client.publish(topic, config([GroupRef(kind="all")], now - 1_000_000), qos=1)
        await client.publish(topic, config(moved, now + 5, device="khac-1"), qos=1)
        await wait_for(lambda: sp.counters["refused"] >= 1)
        assert len(fleet.log.of("config", device=sp.spec.id)) == 1
        assert sp.topics == want
        # The speaker now plays what is sent to its new hamlet.
        hamlet_topic = Group(COMMUNE, GroupKind.HAMLET, "ap-moi").topic
        for frame in stream_frames(controller, hamlet_topic):
            await client.publish(hamlet_topic, frame, qos=1)
        await wait_for(lambda: bool(fleet.log.of("report", device=sp.spec.id)))
        assert fleet.log.of("report", device=sp.spec.id)[0]["outcome"] == "played"


async def test_commands_are_acknowledged_once_and_expire(broker: Broker) -> None:
    async with speakers(broker) as (fleet, controller, client):
        sp = next(iter(fleet.speakers.values()))
        topic = device_topic(COMMUNE, sp.spec.id, DeviceTopic.CMD)
        ack_topic = device_topic(COMMUNE, sp.spec.id, DeviceTopic.ACK)
        await client.subscribe(ack_topic, qos=1)
        now = SystemClock().now_us()

        def command(action: str, expires: int, **args: int | str | bool) -> tuple[str, bytes]:
            cid = str(uuid.uuid4())
            cmd = Command(id=cid, action=action, args=args, expires_us=expires)  # type: ignore[arg-type]
            frame = Frame(FrameType.COMMAND, NIL, 0, now, now, dump(cmd), Codec.NONE)
            return cid, encode_frame(frame, controller, topic)

        async def next_ack() -> Ack:
            with anyio.fail_after(5):
                message = await anext(client.messages)
            assert isinstance(message.payload, bytes)
            return parse(Ack, message.payload)

        cid, volume = command("set_volume", now + 60_000_000, volume=35)
        await client.publish(topic, volume, qos=1)
        ack = await next_ack()
        assert (ack.id, ack.ok) == (cid, True) and sp.volume == 35
        await client.publish(topic, volume, qos=1)  # replayed: refused, no second ack
        await wait_for(lambda: sp.counters["refused"] == 1)
        cid, late = command("set_volume", now - 1, volume=90)
        await client.publish(topic, late, qos=1)
        ack = await next_ack()
        assert (ack.id, ack.ok, ack.detail) == (cid, False, "command expired")
        assert sp.volume == 35
        cid, boot = command("reboot", now + 60_000_000)
        await client.publish(topic, boot, qos=1)
        ack = await next_ack()
        assert (ack.id, ack.ok) == (cid, True) and fleet.log.of("reboot", device=sp.spec.id)
        # A command moved to an audio topic fails its signature; a COMMAND frame signed
        # for an audio topic is the wrong type there. Neither does anything.
        await client.publish(COMMUNE_TOPIC, command("stop", now + 60_000_000)[1], qos=1)
        cmd = Command(id=str(uuid.uuid4()), action="stop", expires_us=now + 60_000_000)
        wrong = Frame(FrameType.COMMAND, NIL, 0, now, now, dump(cmd), Codec.NONE)
        await client.publish(COMMUNE_TOPIC, encode_frame(wrong, controller, COMMUNE_TOPIC), qos=1)
        await wait_for(lambda: sp.counters["refused"] == 3)
        reasons = [e["reason"] for e in fleet.log.of("refused", device=sp.spec.id)][-2:]
        assert "another topic" in reasons[0]
        assert "does not belong" in reasons[1]


async def test_emergency_audio_only_on_alert_topics_and_nothing_else_there(
    broker: Broker,
) -> None:
    async with speakers(broker) as (fleet, controller, client):
        alert_topic = Group(COMMUNE, GroupKind.COMMUNE).topic_for("opus", emergency=True)
        # Emergency priority on the normal audio topic: refused.
        for frame in stream_frames(controller, COMMUNE_TOPIC, priority=Priority.EMERGENCY):
            await client.publish(COMMUNE_TOPIC, frame, qos=1)
        # Normal priority on the alert topic: refused.
        for frame in stream_frames(controller, alert_topic, priority=Priority.NORMAL):
            await client.publish(alert_topic, frame, qos=1)
        n = len(fleet.speakers)
        await wait_for(lambda: sum(sp.counters["refused"] for sp in fleet.speakers.values()) >= n)
        assert fleet.log.of("play") == []
        # An emergency stream on the alert topic plays everywhere.
        for frame in stream_frames(controller, alert_topic):
            await client.publish(alert_topic, frame, qos=1)
        await wait_for(lambda: len(fleet.log.of("report")) >= n)
        assert {r["outcome"] for r in fleet.log.of("report")} == {"played"}


async def test_key_rotation_announced_by_the_old_key(broker: Broker) -> None:
    """A config signed by the old key announces old + new; both are accepted during the
    changeover; a config signed by the new key listing only it retires the old one."""
    async with speakers(broker) as (fleet, old, client):
        new = Signer.generate()
        before = len(fleet.log.of("report"))
        for frame in stream_frames(new):  # not trusted yet
            await client.publish(COMMUNE_TOPIC, frame, qos=1)
        await wait_for(lambda: sum(sp.counters["refused"] for sp in fleet.speakers.values()) >= 15)
        assert fleet.log.of("play") == []

        async def announce(signer: Signer, keys: list[str], at: int) -> None:
            for sp in fleet.speakers.values():
                topic = device_topic(COMMUNE, sp.spec.id, DeviceTopic.CONFIG)
                groups = [GroupRef(kind="all")]
                cfg = DeviceConfig(
                    device=sp.spec.id, commune=COMMUNE, groups=groups, issued_us=at, keys=keys
                )
                frame = Frame(FrameType.CONFIG, NIL, 0, at, at, dump(cfg), Codec.NONE)
                await client.publish(topic, encode_frame(frame, signer, topic), qos=1)

        now = SystemClock().now_us()
        await announce(old, [old.public_hex(), new.public_hex()], now)
        await wait_for(lambda: len(fleet.log.of("keys")) == 3)
        for signer in (new, old):  # both play during the changeover
            for frame in stream_frames(signer):
                await client.publish(COMMUNE_TOPIC, frame, qos=1)
            await wait_for(lambda n=before: len(fleet.log.of("report")) >= n + 3)
            before = len(fleet.log.of("report"))
        assert {r["outcome"] for r in fleet.log.of("report")} == {"played"}
        await announce(new, [new.public_hex()], now + 1_000)
        await wait_for(lambda: len(fleet.log.of("keys")) == 6)
        refused = sum(sp.counters["refused"] for sp in fleet.speakers.values())
        plays = len(fleet.log.of("play"))
        for frame in stream_frames(old):  # the retired key no longer works
            await client.publish(COMMUNE_TOPIC, frame, qos=1)
        await wait_for(
            lambda: sum(sp.counters["refused"] for sp in fleet.speakers.values()) >= refused + 15
        )
        assert len(fleet.log.of("play")) == plays
