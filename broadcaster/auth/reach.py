"""Where a stored object lies (its :data:`~broadcaster.auth.policy.Reach`), read from the
database, for the one rule in :func:`broadcaster.auth.policy.require_within`.

``reach_of(store, kind, id)`` knows every kind of object a route can name in its path;
:data:`KINDS` lists them, and a test fails when a route names an object this module
does not know (deny by default: the middleware refuses such a route at run time too).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from ..places.targeting import Target
from .policy import DEPLOYMENT, Part, Reach


class Reaches:
    """Loaders of an object's reach, one per kind; None when the object does not exist
    (the handler then answers 404)."""

    def __init__(self, store: Any) -> None:
        self.q: Callable[..., list[dict[str, Any]]] = store.query
        self._provinces: dict[str, str | None] = {}

    def province_of(self, commune: str) -> str | None:
        if commune not in self._provinces:
            rows = self.q("SELECT province_id FROM communes WHERE id=?", [commune])
            self._provinces[commune] = str(rows[0]["province_id"]) if rows else None
        return self._provinces[commune]

    def _part(self, commune: str, hamlets: frozenset[str] | None) -> Part:
        return Part(self.province_of(commune) or "?", commune, hamlets)

    def _device_hamlet(self, device: str) -> str | None:
        rows = self.q("SELECT hamlet_id FROM devices WHERE id=?", [device])
        return str(rows[0]["hamlet_id"]) if rows else None

    def targets(self, targets: Iterable[Target]) -> Reach:
        """Targets as a reach: a commune or a zone is the whole commune; a hamlet is
        itself; a speaker is its hamlet."""
        whole: set[str] = set()
        some: dict[str, set[str]] = {}
        for t in targets:
            if t.hamlet is not None:
                some.setdefault(t.commune, set()).add(t.hamlet)
            elif t.device is not None:
                hamlet = self._device_hamlet(t.device)
                if hamlet is None:
                    whole.add(t.commune)  # unknown speaker: not provably inside anything
                else:
                    some.setdefault(t.commune, set()).add(hamlet)
            else:
                whole.add(t.commune)
        parts = [self._part(c, None) for c in sorted(whole)]
        parts += [self._part(c, frozenset(h)) for c, h in sorted(some.items()) if c not in whole]
        return tuple(parts)

    # --- one loader per kind of object -------------------------------------------------

    def commune(self, commune: str) -> Reach | None:
        return (self._part(commune, None),) if self.province_of(commune) else None

    def province(self, province: str) -> Reach | None:
        rows = self.q("SELECT id FROM provinces WHERE id=?", [province])
        return (Part(province),) if rows else None

    def device(self, device: str) -> Reach | None:
        rows = self.q("SELECT commune_id, hamlet_id FROM devices WHERE id=?", [device])
        if not rows:
            return None
        return (self._part(rows[0]["commune_id"], frozenset({rows[0]["hamlet_id"]})),)

    def media(self, media: str) -> Reach | None:
        rows = self.q("SELECT commune_id FROM media WHERE id=?", [media])
        if not rows:
            return None
        commune = rows[0]["commune_id"]
        if not commune:  # the province library and built-in signals
            return (Part(DEPLOYMENT, shared=True),)
        return (self._part(commune, None),)

    def programme(self, programme: str) -> Reach | None:
        rows = self.q("SELECT commune_id, targets FROM programmes WHERE id=?", [programme])
        if not rows:
            return None
        targets = [Target(**t) for t in json.loads(rows[0]["targets"] or "[]")]
        return self.targets(targets) or (self._part(rows[0]["commune_id"], None),)

    def broadcast(self, broadcast: str) -> Reach | None:
        """Every kind of broadcast: stored media, live microphone, relay, alert airing."""
        rows = self.q("SELECT targets FROM broadcasts WHERE id=?", [broadcast])
        if not rows:
            return None
        targets = []
        for g in json.loads(rows[0]["targets"] or "[]"):
            kind, ident = g.get("kind"), g.get("id") or None
            targets.append(
                Target(
                    g["commune"],
                    hamlet=ident if kind == "hamlet" else None,
                    device=ident if kind == "device" else None,
                )
            )
        reach = self.targets(targets)
        if reach:
            return reach
        communes = self.q(
            "SELECT commune_id FROM broadcast_communes WHERE broadcast_id=?", [broadcast]
        )
        return tuple(self._part(r["commune_id"], None) for r in communes) or ()

    def alert(self, alert: str) -> Reach | None:
        """The alert's commune as a whole. Alert actions check their targets themselves
        (broadcaster/alerts); here an alert only has to be of a commune the caller
        covers, as it always had to."""
        rows = self.q("SELECT commune_id FROM alerts WHERE id=?", [alert])
        if not rows:
            return None
        return (self._part(rows[0]["commune_id"], None),)

    def alarm(self, alarm: str) -> Reach | None:
        rows = self.q("SELECT device_id, commune_id FROM alarms WHERE id=?", [alarm])
        if not rows:
            return None
        return self.device(rows[0]["device_id"]) or (self._part(rows[0]["commune_id"], None),)

    def user(self, user: str) -> Reach | None:
        rows = self.q("SELECT province_id, commune_id, hamlets FROM users WHERE id=?", [user])
        if not rows:
            return None
        r = rows[0]
        hamlets = frozenset(json.loads(r["hamlets"] or "[]"))
        return (Part(r["province_id"], r["commune_id"], hamlets or None),)

    def rollout(self, rollout: str) -> Reach | None:
        if not self.q("SELECT id FROM rollouts WHERE id=?", [rollout]):
            return None
        devices = self.q("SELECT device_id FROM rollout_devices WHERE rollout_id=?", [rollout])
        parts: set[Part] = set()
        for d in devices:
            parts.update(self.device(d["device_id"]) or ())
        return tuple(sorted(parts, key=repr)) or (Part(DEPLOYMENT),)

    def firmware(self, firmware: str) -> Reach | None:
        if not self.q("SELECT id FROM firmware WHERE id=?", [firmware]):
            return None
        return (Part(DEPLOYMENT, shared=True),)

    def in_commune(self, kind: str, commune: str, ident: str) -> Reach | None:
        """A hamlet (itself) or a zone (the whole commune: its speakers may be anywhere
        in it) of ``commune``."""
        if kind == "hamlet":
            rows = self.q("SELECT 1 FROM hamlets WHERE commune_id=? AND id=?", [commune, ident])
            return (self._part(commune, frozenset({ident})),) if rows else None
        if kind == "zone":
            rows = self.q("SELECT 1 FROM zones WHERE commune_id=? AND id=?", [commune, ident])
            return (self._part(commune, None),) if rows else None
        raise KeyError(kind)

    def of(self, kind: str, ident: str) -> Reach | None:
        loader = KINDS.get(kind)
        if loader is None:
            raise KeyError(kind)
        return loader(self, ident)


#: Every kind of object a route may name in its path, and how to find where it lies.
#: ``token`` is absent on purpose: a token route acts only on the caller's own tokens.
KINDS: dict[str, Callable[[Reaches, str], Reach | None]] = {
    "commune": Reaches.commune,
    "province": Reaches.province,
    "device": Reaches.device,
    "media": Reaches.media,
    "programme": Reaches.programme,
    "broadcast": Reaches.broadcast,
    "alert": Reaches.alert,
    "alarm": Reaches.alarm,
    "user": Reaches.user,
    "rollout": Reaches.rollout,
    "firmware": Reaches.firmware,
}
#: Path parameters whose id is unique only within the commune also in the path.
IN_COMMUNE = frozenset({"hamlet", "zone"})
#: Path parameters that name the caller's own things, checked by their handlers.
OWN = frozenset({"token"})
#: Path parameters that are not the object acted on, only where it is made or what it
#: is made from: a commune (its library, programmes, speakers), a firmware image (a
#: rollout of it). Reading them is enough; the new object's own reach (its targets, its
#: hamlet, its speakers) is checked by the handler with the same rule. Alerts check
#: their targets themselves (broadcaster/alerts): here an alert's commune must be the
#: caller's, as before.
CONTAINERS = frozenset({"commune", "firmware", "alert"})
#: Accounts are managed whole: even reading one needs it inside the caller's area.
ACCOUNTS = frozenset({"user"})
