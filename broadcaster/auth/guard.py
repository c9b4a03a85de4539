"""Checks handlers make that the middleware cannot: targets inside request bodies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import HTTPConnection

from loa.errors import Forbidden, Unauthorized

from ..places.targeting import Target
from ..store.store import Store
from .roles import Principal


def principal(conn: HTTPConnection) -> Principal:
    p = conn.scope.get("state", {}).get("principal")
    if not isinstance(p, Principal):
        raise Unauthorized("log in first")
    return p


def require_targets(p: Principal, targets: Sequence[Target], store: Store) -> None:
    """Every target inside the account's area: its province, its commune, or (hamlet
    accounts) its own hamlets and the speakers in them — never a zone or the commune."""
    for t in targets:
        rows = store.query("SELECT province_id FROM communes WHERE id=?", [t.commune])
        if not rows:
            continue  # unknown: resolving the targets refuses it with the field named
        province = rows[0]["province_id"]
        if not p.area.covers_commune(t.commune, province):
            raise Forbidden(f"target {t.commune!r} is outside your area ({p.area.describe()})")
        if not p.area.hamlets:
            continue
        hamlet = t.hamlet
        if t.device is not None:
            found: list[dict[str, Any]] = store.query(
                "SELECT hamlet_id FROM devices WHERE id=? AND commune_id=?", [t.device, t.commune]
            )
            hamlet = found[0]["hamlet_id"] if found else None
        if hamlet is None or hamlet not in p.area.hamlets:
            raise Forbidden(
                f"you may target only your hamlets ({', '.join(sorted(p.area.hamlets))})"
            )
