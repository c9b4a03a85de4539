"""API tokens for scripts (stored as SHA-256, shown once), and the principal a session
or token stands for. A part of :class:`broadcaster.auth.accounts.Accounts`."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sqlite3
import uuid
from typing import Any

from loa.clock import Clock
from loa.errors import FieldError, InvalidInput, NotFound

from ..store.store import Store
from .roles import Area, Principal, Role

TOKEN_PREFIX = "loa_"  # noqa: S105 - a prefix, not a secret
#: Tokens' last use is written at most this often (in one batch).
LAST_USED_FLUSH_US = 60_000_000
logger = logging.getLogger(__name__)


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def principal(row: dict[str, Any], via: str, csrf: str = "") -> Principal:
    return Principal(
        user_id=row["id"],
        username=row["username"],
        roles=frozenset(Role(r) for r in json.loads(row["roles"])),
        area=Area(row["province_id"], row["commune_id"], frozenset(json.loads(row["hamlets"]))),
        via=via,
        csrf=csrf,
    )


class Tokens:
    store: Store
    db: Any
    clock: Clock
    _last_used: dict[str, int]
    _last_flush_us: int

    def _row(self, uid: str) -> dict[str, Any]:
        raise NotImplementedError

    def create_token(self, user_id: str, name: str) -> tuple[str, dict[str, Any]]:
        """A new API token for scripts: (the token, shown once; its public record)."""
        self._row(user_id)
        if not name.strip() or len(name) > 100:
            raise InvalidInput(
                "name the token (what script uses it)",
                errors=[FieldError("name", "1-100 characters", "required")],
            )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = {
            "token_sha": sha(token),
            "id": str(uuid.uuid4()),
            "user_id": user_id,
            "name": name.strip(),
            "created_us": self.clock.now_us(),
            "last_used_us": None,
            "revoked_us": None,
        }
        self.db.table("api_tokens").insert(record, pk="token_sha")
        return token, {k: v for k, v in record.items() if k != "token_sha"}

    def revoke_token(self, token_id: str, user_id: str | None) -> None:
        sql = "UPDATE api_tokens SET revoked_us=? WHERE id=? AND revoked_us IS NULL"
        args: list[Any] = [self.clock.now_us(), token_id]
        if user_id is not None:
            sql += " AND user_id=?"
            args.append(user_id)
        if not self.db.execute(sql, args).rowcount:
            raise NotFound(f"token {token_id!r} does not exist")

    def tokens(self, user_id: str) -> list[dict[str, Any]]:
        self.flush_last_used()
        return self.store.query(
            "SELECT id, name, created_us, last_used_us, revoked_us FROM api_tokens"
            " WHERE user_id=? ORDER BY created_us",
            [user_id],
        )

    def from_token(self, token: str) -> Principal | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        rows = self.store.query(
            "SELECT t.revoked_us, u.* FROM api_tokens t JOIN users u ON u.id = t.user_id"
            " WHERE t.token_sha=?",
            [sha(token)],
        )
        if not rows or rows[0]["revoked_us"] or rows[0]["disabled"]:
            return None
        now = self.clock.now_us()
        self._last_used[sha(token)] = now
        if now - self._last_flush_us >= LAST_USED_FLUSH_US:
            self.flush_last_used()
        return principal(rows[0], "token")

    def flush_last_used(self) -> int:
        """Write tokens' last use (best effort: a full disk or a busy database keeps them
        for the next try)."""
        self._last_flush_us = self.clock.now_us()
        batch, self._last_used = self._last_used, {}
        if not batch:
            return 0
        try:
            with self.db.atomic():
                self.db.conn.executemany(
                    "UPDATE api_tokens SET last_used_us=max(coalesce(last_used_us, 0), ?)"
                    " WHERE token_sha=?",
                    [(at, key) for key, at in batch.items()],
                )
        except sqlite3.Error as exc:
            for key, at in batch.items():
                self._last_used.setdefault(key, at)
            logger.warning("token last use not written (kept for later): %s", exc)
            return 0
        return len(batch)
