"""Recognise audio containers by their first bytes (pure), to explain ffmpeg's refusals."""

from __future__ import annotations

_PREFIXES = (
    b"ID3",  # MP3 with an ID3v2 tag
    b"OggS",  # Ogg (Opus, Vorbis, FLAC)
    b"RIFF",  # WAV
    b"fLaC",  # FLAC
    b"#!AMR",  # AMR-NB / AMR-WB
    b"\x1a\x45\xdf\xa3",  # EBML: Matroska / WebM
    b"FORM",  # AIFF
    b".snd",  # AU
    b"caff",  # Core Audio Format
    b"\x30\x26\xb2\x75\x8e\x66\xcf\x11",  # ASF / WMA
    b"wvpk",  # WavPack
    b"MAC ",  # Monkey's Audio
    b"TTA1",  # TTA
    b"riff",  # Sony Wave64
)


def looks_like_audio(head: bytes) -> bool:
    """True if ``head`` (the first ≥ 12 bytes of a file) starts like a known audio file."""
    if head.startswith(_PREFIXES):
        return True
    if len(head) >= 12 and head[4:8] == b"ftyp":  # MP4 / M4A / 3GP / MOV
        return True
    # MPEG audio or ADTS AAC frame sync: 11 set bits
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0
