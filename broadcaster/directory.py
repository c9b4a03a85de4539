"""Targets → groups and speakers, reading the places and devices from the store."""

from __future__ import annotations

from collections.abc import Sequence

from .store import Store
from .targeting import Directory, Resolution, Target, resolve


def resolve_in(store: Store, targets: Sequence[Target]) -> Resolution:
    """Resolve ``targets`` against the communes, hamlets, zones and devices stored now."""
    communes = sorted({t.commune for t in targets})
    known = {c["id"] for c in store.communes()}
    directory = Directory(
        hamlets={c: frozenset(h["id"] for h in store.hamlets(c)) for c in communes if c in known},
        zones={c: frozenset(store.zone_ids(c)) for c in communes if c in known},
        devices={c: store.devices(c) for c in communes if c in known},
    )
    return resolve(targets, directory)
