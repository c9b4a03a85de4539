"""Targets → MQTT groups and the set of devices they reach (pure functions).

A request names targets: whole communes, hamlets, zones or single speakers. They are
normalised (a hamlet inside a targeted commune adds nothing) into the fewest groups,
one publish per group per frame; the broker fans out to the devices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from devices.topics import Group, GroupKind
from loa.errors import FieldError, InvalidInput

from ..store.rows import DeviceRow


@dataclass(frozen=True)
class Target:
    commune: str
    hamlet: str | None = None
    zone: str | None = None
    device: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The JSON form the API takes: ``commune`` plus at most one of the others."""
        out = {"commune": self.commune}
        for key in ("hamlet", "zone", "device"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out

    def group(self) -> Group:
        if self.hamlet is not None:
            return Group(self.commune, GroupKind.HAMLET, self.hamlet)
        if self.zone is not None:
            return Group(self.commune, GroupKind.ZONE, self.zone)
        if self.device is not None:
            return Group(self.commune, GroupKind.DEVICE, self.device)
        return Group(self.commune, GroupKind.COMMUNE)


@dataclass(frozen=True)
class Directory:
    """What exists, per commune: hamlet ids, zone ids, and devices."""

    hamlets: Mapping[str, frozenset[str]]
    zones: Mapping[str, frozenset[str]]
    devices: Mapping[str, Sequence[DeviceRow]]


@dataclass(frozen=True)
class Resolution:
    groups: tuple[Group, ...]
    devices: tuple[DeviceRow, ...]
    communes: tuple[str, ...]


def member(device: DeviceRow, group: Group) -> bool:
    if device.commune_id != group.commune:
        return False
    match group.kind:
        case GroupKind.COMMUNE:
            return True
        case GroupKind.HAMLET:
            return device.hamlet_id == group.id
        case GroupKind.ZONE:
            return group.id in device.zones
        case GroupKind.DEVICE:
            return device.id == group.id
    return False


def resolve(targets: Sequence[Target], directory: Directory) -> Resolution:
    """Validate targets against the directory and reduce them to groups and devices."""
    errors: list[FieldError] = []
    groups: set[Group] = set()
    for i, t in enumerate(targets):
        where = f"targets[{i}]"
        if t.commune not in directory.hamlets:
            errors.append(FieldError(where, f"commune {t.commune!r} does not exist", "unknown"))
            continue
        known_devices = {d.id for d in directory.devices.get(t.commune, ())}
        if t.hamlet is not None and t.hamlet not in directory.hamlets[t.commune]:
            errors.append(
                FieldError(where, f"hamlet {t.hamlet!r} is not in {t.commune}", "unknown")
            )
            continue
        if t.zone is not None and t.zone not in directory.zones.get(t.commune, frozenset()):
            errors.append(FieldError(where, f"zone {t.zone!r} is not in {t.commune}", "unknown"))
            continue
        if t.device is not None and t.device not in known_devices:
            errors.append(
                FieldError(where, f"speaker {t.device!r} is not in {t.commune}", "unknown")
            )
            continue
        groups.add(t.group())
    if errors:
        raise InvalidInput("some targets do not exist", errors=errors)
    if not groups:
        raise InvalidInput(
            "choose at least one target",
            errors=[FieldError("targets", "no target given", "required")],
        )
    whole = {g.commune for g in groups if g.kind is GroupKind.COMMUNE}
    kept = sorted(g for g in groups if g.kind is GroupKind.COMMUNE or g.commune not in whole)
    hamlets = {(g.commune, g.id) for g in kept if g.kind is GroupKind.HAMLET}
    by_id = {d.id: d for c in directory.devices.values() for d in c}
    kept = [
        g
        for g in kept
        if not (g.kind is GroupKind.DEVICE and (g.commune, by_id[g.id].hamlet_id) in hamlets)
    ]
    reached = tuple(
        d
        for c in sorted({g.commune for g in kept})
        for d in directory.devices.get(c, ())
        if any(member(d, g) for g in kept)
    )
    if not reached:
        raise InvalidInput(
            "the chosen targets contain no speakers",
            errors=[FieldError("targets", "no speakers in these targets", "empty")],
        )
    return Resolution(tuple(kept), reached, tuple(sorted({g.commune for g in kept})))


def devices_only(resolution: Resolution, devices: list[DeviceRow]) -> Resolution:
    """The same targets narrowed to just these speakers, each on its own device topic."""
    return Resolution(
        tuple(Group(d.commune_id, GroupKind.DEVICE, d.id) for d in devices),
        tuple(devices),
        resolution.communes,
    )


def device_groups(device: DeviceRow) -> list[Group]:
    """Every group a speaker belongs to: its commune, hamlet, zones and itself."""
    c = device.commune_id
    return [
        Group(c, GroupKind.COMMUNE),
        Group(c, GroupKind.HAMLET, device.hamlet_id),
        *(Group(c, GroupKind.ZONE, z) for z in device.zones),
        Group(c, GroupKind.DEVICE, device.id),
    ]
