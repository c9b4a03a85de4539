"""Who may do what, where — the two halves of the access policy.

1. :data:`POLICY`: the permission every route needs (deny by default: a route missing
   here is 403, and a test fails while any route is missing). Keys are (method, path
   template); ``WS`` for WebSocket routes; ``None`` means public.
2. :func:`require_within`: the one rule for every existing object — acting on it needs
   its whole area inside the caller's; reading it needs it in the caller's commune (or a
   shared province catalogue). The auth middleware applies it to every object a path
   names (where it lies comes from :mod:`broadcaster.auth.reach`); handlers apply it to
   what a body names (new targets, a speaker's new hamlet, accounts given out:
   :func:`require_grant`). Other packages call it the same way, e.g. for an alert's
   targets::

       from broadcaster.auth.policy import require_within
       from broadcaster.auth.reach import Reaches

       require_within(principal, Reaches(store).targets(targets), what="this alert")
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from loa.errors import Forbidden

from .roles import Area, Perm, Principal, Role, perms_of

PUBLIC = None
R, M, S, A = Perm.READ, Perm.MEDIA, Perm.SCHEDULE, Perm.APPROVE
B, AL, D, U, AU = Perm.BROADCAST, Perm.ALERT, Perm.DEVICE, Perm.USERS, Perm.AUDIT
P = Perm.PLACES

POLICY: dict[tuple[str, str], Perm | None] = {
    ("GET", "/login"): PUBLIC,
    ("GET", "/static"): PUBLIC,
    ("GET", "/"): R,
    ("GET", "/library"): R,
    ("GET", "/schedule"): R,
    ("GET", "/live"): R,
    ("GET", "/emergency"): R,
    ("GET", "/devices"): R,
    ("GET", "/devices/{device}"): R,
    ("GET", "/reports"): R,
    ("GET", "/api/health"): PUBLIC,
    ("GET", "/api/keys"): R,
    ("POST", "/api/login"): PUBLIC,
    ("POST", "/api/logout"): R,
    ("GET", "/api/me"): R,
    ("GET", "/api/me/tokens"): R,
    ("POST", "/api/me/tokens"): R,
    ("DELETE", "/api/me/tokens/{token}"): R,
    ("POST", "/api/me/password"): R,
    ("GET", "/api/users"): U,
    ("POST", "/api/users"): U,
    ("GET", "/api/users/{user}"): U,
    ("PUT", "/api/users/{user}"): U,
    ("GET", "/api/audit"): AU,
    # places (the handlers add: provinces by an admin of every province, communes by the
    # province's admin, hamlets and zones by an admin of the whole commune)
    ("GET", "/api/provinces"): R,
    ("POST", "/api/provinces"): P,
    ("PUT", "/api/provinces/{province}"): P,
    ("DELETE", "/api/provinces/{province}"): P,
    ("POST", "/api/provinces/{province}/communes"): P,
    ("GET", "/api/communes/{commune}"): R,
    ("PUT", "/api/communes/{commune}"): P,
    ("DELETE", "/api/communes/{commune}"): P,
    ("POST", "/api/communes/{commune}/hamlets"): P,
    ("PUT", "/api/communes/{commune}/hamlets/{hamlet}"): P,
    ("DELETE", "/api/communes/{commune}/hamlets/{hamlet}"): P,
    ("GET", "/api/communes/{commune}/zones"): R,
    ("POST", "/api/communes/{commune}/zones"): P,
    ("PUT", "/api/communes/{commune}/zones/{zone}"): P,
    ("DELETE", "/api/communes/{commune}/zones/{zone}"): P,
    ("POST", "/api/communes/{commune}/devices/import"): D,
    ("GET", "/api/communes/{commune}/devices/export.csv"): R,
    ("GET", "/api/devices/{device}/provisioning"): D,
    ("GET", "/setup"): R,
    # devices, broadcasts
    ("GET", "/api/communes"): R,
    ("GET", "/api/communes/{commune}/hamlets"): R,
    ("GET", "/api/communes/{commune}/devices"): R,
    ("POST", "/api/communes/{commune}/devices"): D,
    ("GET", "/api/devices/{device}"): R,
    ("PUT", "/api/devices/{device}"): D,
    ("DELETE", "/api/devices/{device}"): D,
    ("GET", "/api/devices/{device}/uptime"): R,
    ("GET", "/api/communes/{commune}/uptime"): R,
    ("GET", "/api/communes/{commune}/alarms"): R,
    ("GET", "/api/communes/{commune}/alarms/stream"): R,
    ("POST", "/api/alarms/{alarm}/ack"): D,
    ("POST", "/api/devices/{device}/commands"): D,
    ("GET", "/api/devices/{device}/commands"): R,
    ("GET", "/metrics"): R,
    ("POST", "/api/firmware"): D,
    ("GET", "/api/firmware"): R,
    ("POST", "/api/firmware/{firmware}/rollouts"): D,
    ("GET", "/api/rollouts/{rollout}"): R,
    ("GET", "/api/communes/{commune}/report"): R,
    ("GET", "/api/provinces/{province}/report"): R,
    ("POST", "/api/devices/{device}/credentials"): D,
    ("DELETE", "/api/devices/{device}/credentials"): D,
    ("GET", "/api/communes/{commune}/broadcasts"): R,
    ("POST", "/api/broadcasts"): B,
    ("GET", "/api/broadcasts/{broadcast}"): R,
    ("POST", "/api/broadcasts/{broadcast}/stop"): B,
    ("WS", "/api/communes/{commune}/live"): B,
    ("POST", "/api/communes/{commune}/relays"): B,
    # library
    ("GET", "/api/communes/{commune}/media"): R,
    ("POST", "/api/communes/{commune}/media"): M,
    ("POST", "/api/communes/{commune}/media/text"): M,
    ("POST", "/api/communes/{commune}/media/compose"): M,
    ("POST", "/api/provinces/{province}/media"): M,
    ("GET", "/api/signals"): R,
    ("GET", "/api/media/{media}"): R,
    ("DELETE", "/api/media/{media}"): M,
    ("GET", "/api/media/{media}/waveform.png"): R,
    ("GET", "/api/media/{media}/audio"): R,
    # schedule
    ("POST", "/api/provinces/{province}/bulletins"): S,
    ("GET", "/api/communes/{commune}/programmes"): R,
    ("POST", "/api/communes/{commune}/programmes"): S,
    ("POST", "/api/communes/{commune}/programmes/check"): S,
    ("GET", "/api/communes/{commune}/occurrences"): R,
    ("GET", "/api/communes/{commune}/occurrences/history"): R,
    ("GET", "/api/programmes/{programme}"): R,
    ("PUT", "/api/programmes/{programme}"): S,
    ("DELETE", "/api/programmes/{programme}"): S,
    ("POST", "/api/programmes/{programme}/submit"): S,
    ("POST", "/api/programmes/{programme}/approve"): A,
    ("POST", "/api/programmes/{programme}/return"): A,
    # alerts
    ("GET", "/api/communes/{commune}/alerts"): R,
    ("POST", "/api/communes/{commune}/alerts"): AL,
    ("POST", "/api/communes/{commune}/alerts/cap"): AL,
    ("GET", "/api/alerts/{alert}"): R,
    ("POST", "/api/alerts/{alert}/confirm"): AL,
    ("POST", "/api/alerts/{alert}/cancel"): AL,
    ("POST", "/api/alerts/{alert}/update"): AL,
    ("POST", "/api/alerts/{alert}/all-clear"): AL,
    ("GET", "/api/alerts/{alert}/events"): R,
    ("GET", "/api/alerts/{alert}/cap"): R,
}


# --- the one rule for every existing object -------------------------------------------


@dataclass(frozen=True)
class Part:
    """One piece of where an object lies: a whole province (``commune`` None), a whole
    commune (``hamlets`` None) or some hamlets of one commune. ``shared`` marks a
    province catalogue every account of the province may read (the province library,
    firmware images)."""

    province: str
    commune: str | None = None
    hamlets: frozenset[str] | None = None
    shared: bool = False


#: Where an object lies: the union of its parts (a broadcast to two hamlets has two).
Reach = tuple[Part, ...]
#: The province of a part that belongs to the whole deployment (the province library,
#: built-in signals, firmware images: stored without a province).
DEPLOYMENT = "*"


def within(area: Area, reach: Reach, *, read: bool = False) -> bool:
    """Whether an account whose area is ``area`` may act on (``read=False``) or read an
    object lying in ``reach``.

    Acting needs the object's *whole* area inside the account's: a hamlet account acts
    only on objects of its hamlets, a commune account on objects of its commune, a
    province account on its province. Reading is wider by one step: an account reads
    everything of its own commune (a hamlet broadcaster sees the commune's schedule),
    and a province's shared catalogues; never another commune's or province's things.
    An object with no part at all is refused (nothing known about it is not "inside").
    """
    if not reach:
        return False
    return all(_part_within(area, p, read) for p in reach)


def _part_within(area: Area, part: Part, read: bool) -> bool:
    if area.is_everywhere:  # the first admin of an installation: every province
        return True
    if part.province == DEPLOYMENT:
        return area.is_province or (read and part.shared)
    if part.province != area.province:
        return False
    if area.is_province:
        return True
    if part.commune is None:
        return read and part.shared
    if part.commune != area.commune:
        return False
    if read or not area.hamlets:
        return True
    return part.hamlets is not None and part.hamlets <= area.hamlets


def describe_reach(reach: Reach) -> str:
    out = []
    for p in reach:
        if p.province == DEPLOYMENT:
            out.append("the whole deployment")
        elif p.commune is None:
            out.append(f"province {p.province}")
        elif p.hamlets is None:
            out.append(f"commune {p.commune}")
        else:
            out.append(f"hamlets {', '.join(sorted(p.hamlets))} of {p.commune}")
    return "; ".join(sorted(set(out))) or "nowhere known"


def require_within(who: Principal, reach: Reach, *, read: bool = False, what: str = "it") -> None:
    """The policy every route applies to the object it loads (and alerts may call):
    :class:`~loa.errors.Forbidden` unless ``within(who.area, reach, read=read)``.

    ``reach`` comes from :mod:`broadcaster.auth.reach` (``reach_of(store, kind, id)``
    for a stored object, ``reach_of_targets(store, targets)`` for targets)."""
    if not within(who.area, reach, read=read):
        raise Forbidden(
            f"{what} lies outside your area: it reaches {describe_reach(reach)}, "
            f"you act on {who.area.describe()}"
        )


def area_reach(area: Area) -> Reach:
    """An account's own area as a reach (accounts are objects too)."""
    hamlets = area.hamlets or None
    return (Part(area.province, area.commune, hamlets if area.commune else None),)


def require_grant(who: Principal, area: Area, roles: Iterable[Role]) -> None:
    """Nobody grants more than they hold: the area given must lie inside the granter's
    and the roles' permissions be ones the granter has."""
    require_within(who, area_reach(area), what="that area")
    extra = perms_of(roles) - who.perms
    if extra:
        raise Forbidden(
            f"you cannot grant what you do not hold ({', '.join(sorted(p.value for p in extra))})"
        )
