"""Targets → groups and speakers, reading the places and devices from the store."""

from __future__ import annotations

from collections.abc import Sequence

from ..store.store import Store
from .targeting import Directory, Resolution, Target, resolve


def resolve_in(store: Store, targets: Sequence[Target]) -> Resolution:
    """Resolve ``targets`` against the communes, hamlets, zones and devices stored now."""
    communes = sorted({t.commune for t in targets})
    # Only the ids: store.communes() counts every commune's speakers (a firing must not).
    known = {r["id"] for r in store.query("SELECT id FROM communes")}
    directory = Directory(
        hamlets={
            c: frozenset(
                r["id"] for r in store.query("SELECT id FROM hamlets WHERE commune_id=?", [c])
            )
            for c in communes
            if c in known
        },
        zones={c: frozenset(store.zone_ids(c)) for c in communes if c in known},
        devices={c: store.devices(c) for c in communes if c in known},
    )
    return resolve(targets, directory)
