"""The audit log: who did what, when, from where. Append-only (the database refuses
UPDATE and DELETE on it); queryable in the API.

The actor and address come from the request being served (a context variable set by
the auth middleware), so services record actions without passing the user around.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from typing import Any

from loa.clock import Clock

from ..store.store import Store
from .policy import area_reach, within
from .roles import Area

logger = logging.getLogger("loa.audit")

#: (username, client address) of the request being served; "system" otherwise.
ACTOR: ContextVar[tuple[str, str]] = ContextVar("loa_actor", default=("system", ""))
#: Field names whose values are never written (to the table or the log).
SECRET_FIELDS = frozenset({"password", "token", "secret", "csrf"})


class AuditLog:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def __call__(self, action: str, **fields: Any) -> None:
        self.record(action, **fields)

    def record(self, action: str, *, target: str = "", **fields: Any) -> None:
        actor, ip = ACTOR.get()
        detail = {k: str(v) for k, v in fields.items() if k not in SECRET_FIELDS}
        if not target and detail:
            first = sorted(detail)[0]
            target = f"{first}={detail[first]}"
        self.store.db.execute(  # plain SQL: sqlite-utils' insert re-reads the schema
            "INSERT INTO audit (at_us, actor, action, target, detail, ip)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                self.clock.now_us(),
                actor,
                action,
                target,
                json.dumps(detail, ensure_ascii=False, sort_keys=True),
                ip,
            ],
        )
        logger.info(
            "%s by %s %s",
            action,
            actor,
            " ".join(f"{k}={v}" for k, v in sorted(detail.items())),
        )

    def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int = 200,
        area: Area | None = None,
    ) -> list[dict[str, Any]]:
        """Entries, newest first. With ``area``: only what accounts inside that area did
        (and, for a province account, what the system and unknown callers did)."""
        where: list[str] = ["1=1"]
        args: list[Any] = []
        if area is not None:
            users = self.store.query("SELECT username, province_id, commune_id, hamlets FROM users")
            seen = [
                u["username"]
                for u in users
                if within(
                    area,
                    area_reach(
                        Area(u["province_id"], u["commune_id"], frozenset(json.loads(u["hamlets"])))
                    ),
                )
            ]
            marks = ",".join("?" * len(seen)) or "NULL"
            clause = f"actor IN ({marks})"
            if area.is_province:
                clause += " OR actor NOT IN (SELECT username FROM users)"
            where.append(f"({clause})")
            args += seen
        if actor:
            where.append("actor=?")
            args.append(actor)
        if action:
            where.append("(action=? OR action LIKE ?)")
            args += [action, f"{action}.%"]
        if since_us is not None:
            where.append("at_us>=?")
            args.append(since_us)
        if until_us is not None:
            where.append("at_us<?")
            args.append(until_us)
        rows = self.store.query(
            f"SELECT * FROM audit WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?",  # noqa: S608
            [*args, max(1, min(limit, 1000))],
        )
        for r in rows:
            r["detail"] = json.loads(r["detail"])
        return rows
