"""What a simulated speaker is: identity, groups, and the faults injected into it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devices.messages import GroupRef
from devices.topics import validate_segment
from loa.errors import ConfigError, ProtocolError


@dataclass(frozen=True)
class DeviceSpec:
    id: str
    commune: str
    hamlet: str
    zones: tuple[str, ...] = ()
    offset_s: float = 0.0  # true clock error
    drift_ppm: float = 0.0
    loss: float = 0.0  # probability of losing an inbound frame
    delay_ms: float = 0.0  # fixed one-way network delay (inbound messages, time requests)
    jitter_ms: float = 0.0  # plus a uniform random 0..jitter_ms per message
    codecs: tuple[str, ...] = ("opus", "mp3")
    firmware: str = "loa-sim/0.1"
    groups: tuple[GroupRef, ...] = field(default=())
    password: str = field(default="", repr=False)  # MQTT password (user name = id); "" = none

    def __post_init__(self) -> None:
        try:
            validate_segment(self.id, "device")
            validate_segment(self.commune, "commune")
            validate_segment(self.hamlet, "hamlet")
            for z in self.zones:
                validate_segment(z, "zone")
        except ProtocolError as exc:
            raise ConfigError(exc.message) from None
        if not 0 <= self.loss <= 1:
            raise ConfigError(f"device {self.id}: loss must be between 0 and 1")
        if self.delay_ms < 0 or self.jitter_ms < 0:
            raise ConfigError(f"device {self.id}: delay_ms and jitter_ms must be >= 0")
        if abs(self.drift_ppm) > 1000:
            raise ConfigError(f"device {self.id}: drift_ppm beyond ±1000 is not a clock")
        if not self.groups:
            groups = [GroupRef(kind="all"), GroupRef(kind="hamlet", id=self.hamlet)]
            groups += [GroupRef(kind="zone", id=z) for z in self.zones]
            groups.append(GroupRef(kind="device", id=self.id))
            object.__setattr__(self, "groups", tuple(groups))


_FIELDS = {
    "id",
    "commune",
    "hamlet",
    "zones",
    "offset_s",
    "drift_ppm",
    "loss",
    "delay_ms",
    "jitter_ms",
    "codecs",
    "firmware",
    "password",
}


def spec_from_dict(d: dict[str, Any]) -> DeviceSpec:
    unknown = set(d) - _FIELDS
    if unknown:
        raise ConfigError(f"fleet file: unknown device field(s) {sorted(unknown)}")
    try:
        return DeviceSpec(
            id=str(d["id"]),
            commune=str(d["commune"]),
            hamlet=str(d["hamlet"]),
            zones=tuple(d.get("zones", ())),
            offset_s=float(d.get("offset_s", 0.0)),
            drift_ppm=float(d.get("drift_ppm", 0.0)),
            loss=float(d.get("loss", 0.0)),
            delay_ms=float(d.get("delay_ms", 0.0)),
            jitter_ms=float(d.get("jitter_ms", 0.0)),
            codecs=tuple(d.get("codecs", ("opus", "mp3"))),
            firmware=str(d.get("firmware", "loa-sim/0.1")),
            password=str(d.get("password", "")),
        )
    except KeyError as exc:
        raise ConfigError(f"fleet file: a device lacks {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"fleet file: bad value ({exc})") from None


def load_fleet(path: Path) -> list[DeviceSpec]:
    """Read ``{"devices": [{"id", "commune", "hamlet", ...}, ...]}``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"fleet file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"fleet file {path} is not JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("devices"), list):
        raise ConfigError(f'fleet file {path}: expected {{"devices": [...]}}')
    if not all(isinstance(d, dict) for d in data["devices"]):
        raise ConfigError(f"fleet file {path}: every device must be a JSON object")
    specs = [spec_from_dict(d) for d in data["devices"]]
    ids = [s.id for s in specs]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"fleet file {path}: duplicate device ids")
    return specs


def dump_fleet(specs: list[DeviceSpec]) -> str:
    return json.dumps(
        {
            "devices": [
                {
                    "id": s.id,
                    "commune": s.commune,
                    "hamlet": s.hamlet,
                    "zones": list(s.zones),
                    "offset_s": s.offset_s,
                    "drift_ppm": s.drift_ppm,
                    "loss": s.loss,
                    "delay_ms": s.delay_ms,
                    "jitter_ms": s.jitter_ms,
                    "codecs": list(s.codecs),
                    **({"password": s.password} if s.password else {}),
                }
                for s in specs
            ]
        },
        indent=1,
        ensure_ascii=False,
    )
