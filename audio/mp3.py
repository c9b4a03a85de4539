"""A minimal MPEG audio (Layer III) frame splitter (pure, no I/O).

MP3 goes on the wire as whole MPEG frames, a whole number of them per Loa frame, so a
speaker can decode each chunk on its own. ID3v2 tags and the encoder's Xing/Info
header frame are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from loa.errors import AudioError

_BITRATES = {  # kb/s by bitrate index, Layer III
    "1": (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    "2": (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


@dataclass(frozen=True)
class Mp3Stream:
    frames: list[bytes]
    sample_rate: int
    samples_per_frame: int

    @property
    def frame_us(self) -> float:
        return self.samples_per_frame * 1e6 / self.sample_rate


def _skip_id3(data: bytes) -> int:
    if data[:3] != b"ID3" or len(data) < 10:
        return 0
    size = 0
    for b in data[6:10]:
        size = (size << 7) | (b & 0x7F)
    return 10 + size + (10 if data[5] & 0x10 else 0)


def frame_header(h: bytes) -> tuple[int, int, int]:
    """(frame length, sample rate, samples per frame) of a Layer III header; AudioError."""
    if len(h) < 4 or h[0] != 0xFF or (h[1] & 0xE0) != 0xE0:
        raise AudioError("MP3 frame sync not found")
    version = (h[1] >> 3) & 0x3  # 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
    layer = (h[1] >> 1) & 0x3
    if version == 1 or layer != 1:
        raise AudioError("not MPEG audio Layer III")
    bitrate_index, rate_index, padding = h[2] >> 4, (h[2] >> 2) & 0x3, (h[2] >> 1) & 0x1
    if bitrate_index in (0, 15) or rate_index == 3:
        raise AudioError("MP3 frame header has an invalid bitrate or sample rate")
    kbps = _BITRATES["1" if version == 3 else "2"][bitrate_index]
    rate = _RATES[version][rate_index]
    samples = 1152 if version == 3 else 576
    length = (samples // 8) * kbps * 1000 // rate + padding
    return length, rate, samples


def mp3_frames(data: bytes) -> Mp3Stream:
    pos = 0
    while (skip := _skip_id3(data[pos:])) > 0:  # one or more ID3v2 tags
        pos += skip
    frames: list[bytes] = []
    rate = samples = 0
    while pos + 4 <= len(data):
        if data[pos : pos + 3] == b"TAG" or data[pos : pos + 8] == b"APETAGEX":
            break  # ID3v1 / APE trailer: the audio is over
        length, rate, samples = frame_header(data[pos : pos + 4])
        frame = data[pos : pos + length]
        if len(frame) < length:
            break  # a truncated last frame is dropped
        if not frames and (b"Xing" in frame[:64] or b"Info" in frame[:64]):
            pos += length  # the encoder's header frame carries no audio
            continue
        frames.append(frame)
        pos += length
    if not frames:
        raise AudioError("no MP3 audio frames found")
    return Mp3Stream(frames, rate, samples)
