"""Binary frames: audio, stream start/end, signed commands and config.

Layout (big-endian; docs/protocol.md, "Frames")::

    off len field
      0   2 magic  b"LF"
      2   1 version (1)
      3   1 frame type  (FrameType)
      4   1 codec       (Codec)
      5   1 priority    (Priority)
      6   2 flags       (bits 0-3: protocol minor version, 1 = v1.1; rest reserved, 0)
      8   4 key id      (first 4 bytes of SHA-256 of the signing public key)
     12  16 stream id   (UUID bytes)
     28   4 sequence    (u32, strictly increasing within a stream)
     32   8 presentation time (i64 µs since epoch, controller clock)
     40   8 sent time         (i64 µs since epoch, controller clock)
     48   4 payload length N
     52   N payload
   52+N  64 Ed25519 signature over  topic (UTF-8) ‖ 0x00 ‖ bytes [0, 52+N)

The signature covers the MQTT topic the frame is published on, so a frame signed for
one hamlet (or one device's command topic) cannot be replayed onto another topic.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from enum import IntEnum

from loa.errors import ProtocolError

from .signing import KEY_ID_LEN, SIGNATURE_LEN, Signer, Verifier

MAGIC = b"LF"
VERSION = 1
#: Protocol v1.1: the minor version travels in the low 4 bits of ``flags``, which v1
#: receivers ignore (so v1 speakers keep working); the version byte stays 1.
MINOR_VERSION = 1
MINOR_MASK = 0x000F
HEADER = struct.Struct(">2sBBBBH4s16sIqqI")
HEADER_LEN = HEADER.size  # 52
OVERHEAD = HEADER_LEN + SIGNATURE_LEN  # 116 bytes per frame
MAX_PAYLOAD = 256 * 1024
MAX_FRAME = OVERHEAD + MAX_PAYLOAD
_U32 = 0xFFFFFFFF
_I64_MAX = 2**63 - 1


class FrameType(IntEnum):
    START = 1  # payload: JSON StreamStart
    AUDIO = 2  # payload: codec packets (see docs/protocol.md)
    END = 3  # payload: JSON StreamEnd
    COMMAND = 4  # payload: JSON Command
    CONFIG = 5  # payload: JSON DeviceConfig
    TIME = 6  # payload: JSON TimeResponse
    ITEM = 7  # payload: JSON ItemOffer (prefetch: an item is coming)
    ITEM_DATA = 8  # payload: the next slice of the item's bytes
    PLAY = 9  # payload: JSON PlayItem (play a cached item at a time, or cancel that)
    FIRMWARE = 10  # payload: JSON FirmwareOffer (a firmware image follows)
    FIRMWARE_DATA = 11  # payload: the next slice of the image


class Codec(IntEnum):
    NONE = 0
    OPUS = 1
    MP3 = 2


class Priority(IntEnum):
    """Bulletin classes (Thông tư 39/2020) plus live; higher pre-empts lower."""

    NORMAL = 0
    PRIORITY = 1
    LIVE = 2
    EMERGENCY = 3


@dataclass(frozen=True)
class Frame:
    type: FrameType
    stream_id: uuid.UUID
    seq: int
    pts_us: int
    sent_us: int
    payload: bytes = b""
    codec: Codec = Codec.NONE
    priority: Priority = Priority.NORMAL
    flags: int = MINOR_VERSION

    @property
    def minor_version(self) -> int:
        """The sender's protocol minor version (0 for a v1.0 sender)."""
        return self.flags & MINOR_MASK

    def __post_init__(self) -> None:
        if not 0 <= self.seq <= _U32:
            raise ProtocolError(f"sequence {self.seq} outside 0..2^32-1")
        if not 0 <= self.pts_us <= _I64_MAX or not 0 <= self.sent_us <= _I64_MAX:
            raise ProtocolError("times must be non-negative µs since the epoch")
        if len(self.payload) > MAX_PAYLOAD:
            raise ProtocolError(f"payload of {len(self.payload)} bytes over {MAX_PAYLOAD}")
        if not 0 <= self.flags <= 0xFFFF:
            raise ProtocolError("flags must fit in 16 bits")


def signed_bytes(topic: str, body: bytes) -> bytes:
    """What the signature covers: the topic, a NUL, then header and payload."""
    return topic.encode("utf-8") + b"\x00" + body


def encode_frame(frame: Frame, signer: Signer, topic: str) -> bytes:
    """Serialise a frame and sign it for publication on ``topic``."""
    head = HEADER.pack(
        MAGIC,
        VERSION,
        int(frame.type),
        int(frame.codec),
        int(frame.priority),
        frame.flags,
        signer.key_id,
        frame.stream_id.bytes,
        frame.seq,
        frame.pts_us,
        frame.sent_us,
        len(frame.payload),
    )
    body = head + frame.payload
    return body + signer.sign(signed_bytes(topic, body))


def _enum(kind: type[IntEnum], value: int, what: str) -> IntEnum:
    try:
        return kind(value)
    except ValueError:
        raise ProtocolError(f"unknown {what} {value}") from None


def decode_frame(data: bytes, verifier: Verifier, topic: str) -> Frame:
    """Parse and verify a frame received on ``topic``; ProtocolError/SignatureError if bad.

    The signature is checked before any field is trusted.
    """
    if len(data) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(data)} bytes is over the {MAX_FRAME}-byte limit")
    if len(data) < OVERHEAD:
        raise ProtocolError(f"frame truncated: {len(data)} bytes, header+signature is {OVERHEAD}")
    (magic, version, ftype, codec, prio, flags, kid, sid, seq, pts, sent, length) = (
        HEADER.unpack_from(data)
    )
    if magic != MAGIC:
        raise ProtocolError("not a Loa frame (bad magic)")
    if version != VERSION:
        raise ProtocolError(f"frame version {version} not supported (this side speaks {VERSION})")
    if len(data) != OVERHEAD + length:
        raise ProtocolError(
            f"frame length mismatch: header says {length}-byte payload, "
            f"got {len(data) - OVERHEAD} (truncated or padded)"
        )
    body_end = HEADER_LEN + length
    verifier.verify(bytes(kid[:KEY_ID_LEN]), signed_bytes(topic, data[:body_end]), data[body_end:])
    if pts < 0 or sent < 0:
        raise ProtocolError("negative time in frame")
    return Frame(
        type=FrameType(_enum(FrameType, ftype, "frame type")),
        codec=Codec(_enum(Codec, codec, "codec")),
        priority=Priority(_enum(Priority, prio, "priority")),
        flags=flags,
        stream_id=uuid.UUID(bytes=sid),
        seq=seq,
        pts_us=pts,
        sent_us=sent,
        payload=data[HEADER_LEN:body_end],
    )


MAX_PACKET = 0x7FFF


def prefix_len(packet_len: int) -> int:
    """Bytes of length prefix for a packet: 1 below 128 bytes, else 2."""
    return 1 if packet_len < 0x80 else 2


def pack_packets(packets: list[bytes]) -> bytes:
    """Audio payload for codec OPUS: each packet preceded by its length.

    Length < 128: one byte. Otherwise two bytes, big-endian, with the top bit of the
    first set: ``0x80 | (n >> 8), n & 0xFF`` (so at most 32 767). Speech packets at
    16–32 kb/s are 40–80 bytes, so nearly every prefix is one byte.
    """
    out = bytearray()
    for p in packets:
        n = len(p)
        if not 0 < n <= MAX_PACKET:
            raise ProtocolError(f"codec packet of {n} bytes cannot be framed")
        out += bytes([n]) if n < 0x80 else bytes([0x80 | (n >> 8), n & 0xFF])
        out += p
    return bytes(out)


def unpack_packets(payload: bytes) -> list[bytes]:
    packets: list[bytes] = []
    i = 0
    while i < len(payload):
        n = payload[i]
        if n & 0x80:
            if i + 2 > len(payload):
                raise ProtocolError("packet list truncated in a length prefix")
            n = ((n & 0x7F) << 8) | payload[i + 1]
            i += 2
        else:
            i += 1
        if n == 0:
            raise ProtocolError("packet list has an empty packet")
        if i + n > len(payload):
            raise ProtocolError("packet list truncated inside a packet")
        packets.append(payload[i : i + n])
        i += n
    return packets
