"""Alarm rules (pure): a speaker's state in, the alarms that should be open out.

Raising and clearing is the service's job: an alarm is raised once when its rule
starts to hold, cleared when it stops, and acknowledged by a technician.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import FleetSettings

KINDS = {
    "offline": "speaker offline or silent",
    "amp_fault": "amplifier or speaker-line fault",
    "temperature": "temperature high",
    "weak_signal": "weak signal",
    "missed_programme": "missed a scheduled programme",
    "failed_alert": "failed an emergency alert",
}


@dataclass(frozen=True)
class SpeakerState:
    """What the controller knows about one speaker now."""

    online: bool
    presence_changed_us: int | None
    last_seen_us: int | None
    amp_fault: bool = False
    temperature_c: float | None = None
    weak_since_us: int | None = None  # start of the current run of weak-signal reports
    missed_programme: str = ""  # the latest programme it failed, if its latest failed
    failed_alert: str = ""
    watching_since_us: int | None = None  # the controller's start: "never seen" counts from it


def evaluate(f: SpeakerState, now_us: int, s: FleetSettings) -> dict[str, str]:
    """kind → detail, for every rule that holds."""
    out: dict[str, str] = {}
    silent = int(s.silent_s * 1e6)
    if not f.online:
        seen = f.presence_changed_us or f.last_seen_us
        since = seen or f.watching_since_us
        if since is None or now_us - since >= silent:
            out["offline"] = "offline" if seen is not None else "never seen"
    elif f.last_seen_us is not None and now_us - f.last_seen_us >= silent:
        out["offline"] = f"no heartbeat for {(now_us - f.last_seen_us) / 1e6:.0f} s"
    if f.amp_fault:
        out["amp_fault"] = "the speaker reports an amplifier fault"
    if f.temperature_c is not None and f.temperature_c > s.temperature_max_c:
        out["temperature"] = f"{f.temperature_c:.1f} °C (limit {s.temperature_max_c:.0f} °C)"
    if f.weak_since_us is not None and now_us - f.weak_since_us >= s.weak_signal_s * 1e6:
        out["weak_signal"] = f"below {s.weak_rssi_dbm} dBm since {f.weak_since_us}"
    if f.missed_programme:
        out["missed_programme"] = f.missed_programme
    if f.failed_alert:
        out["failed_alert"] = f.failed_alert
    return out
