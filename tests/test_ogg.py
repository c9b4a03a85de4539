"""The Ogg demuxer: packets reassembled from lacing values; garbage refused with AudioError."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio.ogg import OpusStream, opus_stream, packets
from loa.errors import AudioError

PAGE = struct.Struct("<4sBBqIIIB")
CONTINUED, FIRST, LAST = 0x01, 0x02, 0x04


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


CRC_TABLE = _crc_table()


def ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ CRC_TABLE[((crc >> 24) & 0xFF) ^ byte]
    return crc


def lacing(size: int) -> list[int]:
    """RFC 3533 lacing values for one whole packet of ``size`` bytes."""
    return [255] * (size // 255) + [size % 255]


def page(
    body: bytes,
    laces: list[int],
    *,
    serial: int = 0x10A,
    seq: int = 0,
    htype: int = 0,
    granule: int = 0,
) -> bytes:
    """One Ogg page, with a correct CRC, as an encoder would write it."""
    assert sum(laces) == len(body)
    assert len(laces) <= 255
    head = PAGE.pack(b"OggS", 0, htype, granule, serial, seq, 0, len(laces))
    raw = head + bytes(laces) + body
    crc = ogg_crc(raw)
    return raw[:22] + struct.pack("<I", crc) + raw[26:]


def packet_page(pks: list[bytes], **kw) -> bytes:
    laces = [v for p in pks for v in lacing(len(p))]
    return page(b"".join(pks), laces, **kw)


def opus_head(channels: int = 1, pre_skip: int = 312, rate: int = 16_000) -> bytes:
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, rate, 0, 0)


def opus_file(audio: list[bytes], **head) -> bytes:
    tags = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
    return (
        packet_page([opus_head(**head)], htype=FIRST, seq=0)
        + packet_page([tags], seq=1)
        + packet_page(audio, seq=2, htype=LAST, granule=960 * len(audio))
    )


def test_crc_matches_the_reference_value() -> None:
    # RFC 3533: polynomial 0x04C11DB7, initial value 0, no reflection, no final XOR, i.e.
    # POSIX cksum's CRC (check value 0x765E7680) without its final inversion.
    assert ogg_crc(b"123456789") == 0x89A1897F


def test_600_byte_packet_spans_three_lacing_values() -> None:
    big = bytes(range(256)) * 2 + bytes(88)
    assert len(big) == 600
    assert lacing(600) == [255, 255, 90]
    data = packet_page([big, b"tail"])
    assert data[PAGE.size - 1] == 4  # four segments
    assert list(data[PAGE.size : PAGE.size + 4]) == [255, 255, 90, 4]
    assert packets(data) == [big, b"tail"]


def test_multiple_of_255_needs_a_zero_lacing_value() -> None:
    exact = b"\x07" * 510
    assert lacing(510) == [255, 255, 0]
    assert packets(packet_page([exact, b"x"])) == [exact, b"x"]


@pytest.mark.parametrize("size", [1, 253, 254, 255, 256, 509, 510, 511, 765, 1000])
def test_packet_sizes_around_lacing_boundaries(size: int) -> None:
    packet = bytes(i % 253 for i in range(size))
    laces = lacing(size)
    assert sum(laces) == size
    assert laces[-1] < 255
    assert packets(packet_page([packet, b"after"])) == [packet, b"after"]


def test_empty_packet() -> None:
    assert packets(packet_page([b"a", b"", b"b"])) == [b"a", b"", b"b"]


def test_packet_continued_on_the_next_page() -> None:
    big = bytes(i % 251 for i in range(700))
    data = page(big[:510], [255, 255], seq=0) + page(
        big[510:] + b"next", [190, 4], seq=1, htype=CONTINUED
    )
    assert packets(data) == [big, b"next"]


def test_other_logical_streams_are_skipped() -> None:
    data = (
        packet_page([b"mine-1"], serial=1, htype=FIRST)
        + packet_page([b"theirs-1", b"theirs-2"], serial=2, htype=FIRST)
        + packet_page([b"mine-2"], serial=1, seq=1)
        + packet_page([b"x" * 300], serial=2, seq=1)
    )
    assert packets(data) == [b"mine-1", b"mine-2"]


@settings(max_examples=100)
@given(
    st.lists(
        st.lists(st.binary(max_size=800), min_size=1, max_size=5),
        min_size=1,
        max_size=5,
    )
)
def test_pages_of_packets_round_trip(pages: list[list[bytes]]) -> None:
    data = b"".join(packet_page(pks, seq=i) for i, pks in enumerate(pages))
    assert packets(data) == [p for pks in pages for p in pks]


def test_opus_stream() -> None:
    audio = [b"\xfc" + bytes(40), b"\xfc" + bytes(300), b"\xfc\x01"]
    stream = opus_stream(opus_file(audio, channels=2, pre_skip=3840, rate=44_100))
    assert stream == OpusStream(packets=audio, pre_skip=3840, channels=2, input_rate=44_100)


def test_empty_ogg() -> None:
    assert packets(b"") == []
    with pytest.raises(AudioError, match="does not hold Opus"):
        opus_stream(b"")


# --- refusals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"OggS", "truncated in a page header"),
        (b"RIFF\x24\x00\x00\x00WAVE", "truncated in a page header"),
        (b"ID3\x04" + bytes(100), "not an Ogg stream"),
        (b"\xff\xfb\x90\x64" + bytes(400), "not an Ogg stream"),
        (b"fLaC" + bytes(60), "not an Ogg stream"),
    ],
)
def test_garbage_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(AudioError, match=reason):
        packets(data)
    with pytest.raises(AudioError, match=reason):
        opus_stream(data)


def test_unknown_ogg_version_is_refused() -> None:
    good = packet_page([b"abc"])
    with pytest.raises(AudioError, match="not an Ogg stream"):
        packets(good[:4] + b"\x01" + good[5:])


def test_garbage_after_a_good_page_is_refused() -> None:
    with pytest.raises(AudioError, match="not an Ogg stream"):
        packets(packet_page([b"abc"]) + b"junk" * 10)


def test_every_truncation_is_refused() -> None:
    data = opus_file([b"\xfc" + bytes(600), b"\xfc\x02"])
    boundaries, pos = {0}, 0
    while pos < len(data):
        nseg = data[pos + 26]
        pos += PAGE.size + nseg + sum(data[pos + PAGE.size : pos + PAGE.size + nseg])
        boundaries.add(pos)
    assert len(boundaries) == 4  # three pages
    for cut in range(len(data)):
        if cut in boundaries:
            continue
        with pytest.raises(AudioError, match="truncated in a page"):
            packets(data[:cut])
        with pytest.raises(AudioError, match="truncated in a page"):
            opus_stream(data[:cut])


@pytest.mark.parametrize(
    "pks",
    [
        [b"\x01vorbis" + bytes(23), b"\x03vorbis" + bytes(10)],  # Ogg Vorbis
        [b"\x7fFLAC\x01\x00" + bytes(40)],  # Ogg FLAC
        [b"Speex   " + bytes(72)],
        [b"OpusHead" + bytes(11)],  # no OpusTags after it
        [b"OpusTags" + bytes(8), b"OpusHead" + bytes(11)],  # wrong order
        [b"opushead" + bytes(11), b"OpusTags" + bytes(8)],
    ],
)
def test_non_opus_ogg_is_refused(pks: list[bytes]) -> None:
    data = packet_page(pks, htype=FIRST)
    assert packets(data) == pks  # a fine Ogg stream ...
    with pytest.raises(AudioError, match="Ogg stream does not hold Opus"):
        opus_stream(data)  # ... but not Opus


@settings(max_examples=200)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_only_raise_audio_error(data: bytes) -> None:
    for candidate in (data, b"OggS\x00" + data):
        try:
            result = packets(candidate)
        except AudioError:
            continue
        assert isinstance(result, list)


@pytest.mark.parametrize("head", [b"OpusHead", b"OpusHead\x01\x01", b"OpusHead\x01\x01\x00\x00"])
def test_short_opus_head_is_refused(head: bytes) -> None:
    data = packet_page([head, b"OpusTags" + bytes(8)], htype=FIRST)
    with pytest.raises(AudioError):
        opus_stream(data)
