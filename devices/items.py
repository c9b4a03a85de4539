"""Prefetched items: a stream's AUDIO payloads stored as one file (pure).

An item is what a speaker keeps in its cache to play later without the network: the
AUDIO payloads of one stream, each preceded by its length as a u32 (big-endian). It
travels as ITEM_DATA slices of at most :data:`SLICE_BYTES` after an ITEM offer, and is
trusted only when its SHA-256 matches the (signed) offer. See docs/protocol.md,
"Prefetch".
"""

from __future__ import annotations

import hashlib
import struct

from loa.errors import ProtocolError

SLICE_BYTES = 32 * 1024
_LEN = struct.Struct(">I")


def pack_item(payloads: list[bytes]) -> bytes:
    """The item bytes for these AUDIO payloads, in order."""
    return b"".join(_LEN.pack(len(p)) + p for p in payloads)


def unpack_item(data: bytes) -> list[bytes]:
    """The AUDIO payloads of an item; ProtocolError if the framing is broken."""
    out: list[bytes] = []
    i = 0
    while i < len(data):
        if i + _LEN.size > len(data):
            raise ProtocolError("item truncated inside a length")
        (n,) = _LEN.unpack_from(data, i)
        i += _LEN.size
        if n == 0 or i + n > len(data):
            raise ProtocolError("item truncated inside a chunk")
        out.append(data[i : i + n])
        i += n
    return out


def slices(data: bytes) -> list[bytes]:
    """The ITEM_DATA payloads that carry ``data``."""
    return [data[i : i + SLICE_BYTES] for i in range(0, len(data), SLICE_BYTES)]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
