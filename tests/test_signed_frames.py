"""Nobody but the controller can make a speaker play: forged, unsigned, replayed frames."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiomqtt
import anyio

from audio.plan import plan_chunks
from broadcaster.broker.process import Broker
from devices.frames import Codec, Frame, FrameType, Priority, encode_frame, pack_packets
from devices.messages import StreamEnd, StreamStart, dump
from devices.signing import Signer, Verifier
from devices.topics import Group, GroupKind, parse_topic
from firmware_sim.fleet import Fleet
from firmware_sim.playlog import PlayLog
from firmware_sim.spec import DeviceSpec
from loa.clock import SystemClock

COMMUNE = "xa-thu"
COMMUNE_TOPIC = Group(COMMUNE, GroupKind.COMMUNE).topic


@asynccontextmanager
async def speakers(broker: Broker) -> AsyncIterator[tuple[Fleet, Signer, aiomqtt.Client]]:
    """Three speakers trusting a fresh controller key, and a rogue MQTT client.

    (A context manager, not a fixture: task groups must exit in the task that entered.)
    """
    controller = Signer.generate()
    tag = uuid.uuid4().hex[:6]
    specs = [DeviceSpec(id=f"sp-{tag}-{i}", commune=COMMUNE, hamlet=f"h-{tag}") for i in range(3)]
    fleet = Fleet(
        specs,
        host=broker.host,
        port=broker.port,
        verifier=Verifier([controller.public]),
        log=PlayLog(),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(fleet.run)
        async with aiomqtt.Client(broker.host, broker.port, identifier=f"rogue-{tag}") as client:
            yield fleet, controller, client
        tg.cancel_scope.cancel()


def stream_frames(
    signer: Signer,
    topic: str = COMMUNE_TOPIC,
    seconds: float = 0.6,
    priority: Priority | None = None,
) -> list[bytes]:
    """A complete small stream for ``topic``, signed by ``signer``, starting 300 ms from now.

    Emergency priority on alert topics, priority class elsewhere, unless told otherwise.
    """
    if priority is None:
        priority = Priority.EMERGENCY if parse_topic(topic).emergency else Priority.PRIORITY
    clock = SystemClock()
    sid = uuid.uuid4()
    start = clock.now_us() + 300_000
    packets = [b"\xfc" + bytes(40)] * int(seconds / 0.02)
    chunks = plan_chunks(len(packets), frame_ms=20, chunk_ms=200, start_us=start)
    header = StreamStart(
        broadcast=str(uuid.uuid4()),
        codec="opus",
        sample_rate=48000,
        channels=1,
        frame_ms=20,
        chunk_ms=200,
        chunks=len(chunks),
        duration_ms=int(seconds * 1000),
        title="Cảnh báo giả",
    )
    now = clock.now_us()
    out = [
        encode_frame(
            Frame(FrameType.START, sid, 0, start, now, dump(header), Codec.OPUS, priority),
            signer,
            topic,
        )
    ]
    for i, c in enumerate(chunks, start=1):
        payload = pack_packets(packets[c.first_packet : c.first_packet + c.packets])
        out.append(
            encode_frame(
                Frame(FrameType.AUDIO, sid, i, c.pts_us, now, payload, Codec.OPUS, priority),
                signer,
                topic,
            )
        )
    end = chunks[-1].pts_us + chunks[-1].duration_us
    out.append(
        encode_frame(
            Frame(
                FrameType.END,
                sid,
                len(chunks) + 1,
                end,
                now,
                dump(StreamEnd(chunks=len(chunks))),
                Codec.NONE,
                priority,
            ),
            signer,
            topic,
        )
    )
    return out


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)


async def test_genuine_stream_plays(broker: Broker) -> None:
    async with speakers(broker) as (fleet, controller, client):
        topic = Group(COMMUNE, GroupKind.COMMUNE).topic
        for frame in stream_frames(controller):
            await client.publish(topic, frame, qos=1)
        await wait_for(lambda: len(fleet.log.of("report")) == 3)
        assert {r["outcome"] for r in fleet.log.of("report")} == {"played"}
        assert len(fleet.log.of("play")) == 3 * 3


async def test_forged_signature_is_never_played(broker: Broker) -> None:
    async with speakers(broker) as (fleet, _controller, client):
        rogue = Signer.generate()
        topic = Group(COMMUNE, GroupKind.COMMUNE).topic
        frames = stream_frames(rogue)
        for frame in frames:
            await client.publish(topic, frame, qos=1)
        await wait_for(lambda: len(fleet.log.of("refused")) >= 3 * len(frames))
        assert fleet.log.of("play") == []
        assert all(sp.counters["refused"] == len(frames) for sp in fleet.speakers.values())
        assert "unknown key" in fleet.log.of("refused")[0]["reason"]


async def test_tampered_and_unsigned_frames_are_refused(broker: Broker) -> None:
    async with speakers(broker) as (fleet, controller, client):
        topic = Group(COMMUNE, GroupKind.COMMUNE).topic
        frames = stream_frames(controller)
        tampered = []
        for f in frames:
            b = bytearray(f)
            b[60] ^= 0x01  # a payload byte: the signature no longer verifies
            tampered.append(bytes(b))
        junk = [b"", b"hello", bytes(200), frames[1][:-64]]  # empty, garbage, zeros, no signature
        for f in tampered + junk:
            await client.publish(topic, f, qos=1)
        await wait_for(lambda: len(fleet.log.of("refused")) >= 3 * (len(tampered) + len(junk)))
        assert fleet.log.of("play") == []
        reasons = {e["reason"] for e in fleet.log.of("refused")}
        assert any("does not verify" in r for r in reasons)
        assert any("truncated" in r for r in reasons)


async def test_replayed_stream_is_refused(broker: Broker) -> None:
    async with speakers(broker) as (fleet, controller, client):
        topic = Group(COMMUNE, GroupKind.COMMUNE).topic
        frames = stream_frames(controller)
        for frame in frames:
            await client.publish(topic, frame, qos=1)
        await wait_for(lambda: len(fleet.log.of("report")) == 3)
        plays = len(fleet.log.of("play"))
        for frame in frames:  # the attacker recorded it and sends it again
            await client.publish(topic, frame, qos=1)
        await wait_for(lambda: len(fleet.log.of("refused")) >= 3 * len(frames))
        assert len(fleet.log.of("play")) == plays
        assert any("replay" in e["reason"] for e in fleet.log.of("refused"))


async def test_frames_moved_to_another_group_are_refused(broker: Broker) -> None:
    """A hamlet's genuine bulletin re-published to the whole commune plays nowhere."""
    async with speakers(broker) as (fleet, controller, client):
        hamlet = fleet.speakers[next(iter(fleet.speakers))].spec.hamlet
        frames = stream_frames(controller, Group(COMMUNE, GroupKind.HAMLET, hamlet + "x").topic)
        for frame in frames:
            await client.publish(COMMUNE_TOPIC, frame, qos=1)
        await wait_for(lambda: len(fleet.log.of("refused")) >= 3 * len(frames))
        assert fleet.log.of("play") == []
        assert all("another topic" in e["reason"] for e in fleet.log.of("refused"))


async def test_ten_thousand_attack_frames_play_nothing(broker: Broker) -> None:
    """Forged (random keys, or the controller's key id with a bad signature), replayed
    and old frames, published straight to the broker: 10 000 attempts, zero played."""
    async with speakers(broker) as (fleet, controller, client):
        genuine = stream_frames(controller)
        for frame in genuine:
            await client.publish(COMMUNE_TOPIC, frame, qos=1)
        await wait_for(lambda: len(fleet.log.of("report")) == 3)
        plays = len(fleet.log.of("play"))
        rogues = [Signer.generate() for _ in range(20)]
        attacks: list[bytes] = []
        while len(attacks) < 2500:  # forged with unknown keys
            attacks += stream_frames(rogues[len(attacks) % 20])
        while len(attacks) < 5000:  # the right key id, a wrong signature
            for f in stream_frames(controller):
                attacks.append(f[:-64] + bytes(64))
        now = SystemClock().now_us()
        while len(attacks) < 7500:  # genuinely signed, but from an hour ago
            sid = uuid.uuid4()
            old = now - 3_600_000_000
            payload = pack_packets([b"\xfc" + bytes(40)] * 10)
            frame = Frame(FrameType.AUDIO, sid, 1, now + 500_000, old, payload, Codec.OPUS)
            attacks.append(encode_frame(frame, controller, COMMUNE_TOPIC))
        while len(attacks) < 10_000:  # the genuine stream, recorded and replayed
            attacks += genuine
        attacks = attacks[:10_000]
        for frame in attacks:
            await client.publish(COMMUNE_TOPIC, frame, qos=1)
        refused = lambda: sum(sp.counters["refused"] for sp in fleet.speakers.values())  # noqa: E731
        await wait_for(lambda: refused() >= 3 * 10_000, timeout=120)
        assert len(fleet.log.of("play")) == plays  # nothing more played, anywhere
        reasons = " ".join({e["reason"] for e in fleet.log.of("refused")})
        for why in ("unknown key", "does not verify", "replay window", "replay"):
            assert why in reasons, why
