"""The rows of a conformance session and the pass/fail table (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from devices.messages import PlayReport

#: Every row the kit checks: id → (what, the docs/protocol.md section it checks).
ROWS: dict[str, tuple[str, str]] = {
    "presence": ("online presence, retained", "Presence and the last will"),
    "command": ("a signed command (test_tone) is acknowledged ok", "Commands"),
    "command-expired": ("an expired command is answered ok: false", "Commands"),
    "time-sync": ("clock sync over time/req → signed TIME answers", "Clock sync"),
    "stream": ("a stream plays, on time, and is reported played", "Streams, priority and playout"),
    "config": (
        "a group added by a signed DeviceConfig is listened to",
        "What a device subscribes to",
    ),
    "preempt": (
        "an emergency alert pre-empts a stream at its time (END preempted)",
        "Streams, priority and playout",
    ),
    "preempt-own": (
        "a priority stream pre-empts a normal one with no END: cut and reported at once",
        "Streams, priority and playout",
    ),
    "alert": ("the emergency alert on alert/ plays in full", "Topics"),
    "prefetch": ("a prefetched item is stored (hash verified)", "Prefetch: cached items and PLAY"),
    "prefetch-hash": ("an item with a wrong SHA-256 is refused", "Prefetch: cached items and PLAY"),
    "play-at-t": (
        "PLAY is armed and the cached item plays at its time",
        "Prefetch: cached items and PLAY",
    ),
    "forged": (
        "frames and commands signed by an unknown key or altered are refused",
        "Verifying a frame (in this order)",
    ),
    "replayed": (
        "a completed stream and a command sent again are refused",
        "Verifying a frame (in this order)",
    ),
    "moved": ("frames signed for another device's topic are refused", "Frames"),
    "old": (
        "frames and commands sent 60 s ago (outside the window) are refused",
        "Verifying a frame (in this order)",
    ),
    "firmware-hash": ("a firmware image whose SHA-256 does not match is refused", "Firmware"),
    "messages": ("everything the speaker published parses", "Required and optional fields"),
}


@dataclass(frozen=True)
class Row:
    id: str
    passed: bool
    detail: str

    @property
    def what(self) -> str:
        return ROWS[self.id][0]

    @property
    def section(self) -> str:
        return ROWS[self.id][1]


def ordered(rows: list[Row]) -> list[Row]:
    """The rows in :data:`ROWS` order; a row never checked is a failure."""
    have = {r.id: r for r in rows}
    return [have.get(k, Row(k, False, "not checked (the session stopped before it)")) for k in ROWS]


def table(rows: list[Row], *, device: str) -> str:
    """The pass/fail table, one line per row, then a summary line."""
    width = max(len(k) for k in ROWS)
    lines = [f"Loa conformance (docs/protocol.md v1.1), speaker {device}", ""]
    for r in rows:
        mark = "PASS" if r.passed else "FAIL"
        lines.append(f"{mark}  {r.id:<{width}}  {r.what}  [§ {r.section}]")
        if r.detail:
            lines.append(f"      {'':<{width}}  {r.detail}")
    failed = [r.id for r in rows if not r.passed]
    lines.append("")
    if failed:
        lines.append(
            f"{len(rows) - len(failed)} of {len(rows)} passed; failed: {', '.join(failed)}"
        )
    else:
        lines.append(f"all {len(rows)} checks passed")
    return "\n".join(lines)


def describe(rep: PlayReport | None) -> str:
    if rep is None:
        return "no PlayReport"
    return (
        f"PlayReport {rep.outcome}, played {rep.frames_played}, late {rep.frames_late}, "
        f"missing {rep.frames_missing}"
    )
