"""What a simulated speaker played, written to disk as a file any player decodes.

A real speaker hands packets to its decoder; the simulator can instead keep them, per
stream, and write an Ogg Opus file (RFC 7845; Opus packets in Ogg pages, RFC 3533) or
an MP3 file (the frames as received) when the stream ends. Tests decode these with
ffmpeg to check that what reached the speaker is the bulletin that was sent.
"""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

from devices.frames import unpack_packets

_CRC_TABLE: list[int] = []
for _i in range(256):
    _r = _i << 24
    for _ in range(8):
        _r = ((_r << 1) ^ 0x04C11DB7) if _r & 0x80000000 else (_r << 1)
    _CRC_TABLE.append(_r & 0xFFFFFFFF)


def _crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) & 0xFF) ^ byte]
    return crc


def _page(serial: int, seq: int, granule: int, packets: list[bytes], flags: int) -> bytes:
    lacing = bytearray()
    for p in packets:
        lacing += b"\xff" * (len(p) // 255) + bytes([len(p) % 255])
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, seq, 0, len(lacing))
    page = header + bytes(lacing) + b"".join(packets)
    return page[:22] + struct.pack("<I", _crc(page)) + page[26:]


def ogg_opus(
    packets: list[bytes], *, pre_skip: int, channels: int = 1, frame_ms: int = 20
) -> bytes:
    """Raw Opus packets (each ``frame_ms``) → an Ogg Opus file."""
    serial = 0x4C6F6121  # "Loa!"
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 3) + b"loa" + struct.pack("<I", 0)
    out = [_page(serial, 0, 0, [head], 0x02), _page(serial, 1, 0, [tags], 0)]
    granule, seq = 0, 2
    per_page = 50
    for i in range(0, len(packets), per_page):
        group = packets[i : i + per_page]
        granule += len(group) * frame_ms * 48
        last = i + per_page >= len(packets)
        out.append(_page(serial, seq, granule, group, 0x04 if last else 0))
        seq += 1
    return b"".join(out)


class Recorder:
    """Keeps each stream's played payloads and writes them out when it ends."""

    def __init__(self, folder: Path, device: str) -> None:
        self.folder = folder
        self.device = device
        self._streams: dict[uuid.UUID, list[bytes]] = {}
        folder.mkdir(parents=True, exist_ok=True)

    def played(self, stream: uuid.UUID, payload: bytes) -> None:
        self._streams.setdefault(stream, []).append(payload)

    def finish(self, stream: uuid.UUID, codec: str, pre_skip: int, frame_ms: int) -> Path | None:
        payloads = self._streams.pop(stream, None)
        if not payloads:
            return None
        if codec == "mp3":
            path, data = self.folder / f"{self.device}-{stream}.mp3", b"".join(payloads)
        else:
            packets = [p for payload in payloads for p in unpack_packets(payload)]
            data = ogg_opus(packets, pre_skip=pre_skip, frame_ms=frame_ms)
            path = self.folder / f"{self.device}-{stream}.opus"
        path.write_bytes(data)
        return path
