"""A stored item's renditions, read from disk and cut into legs: the Opus leg for every
targeted group, plus an MP3 leg where MP3-only speakers are (the dispatcher's file edge;
the cutting itself is :mod:`.legs`, pure)."""

from __future__ import annotations

from pathlib import Path

from audio.mp3 import mp3_frames
from audio.ogg import opus_stream
from devices.frames import Priority
from loa.errors import LoaError

from ..places.targeting import Resolution, member
from ..store.rows import MediaRow
from .legs import Leg, Timing, mp3_alignment_us, mp3_leg, opus_leg


def media_legs(
    media: MediaRow,
    resolution: Resolution,
    timing: Timing,
    priority: Priority,
    bid: str,
    title: str,
    volume: int | None,
) -> list[Leg]:
    """The Opus leg for every group, plus an MP3 leg where MP3-only speakers are."""
    groups = list(resolution.groups)
    try:
        opus = opus_stream(Path(media.path).read_bytes())
    except OSError as exc:
        raise LoaError(f"media file for {media.id} is missing") from exc
    legs = [opus_leg(opus, media.frame_ms, groups, timing, priority, bid, title, volume)]
    mp3_only = [d for d in resolution.devices if d.needs_mp3]
    mp3_groups = [g for g in groups if any(member(d, g) for d in mp3_only)]
    if mp3_groups:
        if not media.mp3_path:
            raise LoaError(f"media {media.id} has no MP3 rendition for MP3-only speakers")
        try:
            mp3 = mp3_frames(Path(media.mp3_path).read_bytes())
        except OSError as exc:
            raise LoaError(f"MP3 file for {media.id} is missing") from exc
        align = mp3_alignment_us(opus.pre_skip, mp3.sample_rate)
        legs.append(mp3_leg(mp3, mp3_groups, timing, priority, bid, title, volume, align))
    return legs
