"""Bulletins as sequences: chime + item(s) + spoken text + chime, read N times.

:func:`plan` is pure: it turns what the user asked for into a flat list of steps
(chimes, items, text, pauses) with the repeat count applied. :func:`render` is the
one step that makes sound: it asks a provider for each step's PCM and joins them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

StepKind = Literal["chime", "media", "text", "pause", "signal"]

#: Silence between parts and between readings, milliseconds.
PART_GAP_MS = 400
READING_GAP_MS = 1500
MAX_STEPS = 200


@dataclass(frozen=True)
class Step:
    kind: StepKind
    ref: str = ""  # media id, text, chime name ("open"/"close") or signal name
    ms: int = 0  # pauses only


@dataclass(frozen=True)
class Part:
    """What the user puts in a bulletin, in order."""

    kind: Literal["media", "text", "pause"]
    ref: str = ""
    ms: int = 0


def plan(parts: Sequence[Part], *, repeat: int = 1, chimes: bool = True) -> list[Step]:
    """Steps to play: opening chime, the parts ``repeat`` times, closing chime.

    Parts are separated by a short gap and readings by a longer one, as an announcer
    would; explicit pauses replace the gap at their place.
    """
    if not parts:
        raise ValueError("a bulletin needs at least one part")
    if not 1 <= repeat <= 10:
        raise ValueError("repeat must be between 1 and 10")
    body: list[Step] = []
    for part in parts:
        if part.kind == "pause":
            if not 0 < part.ms <= 60_000:
                raise ValueError("a pause lasts between 1 ms and 60 s")
            body.append(Step("pause", ms=part.ms))
            continue
        if body and body[-1].kind != "pause":
            body.append(Step("pause", ms=PART_GAP_MS))
        body.append(Step(part.kind, part.ref))
    steps: list[Step] = []
    if chimes:
        steps += [Step("chime", "open"), Step("pause", ms=PART_GAP_MS)]
    for reading in range(repeat):
        if reading:
            steps.append(Step("pause", ms=READING_GAP_MS))
        steps.extend(body)
    if chimes:
        steps += [Step("pause", ms=PART_GAP_MS), Step("chime", "close")]
    if len(steps) > MAX_STEPS:
        raise ValueError(f"the bulletin is too long ({len(steps)} steps; at most {MAX_STEPS})")
    return steps


def render(steps: Sequence[Step], provide: Callable[[Step], bytes], *, rate: int) -> bytes:
    """Join each step's mono s16le PCM (pauses are silence) into one recording."""
    out = bytearray()
    cache: dict[Step, bytes] = {}
    for step in steps:
        if step.kind == "pause":
            out += bytes(2 * (rate * step.ms // 1000))
            continue
        if step not in cache:
            pcm = provide(step)
            cache[step] = pcm[: len(pcm) - len(pcm) % 2]
        out += cache[step]
    return bytes(out)
