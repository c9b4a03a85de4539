"""A minimal Ogg demuxer: Ogg pages in, codec packets out (pure, no I/O).

ffmpeg writes Opus inside Ogg; the wire carries raw Opus packets instead (an Ogg stream
per chunk would cost ~28 % at 24 kb/s). RFC 3533 page layout; RFC 7845 for Opus.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from loa.errors import AudioError

_PAGE = struct.Struct("<4sBBqIIIB")  # capture, version, type, granule, serial, seq, crc, nseg


@dataclass(frozen=True)
class OpusStream:
    packets: list[bytes]  # audio packets, in order
    pre_skip: int  # samples at 48 kHz to drop at the start (OpusHead)
    channels: int
    input_rate: int


def packets(data: bytes) -> list[bytes]:
    """All packets of the first logical stream, in order."""
    out: list[bytes] = []
    pending = b""
    pos = 0
    serial: int | None = None
    while pos < len(data):
        if len(data) - pos < _PAGE.size:
            raise AudioError("Ogg stream truncated in a page header")
        capture, version, _htype, _granule, page_serial, _seq, _crc, nseg = _PAGE.unpack_from(
            data, pos
        )
        if capture != b"OggS" or version != 0:
            raise AudioError("not an Ogg stream")
        seg_start = pos + _PAGE.size
        lacing = data[seg_start : seg_start + nseg]
        body = seg_start + nseg
        if len(lacing) != nseg or body + sum(lacing) > len(data):
            raise AudioError("Ogg stream truncated in a page body")
        if serial is None:
            serial = page_serial
        for lace in lacing:
            if page_serial == serial:
                pending += data[body : body + lace]
                if lace < 255:
                    out.append(pending)
                    pending = b""
            body += lace
        pos = body
    if pending:
        out.append(pending)
    return out


def opus_stream(data: bytes) -> OpusStream:
    pk = packets(data)
    if len(pk) < 2 or not pk[0].startswith(b"OpusHead") or not pk[1].startswith(b"OpusTags"):
        raise AudioError("Ogg stream does not hold Opus")
    head = pk[0]
    if len(head) < 19:
        raise AudioError("OpusHead packet truncated")
    channels = head[9]
    (pre_skip,) = struct.unpack_from("<H", head, 10)
    (rate,) = struct.unpack_from("<I", head, 12)
    return OpusStream(packets=pk[2:], pre_skip=pre_skip, channels=channels, input_rate=rate)
