"""What a container says about itself, read before anything is decoded (pure parsing).

``ffmpeg -i FILE`` prints the container's duration and its streams; that is enough to
refuse a four-hour recording or a file with no audio track before decoding a second
of it. A container that does not know its duration (some raw AAC/AMR streams) says
``N/A``: then the decoder's own limit (``-t``) still bounds the work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DURATION = re.compile(r"^\s*Duration:\s*(?:(\d+):(\d\d):(\d\d(?:\.\d+)?)|N/A)", re.M)
_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*?:\s*(Audio|Video|Subtitle|Data|Attachment):", re.M)
_INPUT = re.compile(r"^Input #0, ", re.M)


@dataclass(frozen=True)
class Probe:
    opened: bool  # the demuxer accepted the file
    duration_s: float | None  # None: the container does not say
    audio_streams: int
    other_streams: int


def parse_probe(stderr: str) -> Probe:
    if not _INPUT.search(stderr):
        return Probe(False, None, 0, 0)
    m = _DURATION.search(stderr)
    duration = None
    if m and m.group(1) is not None:
        duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    kinds = _STREAM.findall(stderr)
    audio = sum(1 for k in kinds if k == "Audio")
    return Probe(True, duration, audio, len(kinds) - audio)
