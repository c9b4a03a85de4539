"""Signed binary frames: round trips, and every kind of damaged or forged frame refused."""

from __future__ import annotations

import itertools
import os
import stat
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.frames import (
    HEADER,
    HEADER_LEN,
    MAGIC,
    MAX_FRAME,
    MAX_PACKET,
    MAX_PAYLOAD,
    OVERHEAD,
    VERSION,
    Codec,
    Frame,
    FrameType,
    Priority,
    pack_packets,
    prefix_len,
    signed_bytes,
    unpack_packets,
)
from devices.frames import (
    decode_frame as _decode_frame,
)
from devices.frames import (
    encode_frame as _encode_frame,
)
from devices.signing import (
    SIGNATURE_LEN,
    Signer,
    Verifier,
    key_id,
    public_from_hex,
    public_to_hex,
)
from loa.errors import ConfigError, ProtocolError, SignatureError

TOPIC = "loa/v1/xa-thu/audio/hamlet/ap-1"


def encode_frame(frame: Frame, signer: Signer, topic: str = TOPIC) -> bytes:
    return _encode_frame(frame, signer, topic)


def decode_frame(data: bytes, verifier: Verifier, topic: str = TOPIC) -> Frame:
    return _decode_frame(data, verifier, topic)


@pytest.mark.parametrize(
    "other",
    [
        "loa/v1/xa-thu/audio/all",
        "loa/v1/xa-thu/audio/hamlet/ap-2",
        "loa/v1/xa-khac/audio/hamlet/ap-1",
        "loa/v1/xa-thu/dev/spk-1/cmd",
        "",
    ],
)
def test_a_frame_only_verifies_on_the_topic_it_was_signed_for(other: str) -> None:
    data = encode_frame(Frame(FrameType.AUDIO, uuid.uuid4(), 1, 2, 3, b"\x01a"), SIGNER)
    assert decode_frame(data, VERIFIER).payload == b"\x01a"
    with pytest.raises(SignatureError, match="another topic"):
        decode_frame(data, VERIFIER, other)


SIGNER = Signer.generate()
VERIFIER = Verifier([SIGNER.public])
OTHER = Signer.generate()

U32 = 2**32 - 1
I64 = 2**63 - 1

frames = st.builds(
    Frame,
    type=st.sampled_from(FrameType),
    stream_id=st.uuids(),
    seq=st.integers(0, U32),
    pts_us=st.integers(0, I64),
    sent_us=st.integers(0, I64),
    payload=st.binary(max_size=4096),
    codec=st.sampled_from(Codec),
    priority=st.sampled_from(Priority),
    flags=st.integers(0, 0xFFFF),
)
small_frames = frames.map(lambda f: Frame(**{**f.__dict__, "payload": f.payload[:64]}))


def _raw(
    *,
    ftype: int = FrameType.AUDIO,
    codec: int = Codec.OPUS,
    prio: int = Priority.NORMAL,
    magic: bytes = MAGIC,
    version: int = VERSION,
    kid: bytes | None = None,
    pts: int = 1,
    sent: int = 1,
    payload: bytes = b"abc",
    signer: Signer = SIGNER,
) -> bytes:
    """A frame built by hand from devices.frames.HEADER, signed with ``signer``."""
    head = HEADER.pack(
        magic,
        version,
        ftype,
        codec,
        prio,
        0,
        signer.key_id if kid is None else kid,
        uuid.UUID(int=7).bytes,
        5,
        pts,
        sent,
        len(payload),
    )
    body = head + payload
    return body + signer.sign(signed_bytes(TOPIC, body))


def _reason(data: bytes, verifier: Verifier = VERIFIER) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_frame(data, verifier)
    return info.value


# --- round trips --------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(frames)
def test_frame_round_trip(frame: Frame) -> None:
    data = encode_frame(frame, SIGNER)
    assert len(data) == OVERHEAD + len(frame.payload)
    assert data[:2] == MAGIC
    assert data[8:12] == SIGNER.key_id
    assert decode_frame(data, VERIFIER) == frame


@pytest.mark.parametrize(
    ("ftype", "codec", "prio"), list(itertools.product(FrameType, Codec, Priority))
)
def test_every_type_codec_priority_round_trips(
    ftype: FrameType, codec: Codec, prio: Priority
) -> None:
    frame = Frame(ftype, uuid.uuid4(), 3, 10, 20, b"x" * 10, codec, prio)
    decoded = decode_frame(encode_frame(frame, SIGNER), VERIFIER)
    assert decoded == frame
    assert decoded.type is ftype
    assert decoded.codec is codec
    assert decoded.priority is prio


def test_largest_frame_round_trips() -> None:
    frame = Frame(FrameType.AUDIO, uuid.uuid4(), U32, I64, I64, os.urandom(MAX_PAYLOAD))
    data = encode_frame(frame, SIGNER)
    assert len(data) == MAX_FRAME
    assert decode_frame(data, VERIFIER) == frame


def test_verifier_with_several_keys_accepts_each() -> None:
    both = Verifier([SIGNER.public, OTHER.public])
    frame = Frame(FrameType.END, uuid.uuid4(), 1, 2, 3, b"{}")
    for signer in (SIGNER, OTHER):
        assert decode_frame(encode_frame(frame, signer), both) == frame


@settings(max_examples=150)
@given(st.lists(st.binary(min_size=1, max_size=700), max_size=20))
def test_packets_round_trip(packets: list[bytes]) -> None:
    payload = pack_packets(packets)
    assert len(payload) == sum(prefix_len(len(p)) + len(p) for p in packets)
    assert unpack_packets(payload) == packets


def test_largest_packet_round_trips() -> None:
    packet = os.urandom(MAX_PACKET)
    assert unpack_packets(pack_packets([packet, b"x"])) == [packet, b"x"]


@pytest.mark.parametrize("size", [0, MAX_PACKET + 1])
def test_pack_packets_refuses_unframeable(size: int) -> None:
    with pytest.raises(ProtocolError, match=f"codec packet of {size} bytes cannot be framed"):
        pack_packets([b"ok", bytes(size)])


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x80", "truncated in a length prefix"),
        (b"\x02ab\x81", "truncated in a length prefix"),
        (b"\x00", "empty packet"),
        (b"\x80\x00", "empty packet"),
        (b"\x05abc", "truncated"),
        (b"\x81\x00abc", "truncated"),
    ],
)
def test_unpack_packets_refuses(payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        unpack_packets(payload)


@settings(max_examples=150)
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=10), st.data())
def test_truncated_packet_list_is_refused_or_a_prefix(packets: list[bytes], data) -> None:
    payload = pack_packets(packets)
    cut = data.draw(st.integers(0, len(payload) - 1))
    boundaries = list(itertools.accumulate(prefix_len(len(p)) + len(p) for p in packets))
    if cut == 0 or cut in boundaries:
        k = 0 if cut == 0 else boundaries.index(cut) + 1
        assert unpack_packets(payload[:cut]) == packets[:k]
    else:
        with pytest.raises(ProtocolError, match="truncated"):
            unpack_packets(payload[:cut])


# --- damaged frames -----------------------------------------------------------------


def _expected_reason(index: int) -> str:
    if index < 2:
        return "bad magic"
    if index == 2:
        return "not supported"
    if 8 <= index < 12:
        return "unknown key id"
    if 48 <= index < HEADER_LEN:
        return "length mismatch"
    return "signature does not verify"


@settings(max_examples=200, deadline=None)
@given(small_frames, st.data())
def test_any_flipped_byte_is_refused(frame: Frame, data) -> None:
    encoded = bytearray(encode_frame(frame, SIGNER))
    index = data.draw(st.integers(0, len(encoded) - 1), label="index")
    encoded[index] ^= data.draw(st.integers(1, 255), label="xor")
    exc = _reason(bytes(encoded))
    expected = _expected_reason(index)
    assert expected in exc.message
    signature_problem = expected in {"unknown key id", "signature does not verify"}
    assert isinstance(exc, SignatureError) == signature_problem


@pytest.mark.parametrize("index", range(OVERHEAD + 3))
def test_every_byte_position_is_protected(index: int) -> None:
    encoded = bytearray(encode_frame(Frame(FrameType.AUDIO, uuid.uuid4(), 1, 2, 3, b"abc"), SIGNER))
    encoded[index] ^= 0x01
    assert _expected_reason(index) in _reason(bytes(encoded)).message


@settings(max_examples=100, deadline=None)
@given(small_frames, st.data())
def test_truncated_frame_is_refused(frame: Frame, data) -> None:
    encoded = encode_frame(frame, SIGNER)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    exc = _reason(encoded[:cut])
    assert "truncated" in exc.message
    assert not isinstance(exc, SignatureError)


def test_truncation_messages() -> None:
    encoded = encode_frame(Frame(FrameType.AUDIO, uuid.uuid4(), 1, 2, 3, b"abcd"), SIGNER)
    assert _reason(encoded[:10]).message == (
        f"frame truncated: 10 bytes, header+signature is {OVERHEAD}"
    )
    assert "header says 4-byte payload, got 3" in _reason(encoded[:-1]).message


@settings(max_examples=50, deadline=None)
@given(small_frames, st.binary(min_size=1, max_size=100))
def test_padded_frame_is_refused(frame: Frame, padding: bytes) -> None:
    exc = _reason(encode_frame(frame, SIGNER) + padding)
    assert "length mismatch" in exc.message
    assert "padded" in exc.message


def test_oversized_frame_is_refused_before_parsing() -> None:
    exc = _reason(b"XX" + bytes(MAX_FRAME - 1))
    assert exc.message == f"frame of {MAX_FRAME + 1} bytes is over the {MAX_FRAME}-byte limit"
    big = encode_frame(Frame(FrameType.AUDIO, uuid.uuid4(), 1, 2, 3, bytes(MAX_PAYLOAD)), SIGNER)
    assert "over the" in _reason(big + b"\x00").message


def test_bad_magic() -> None:
    exc = _reason(_raw(magic=b"LG"))
    assert exc.message == "not a Loa frame (bad magic)"


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unsupported_version(version: int) -> None:
    exc = _reason(_raw(version=version))
    assert f"frame version {version} not supported" in exc.message


def test_unknown_key_id() -> None:
    frame = Frame(FrameType.COMMAND, uuid.uuid4(), 1, 2, 3, b"{}")
    exc = _reason(encode_frame(frame, OTHER))
    assert isinstance(exc, SignatureError)
    assert exc.message == f"signed with unknown key id {OTHER.key_id.hex()}"


def test_other_key_with_forged_key_id() -> None:
    forged = _raw(signer=OTHER, kid=SIGNER.key_id)
    assert forged[8:12] == SIGNER.key_id
    exc = _reason(forged)
    assert isinstance(exc, SignatureError)
    assert "signature does not verify" in exc.message


def test_signature_replaced_by_another_keys_signature() -> None:
    good = _raw()
    body = good[:-SIGNATURE_LEN]
    exc = _reason(body + OTHER.sign(body))
    assert isinstance(exc, SignatureError)
    assert "does not verify" in exc.message


@pytest.mark.parametrize(
    ("field", "values", "reason"),
    [
        ("ftype", [0, 12, 255], "unknown frame type"),
        ("codec", [3, 99, 255], "unknown codec"),
        ("prio", [4, 200, 255], "unknown priority"),
    ],
)
def test_unknown_enum_values_in_signed_frames(field: str, values: list[int], reason: str) -> None:
    for value in values:
        exc = _reason(_raw(**{field: value}))
        assert type(exc) is ProtocolError  # signed correctly: not a signature problem
        assert exc.message == f"{reason} {value}"


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 255).filter(lambda v: v not in set(FrameType)))
def test_any_unknown_frame_type_is_refused(value: int) -> None:
    assert _reason(_raw(ftype=value)).message == f"unknown frame type {value}"


@pytest.mark.parametrize(("pts", "sent"), [(-1, 0), (0, -1), (-(2**63), 5)])
def test_negative_times_in_signed_frames(pts: int, sent: int) -> None:
    exc = _reason(_raw(pts=pts, sent=sent))
    assert type(exc) is ProtocolError
    assert exc.message == "negative time in frame"


# --- Frame() ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"seq": -1}, "sequence -1 outside"),
        ({"seq": 2**32}, f"sequence {2**32} outside"),
        ({"pts_us": -1}, "non-negative"),
        ({"sent_us": -1}, "non-negative"),
        ({"pts_us": 2**63}, "non-negative"),
        ({"payload": bytes(MAX_PAYLOAD + 1)}, f"payload of {MAX_PAYLOAD + 1} bytes over"),
        ({"flags": 0x10000}, "16 bits"),
        ({"flags": -1}, "16 bits"),
    ],
)
def test_frame_constructor_refuses(kwargs: dict[str, object], reason: str) -> None:
    base: dict[str, object] = {
        "type": FrameType.AUDIO,
        "stream_id": uuid.uuid4(),
        "seq": 0,
        "pts_us": 0,
        "sent_us": 0,
    }
    with pytest.raises(ProtocolError, match=reason):
        Frame(**{**base, **kwargs})  # type: ignore[arg-type]


def test_frame_constructor_boundaries_accepted() -> None:
    frame = Frame(FrameType.AUDIO, uuid.uuid4(), U32, I64, 0, bytes(MAX_PAYLOAD), flags=0xFFFF)
    assert frame.seq == U32


# --- keys ---------------------------------------------------------------------------


def test_load_or_create_makes_private_file_and_reloads_same_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.pem"
    created = Signer.load_or_create(path)
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = Signer.load_or_create(path)
    assert loaded.key_id == created.key_id
    assert loaded.public_hex() == created.public_hex()
    frame = Frame(FrameType.CONFIG, uuid.UUID(int=0), 0, 1, 1, b"{}")
    assert decode_frame(encode_frame(frame, loaded), Verifier([created.public])) == frame


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
)
def test_garbage_key_file_is_config_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "signing.pem"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="is not a PEM private key") as info:
        Signer.load_or_create(path)
    assert str(path) in info.value.message
    assert path.read_bytes() == content  # never overwritten


def test_non_ed25519_key_file_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ConfigError, match="is not an Ed25519 key"):
        Signer.load_or_create(path)


def test_public_key_hex_round_trip() -> None:
    text = SIGNER.public_hex()
    assert len(text) == 64
    assert public_to_hex(public_from_hex(f"  {text}\n")) == text
    assert key_id(public_from_hex(text)) == SIGNER.key_id
    for bad in ["", "zz" * 32, text[:-2], text + "00"]:
        with pytest.raises(ConfigError, match="64 hex characters"):
            public_from_hex(bad)


def test_verifier_needs_a_key() -> None:
    with pytest.raises(ConfigError, match="at least one trusted public key"):
        Verifier([])
