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


class OggReader:
    """Incremental demuxer for a live Ogg Opus stream: feed bytes, get audio packets.

    Header packets (OpusHead, OpusTags) are consumed and their facts kept; pages of
    other logical streams are skipped. Raises AudioError on a stream that is not Ogg.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending = b""
        self._serial: int | None = None
        self._headers = 0
        self.pre_skip = 0
        self.channels = 1

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= _PAGE.size:
            capture, version, _t, _g, serial, _s, _c, nseg = _PAGE.unpack_from(self._buf, 0)
            if capture != b"OggS" or version != 0:
                raise AudioError("not an Ogg stream")
            lacing = self._buf[_PAGE.size : _PAGE.size + nseg]
            if len(lacing) < nseg or len(self._buf) < _PAGE.size + nseg + sum(lacing):
                break  # the rest of the page has not arrived yet
            body = _PAGE.size + nseg
            if self._serial is None:
                self._serial = serial
            for lace in lacing:
                if serial == self._serial:
                    self._pending += bytes(self._buf[body : body + lace])
                    if lace < 255:
                        self._packet(self._pending, out)
                        self._pending = b""
                body += lace
            del self._buf[:body]
        return out

    def _packet(self, packet: bytes, out: list[bytes]) -> None:
        if self._headers == 0:
            if not packet.startswith(b"OpusHead") or len(packet) < 19:
                raise AudioError("Ogg stream does not hold Opus")
            self.channels = packet[9]
            (self.pre_skip,) = struct.unpack_from("<H", packet, 10)
            self._headers = 1
        elif self._headers == 1:
            self._headers = 2  # OpusTags
        else:
            out.append(packet)
