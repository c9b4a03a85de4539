"""Who may act on an alert: the one place every alert action asks (pure over the store).

Every action — create, CAP import, confirm, update, cancel, all-clear — checks that all
the alert's targets lie inside the account's area (a hamlet account: only its own
hamlets and their speakers; never the whole commune or a zone). The path's commune is
already checked by the auth middleware; this adds what the body or the stored alert
says. It uses the area primitives of :mod:`broadcaster.auth`; when a shared
object-area policy exists there, this function is where it plugs in.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..auth.guard import require_targets
from ..auth.roles import Principal
from ..places.targeting import Target
from ..store.store import Store


def require_alert_area(p: Principal, targets: Sequence[Target], store: Store) -> None:
    """Raise Forbidden unless every target is inside ``p``'s area."""
    require_targets(p, targets, store)
