"""Roles, permissions and areas (pure).

A role grants permissions; an account has one or more roles and one area: the whole
province, one commune, or some hamlets of one commune. Every action is checked for both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    BROADCASTER = "broadcaster"  # media, schedules, live
    APPROVER = "approver"  # approves what airs
    OPERATOR = "operator"  # emergency alerts
    TECHNICIAN = "technician"  # devices, commands, firmware
    VIEWER = "viewer"


class Perm(StrEnum):
    READ = "read"
    MEDIA = "media"  # upload, record, text, compose, delete
    SCHEDULE = "schedule"  # create, edit, delete, submit programmes
    APPROVE = "approve"  # approve or return programmes
    BROADCAST = "broadcast"  # play now, live, relay, stop
    ALERT = "alert"  # trigger, confirm, update, cancel, all-clear, CAP import
    DEVICE = "device"  # device registry, commands, firmware, credentials
    USERS = "users"  # accounts and tokens of others
    PLACES = "places"  # create, rename, delete provinces, communes, hamlets, zones
    AUDIT = "audit"  # read the audit log


GRANTS: dict[Role, frozenset[Perm]] = {
    Role.ADMIN: frozenset(Perm),
    Role.BROADCASTER: frozenset({Perm.READ, Perm.MEDIA, Perm.SCHEDULE, Perm.BROADCAST}),
    Role.APPROVER: frozenset({Perm.READ, Perm.APPROVE, Perm.AUDIT}),
    Role.OPERATOR: frozenset({Perm.READ, Perm.ALERT, Perm.BROADCAST}),
    Role.TECHNICIAN: frozenset({Perm.READ, Perm.DEVICE}),
    Role.VIEWER: frozenset({Perm.READ}),
}


def perms_of(roles: Iterable[Role]) -> frozenset[Perm]:
    out: set[Perm] = set()
    for r in roles:
        out |= GRANTS[r]
    return frozenset(out)


EVERYWHERE = ""  # the province of an area that covers every province


@dataclass(frozen=True)
class Area:
    """Where an account may act: a province, one commune, or hamlets of one commune.
    The first admin of an empty installation has province ``""`` (:data:`EVERYWHERE`):
    every province, including those it creates."""

    province: str
    commune: str | None = None
    hamlets: frozenset[str] = frozenset()

    def covers_commune(self, commune: str, province_of: str | None) -> bool:
        """May read and act on this commune's things (hamlet accounts: read, and target
        their own hamlets)."""
        if self.commune is None:
            return self.is_everywhere or province_of == self.province
        return commune == self.commune

    def whole_commune(self, commune: str, province_of: str | None) -> bool:
        """May act on the commune as a whole (not only some hamlets of it)."""
        return self.covers_commune(commune, province_of) and not self.hamlets

    @property
    def is_province(self) -> bool:
        return self.commune is None

    @property
    def is_everywhere(self) -> bool:
        return self.province == EVERYWHERE and self.commune is None

    def covers_province(self, province: str) -> bool:
        """May act on the province as a whole (its communes, accounts, reports)."""
        return self.is_everywhere or (self.is_province and self.province == province)

    def describe(self) -> str:
        if self.is_everywhere:
            return "every province"
        if self.commune is None:
            return f"province {self.province}"
        if self.hamlets:
            return f"hamlets {', '.join(sorted(self.hamlets))} of {self.commune}"
        return f"commune {self.commune}"


@dataclass(frozen=True)
class Principal:
    """The account behind a request."""

    user_id: str
    username: str
    roles: frozenset[Role]
    area: Area
    via: str  # "session" or "token"
    csrf: str = ""  # the session's CSRF token (sessions only)

    @property
    def perms(self) -> frozenset[Perm]:
        return perms_of(self.roles)

    def can(self, perm: Perm) -> bool:
        return perm in self.perms
