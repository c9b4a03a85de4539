"""Protocol v1.1: what a stranger implementing docs/protocol.md needs, in code and on the
wire — ``all`` without an id, the minor version in the frame flags (v1 receivers ignore
it), an END saying ``preempted`` when a broadcast is taken over, the MP3 leg aligned
with the Opus leg, and the controller's public keys from the API."""

from __future__ import annotations

import hashlib
import json
import uuid

import aiomqtt
import anyio

from broadcaster.broadcasts.legs import mp3_alignment_us
from broadcaster.places import demo_data
from devices.frames import (
    MINOR_VERSION,
    Codec,
    Frame,
    FrameType,
    Priority,
    decode_frame,
    encode_frame,
)
from devices.messages import DeviceConfig, GroupRef, StreamEnd, StreamStart, dump, parse
from devices.signing import Signer, Verifier
from devices.topics import Group, GroupKind
from tests.conftest import Running, fleet_of
from tests.test_dispatch import outcomes, start, upload
from tests.test_e2e import wait_final, wait_online

COMMUNE = demo_data.COMMUNE[0]


def test_all_is_sent_without_an_id_and_read_either_way() -> None:
    cfg = DeviceConfig(
        device="vt-ap-1-1",
        commune=COMMUNE,
        groups=[GroupRef(kind="all"), GroupRef(kind="hamlet", id="ap-1")],
        issued_us=1,
    )
    wire = json.loads(dump(cfg))
    assert wire["groups"] == [{"kind": "all"}, {"kind": "hamlet", "id": "ap-1"}]
    assert parse(DeviceConfig, dump(cfg)) == cfg
    v10 = {**wire, "groups": [{"kind": "all", "id": ""}, {"kind": "hamlet", "id": "ap-1"}]}
    assert parse(DeviceConfig, json.dumps(v10)) == cfg  # what a v1.0 controller sent


def test_frames_carry_the_minor_version_and_v10_frames_still_decode() -> None:
    signer = Signer.generate()
    topic = "loa/v1/vi-tan/audio/all"
    frame = Frame(FrameType.AUDIO, uuid.uuid4(), 1, 10**15, 10**15, b"\x01\xfc", Codec.OPUS)
    data = encode_frame(frame, signer, topic)
    assert int.from_bytes(data[6:8], "big") == MINOR_VERSION == 1
    assert data[2] == 1  # the version byte v1 receivers check is unchanged
    assert decode_frame(data, Verifier([signer.public]), topic).minor_version == 1
    old = Frame(FrameType.AUDIO, uuid.uuid4(), 1, 10**15, 10**15, b"\x01\xfc", Codec.OPUS, flags=0)
    got = decode_frame(encode_frame(old, signer, topic), Verifier([signer.public]), topic)
    assert got.minor_version == 0


def test_the_mp3_leg_starts_with_the_opus_leg() -> None:
    # Opus: 312 samples muted at 48 kHz (6.5 ms); LAME: 1 105 samples (23.0 ms at 48 kHz).
    assert mp3_alignment_us(312, 48000) == 6500 - 23020
    assert mp3_alignment_us(312, 24000) == 6500 - 46041


async def test_the_public_keys_come_from_the_api(running: Running) -> None:
    resp = await running.client.get("/api/keys")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["protocol"] == "1.1"
    (key,) = body["keys"]
    assert key["public_key"] == running.services.signer.public_hex() and key["signing"]
    assert key["key_id"] == running.services.signer.key_id.hex()
    assert key["key_id"] == hashlib.sha256(bytes.fromhex(key["public_key"])).digest()[:4].hex()
    anonymous = await running.client.get("/api/keys", headers={"Authorization": ""})
    assert anonymous.status_code == 401


async def test_a_broadcast_taken_over_everywhere_ends_with_preempted(running: Running) -> None:
    """A priority bulletin to the same hamlet pre-empts a normal one: the controller stops
    the normal stream and its END says ``preempted`` at the takeover time."""
    s = running.services
    topic = Group(COMMUNE, GroupKind.HAMLET, "ap-1").topic_for("opus")
    verifier = Verifier([s.signer.public])
    seen: list[Frame] = []
    specs = [d for d in demo_data.fleet_specs() if d.hamlet == "ap-1"]
    async with (
        fleet_of(running, specs),
        aiomqtt.Client(s.settings.mqtt.host, s.settings.mqtt.port, identifier="watch-v11") as mq,
    ):
        await mq.subscribe(topic, qos=1)

        async def watch() -> None:
            async for msg in mq.messages:
                seen.append(decode_frame(bytes(msg.payload), verifier, str(msg.topic)))  # type: ignore[arg-type]

        await wait_online(running, 3)
        long_id, short_id = await upload(running, 12.0), await upload(running, 1.0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            target = [{"commune": COMMUNE, "hamlet": "ap-1"}]
            first = await start(running, long_id, target)
            with anyio.fail_after(10):
                while not any(f.type is FrameType.AUDIO for f in seen):
                    await anyio.sleep(0.05)
            second = await start(running, short_id, target, priority="priority")
            a = await wait_final(running, first)
            b = await wait_final(running, second)
            tg.cancel_scope.cancel()
    starts = [f for f in seen if f.type is FrameType.START]
    ends = [f for f in seen if f.type is FrameType.END]
    normal = next(f for f in starts if f.priority is Priority.NORMAL)
    urgent = next(f for f in starts if f.priority is Priority.PRIORITY)
    cut = next(f for f in ends if f.stream_id == normal.stream_id)
    end = parse(StreamEnd, cut.payload)
    announced = parse(StreamStart, normal.payload).chunks
    assert end.reason == "preempted"
    assert cut.pts_us == urgent.pts_us  # where the pre-empted stream stops
    sent = [f for f in seen if f.stream_id == normal.stream_id and f.type is FrameType.AUDIO]
    assert end.chunks == len(sent) < announced
    assert cut.seq == announced + 1
    assert set(outcomes(a).values()) == {"preempted"}
    assert set(outcomes(b).values()) == {"played"}
    # Its status comes from its deliveries (none played it all); the reason says why.
    assert a["status"] != "stopped" and "pre-empted by a broadcast" in a["error"]


def test_the_required_and_optional_table_matches_the_models() -> None:
    import re
    from pathlib import Path

    from devices.messages import MESSAGE_TYPES

    doc = Path(__file__).resolve().parents[1].joinpath("docs/protocol.md").read_text()
    section = doc.split("### Required and optional fields", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (
                set(re.findall(r"`(\w+)`", cells[1])),
                set(re.findall(r"^`(\w+)`|, `(\w+)`", cells[2])),
            )
    assert set(rows) == set(MESSAGE_TYPES)
    for name, model in MESSAGE_TYPES.items():
        required = {f for f, info in model.model_fields.items() if info.is_required()}
        optional = set(model.model_fields) - required - {"v"}
        doc_required, doc_optional = rows[name]
        assert doc_required == required, name
        assert {a or b for a, b in doc_optional} == optional, name
