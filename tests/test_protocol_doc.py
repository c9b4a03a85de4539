"""docs/protocol.md documents every topic, frame type and message, field by field."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from devices.frames import HEADER_LEN, MAX_PAYLOAD, OVERHEAD, Codec, FrameType, Priority
from devices.messages import MESSAGE_TYPES
from devices.topics import AUDIO_AREAS, DeviceTopic, GroupKind

DOC = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text(encoding="utf-8")


def table_rows(heading: str) -> dict[str, str]:
    """First-column → whole row, for the table under ``heading``."""
    start = DOC.index(heading)
    rows: dict[str, str] = {}
    for line in DOC[start:].splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            first = line.split("|")[1].strip().strip("`")
            rows[first] = line
    return rows


@pytest.mark.parametrize("name", sorted(MESSAGE_TYPES))
def test_every_message_type_and_field_is_documented(name: str) -> None:
    rows = table_rows("### Message types")
    assert name in rows, f"{name} is missing from the message table in docs/protocol.md"
    for field in MESSAGE_TYPES[name].model_fields:
        if field == "v":
            continue
        assert f"`{field}`" in rows[name], f"{name}.{field} is not documented"


@pytest.mark.parametrize("ftype", list(FrameType))
def test_every_frame_type_is_documented(ftype: FrameType) -> None:
    rows = table_rows("### Frame types")
    assert ftype.name in rows and f"| {ftype.value} |" in rows[ftype.name]


def test_every_topic_is_documented() -> None:
    rows = table_rows("## Topics")
    for which in DeviceTopic:
        assert f"loa/v1/{{commune}}/dev/{{device}}/{which.value}" in rows, which
    for area in AUDIO_AREAS.values():
        for kind in GroupKind:
            topic = (
                f"loa/v1/{{commune}}/{area}/all"
                if kind is GroupKind.COMMUNE
                else f"loa/v1/{{commune}}/{area}/{kind.value}/{{{kind.value}}}"
            )
            assert topic in rows, topic


def test_codecs_priorities_and_sizes_match_the_code() -> None:
    for codec in Codec:
        assert re.search(rf"`{codec.value}` {codec.name.lower()}", DOC, re.I), codec
    for prio in Priority:
        assert f"`{prio.value}` {prio.name.lower()}" in DOC, prio
    assert f"Header {HEADER_LEN} bytes" in DOC
    assert f"= {OVERHEAD} bytes" in DOC
    assert f"{MAX_PAYLOAD:,}".replace(",", " ") in DOC


def test_the_documented_test_vector_is_what_the_code_produces() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from devices.frames import Frame, decode_frame, encode_frame, pack_packets
    from devices.signing import Signer, Verifier

    signer = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    topic = "loa/v1/vi-tan/audio/hamlet/ap-1"
    frame = Frame(
        FrameType.AUDIO,
        uuid.UUID("6f1c2a90-5b7e-4c1d-9a3e-0123456789ab"),
        1,
        1_767_232_800_000_000,
        1_767_232_798_500_000,
        pack_packets([bytes.fromhex("fc0102"), bytes.fromhex("fc0304")]),
        Codec.OPUS,
        Priority.NORMAL,
    )
    vector = re.search(r"<!-- vector -->\n`([0-9a-f]+)`", DOC)
    assert vector is not None
    assert encode_frame(frame, signer, topic).hex() == vector.group(1)
    assert signer.public_hex() in DOC and signer.key_id.hex() in DOC
    assert decode_frame(bytes.fromhex(vector.group(1)), Verifier([signer.public]), topic) == frame
