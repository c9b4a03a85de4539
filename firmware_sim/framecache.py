"""Decode-once for simulated speakers that share a process.

Every speaker in one simulator process receives byte-identical frames on the same
topic. A real speaker verifies each frame on its own CPU; here the first speaker
verifies and parses, and the others reuse the result only if the bytes *and* topic are
identical (so a tampered copy is still verified, and refused, on its own). This keeps
thousands of simulated speakers on one machine without changing what any of them
accepts.
"""

from __future__ import annotations

from collections import OrderedDict

from audio.mp3 import mp3_frames
from devices.frames import Codec, Frame, FrameType, decode_frame, unpack_packets
from devices.signing import Verifier, public_from_hex
from loa.errors import AudioError, ProtocolError


class FrameCache:
    def __init__(self, verifier: Verifier, size: int = 512) -> None:
        self.verifier = verifier
        self._size = size
        self._entries: OrderedDict[bytes, tuple[str, bytes, Frame, int]] = OrderedDict()
        self.hits = 0
        self._siblings: dict[frozenset[str], FrameCache] = {}

    def for_keys(self, keys: list[str]) -> FrameCache:
        """The cache for speakers that now trust exactly ``keys`` (a CONFIG's key
        rotation): speakers sharing this cache that are given the same keys share the
        new one too, so a fleet told its keys still verifies each frame once."""
        wanted = frozenset(keys)
        cache = self._siblings.get(wanted)
        if cache is None:
            cache = FrameCache(Verifier([public_from_hex(k) for k in sorted(wanted)]), self._size)
            cache._siblings = self._siblings  # one family: every member finds the others
            self._siblings[wanted] = cache
        return cache

    def decode(self, data: bytes, topic: str) -> tuple[Frame, int]:
        """(frame, number of Opus packets) — verified; raises like decode_frame."""
        key = data[-64:]
        entry = self._entries.get(key)
        if entry is not None and entry[0] == topic and entry[1] == data:
            self.hits += 1
            return entry[2], entry[3]
        frame = decode_frame(data, self.verifier, topic)
        packets = 0
        if frame.type is FrameType.AUDIO and frame.codec is Codec.OPUS:
            packets = len(unpack_packets(frame.payload))
        elif frame.type is FrameType.AUDIO and frame.codec is Codec.MP3:
            try:
                packets = len(mp3_frames(frame.payload).frames)
            except AudioError as exc:
                raise ProtocolError(f"MP3 payload: {exc.message}") from None
        self._entries[key] = (topic, data, frame, packets)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return frame, packets
