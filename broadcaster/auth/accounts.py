"""Accounts with argon2 password hashes, login lock-out, sessions and API tokens.

Secrets (passwords, session and API tokens) are never stored or logged: passwords as
argon2id hashes, tokens as SHA-256. A new secret is returned once, to be shown once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sqlite3
import unicodedata
import uuid
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from loa.clock import Clock
from loa.errors import Conflict, FieldError, InvalidInput, NotFound, TooManyRequests, Unauthorized

from ..settings import SecuritySettings
from ..store import Store
from .roles import EVERYWHERE, Area, Principal, Role

logger = logging.getLogger(__name__)
#: Tokens' last use is written at most this often (in one batch).
LAST_USED_FLUSH_US = 60_000_000

TOKEN_PREFIX = "loa_"  # noqa: S105 - a prefix, not a secret
MIN_PASSWORD = 10
_hasher = PasswordHasher()
#: Verified against when the user does not exist, so timing does not tell.
_DUMMY = _hasher.hash("not a real password")


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_password() -> str:
    """A generated password people can type: 4 groups of 5 letters and digits."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(
            f"the password must have at least {MIN_PASSWORD} characters",
            errors=[FieldError("password", f"at least {MIN_PASSWORD} characters", "too_short")],
        )
    if len(password) > 256:
        raise InvalidInput(
            "the password is too long",
            errors=[FieldError("password", "at most 256 characters", "too_long")],
        )


def norm_username(name: str) -> str:
    return unicodedata.normalize("NFC", name).strip().lower()


class Accounts:
    def __init__(self, store: Store, clock: Clock, settings: SecuritySettings) -> None:
        self.store = store
        self.db = store.db
        self.clock = clock
        self.settings = settings
        #: Tokens' last use, written in batches (authentication itself never writes, so
        #: reads keep working on a full disk).
        self._last_used: dict[str, int] = {}
        self._last_flush_us = 0

    # --- accounts ---------------------------------------------------------------------

    def create(
        self,
        username: str,
        password: str,
        roles: list[Role],
        area: Area,
        full_name: str = "",
    ) -> dict[str, Any]:
        name = norm_username(username)
        if not name or len(name) > 64 or any(c.isspace() for c in name):
            raise InvalidInput(
                "choose a user name of 1-64 characters without spaces",
                errors=[FieldError("username", "1-64 characters, no spaces", "invalid")],
            )
        check_password(password)
        if not roles:
            raise InvalidInput(
                "give the account at least one role",
                errors=[FieldError("roles", "at least one role", "required")],
            )
        self._check_area(area)
        if self.store.query("SELECT id FROM users WHERE username=?", [name]):
            raise Conflict(f"the user name {name!r} is taken")
        uid = str(uuid.uuid4())
        self.db.table("users").insert(
            {
                "id": uid,
                "username": name,
                "password_hash": _hasher.hash(password),
                "roles": json.dumps(sorted(r.value for r in roles)),
                "province_id": area.province,
                "commune_id": area.commune,
                "hamlets": json.dumps(sorted(area.hamlets)),
                "full_name": full_name[:200],
                "failed_logins": 0,
                "locked_until_us": 0,
                "disabled": 0,
                "created_us": self.clock.now_us(),
            },
            pk="id",
        )
        return self.get(uid)

    def _check_area(self, area: Area) -> None:
        if area.is_everywhere:
            return
        if not self.store.query("SELECT id FROM provinces WHERE id=?", [area.province]):
            raise InvalidInput(
                f"province {area.province!r} does not exist",
                errors=[FieldError("area.province", "unknown province", "unknown")],
            )
        if area.commune is not None:
            rows = self.store.query(
                "SELECT id FROM communes WHERE id=? AND province_id=?",
                [area.commune, area.province],
            )
            if not rows:
                raise InvalidInput(
                    f"commune {area.commune!r} is not in {area.province}",
                    errors=[FieldError("area.commune", "unknown commune", "unknown")],
                )
            known = {
                r["id"]
                for r in self.store.query(
                    "SELECT id FROM hamlets WHERE commune_id=?", [area.commune]
                )
            }
            bad = sorted(area.hamlets - known)
            if bad:
                raise InvalidInput(
                    f"hamlets {', '.join(bad)} are not in {area.commune}",
                    errors=[FieldError("area.hamlets", "unknown hamlet", "unknown")],
                )
        elif area.hamlets:
            raise InvalidInput(
                "hamlets belong to a commune: choose the commune too",
                errors=[FieldError("area.commune", "required with hamlets", "required")],
            )

    def _row(self, uid: str) -> dict[str, Any]:
        rows = self.store.query("SELECT * FROM users WHERE id=?", [uid])
        if not rows:
            raise NotFound(f"user {uid!r} does not exist")
        return rows[0]

    def get(self, uid: str) -> dict[str, Any]:
        return public(self._row(uid))

    def all(self) -> list[dict[str, Any]]:
        return [public(r) for r in self.store.query("SELECT * FROM users ORDER BY username")]

    def update(
        self,
        uid: str,
        *,
        roles: list[Role] | None = None,
        area: Area | None = None,
        disabled: bool | None = None,
        password: str | None = None,
    ) -> dict[str, Any]:
        self._row(uid)
        values: dict[str, Any] = {}
        if roles is not None:
            if not roles:
                raise InvalidInput(
                    "give the account at least one role",
                    errors=[FieldError("roles", "at least one role", "required")],
                )
            values["roles"] = json.dumps(sorted(r.value for r in roles))
        if area is not None:
            self._check_area(area)
            values.update(
                province_id=area.province,
                commune_id=area.commune,
                hamlets=json.dumps(sorted(area.hamlets)),
            )
        if disabled is not None:
            values["disabled"] = int(disabled)
        if password is not None:
            check_password(password)
            values.update(password_hash=_hasher.hash(password), failed_logins=0, locked_until_us=0)
        if values:
            with self.db.atomic():
                self.db.table("users").update(uid, values)
                if disabled or password is not None:  # old sessions end
                    self.db.execute("DELETE FROM sessions WHERE user_id=?", [uid])
        return self.get(uid)

    def ensure_first_admin(self, province: str = EVERYWHERE) -> str | None:
        """With no account at all, create ``admin`` with a generated password; returns it
        (to be printed once) or None when accounts exist. On an empty installation the
        first admin's area is every province (it creates the first one)."""
        if self.store.query("SELECT id FROM users LIMIT 1"):
            return None
        password = new_password()
        self.create("admin", password, [Role.ADMIN], Area(province), "Quản trị viên")
        return password

    # --- logging in -----------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> dict[str, Any]:
        """The account, or Unauthorized (one message for every failure) / locked."""
        now = self.clock.now_us()
        rows = self.store.query("SELECT * FROM users WHERE username=?", [norm_username(username)])
        if not rows:
            _verify(_DUMMY, password)
            raise Unauthorized("wrong user name or password")
        u = rows[0]
        if u["locked_until_us"] and u["locked_until_us"] > now:
            raise TooManyRequests(
                "this account is locked after too many wrong passwords; try again later",
                retry_after_s=(u["locked_until_us"] - now) / 1e6,
            )
        if not _verify(u["password_hash"], password) or u["disabled"]:
            failures = u["failed_logins"] + 1
            locked = 0
            if failures >= self.settings.login_max_failures:
                locked, failures = now + int(self.settings.lockout_s * 1e6), 0
            self.db.table("users").update(
                u["id"], {"failed_logins": failures, "locked_until_us": locked}
            )
            raise Unauthorized("wrong user name or password")
        if u["failed_logins"] or u["locked_until_us"]:
            self.db.table("users").update(u["id"], {"failed_logins": 0, "locked_until_us": 0})
        if _hasher.check_needs_rehash(u["password_hash"]):
            self.db.table("users").update(u["id"], {"password_hash": _hasher.hash(password)})
        return u

    def start_session(self, user_id: str) -> tuple[str, str]:
        """A new session: (cookie token, CSRF token)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = self.clock.now_us()
        self.db.table("sessions").insert(
            {
                "token_sha": sha(token),
                "user_id": user_id,
                "csrf": csrf,
                "created_us": now,
                "expires_us": now + int(self.settings.session_ttl_h * 3600e6),
            },
            pk="token_sha",
        )
        return token, csrf

    def end_session(self, token: str) -> None:
        self.db.execute("DELETE FROM sessions WHERE token_sha=?", [sha(token)])

    def from_session(self, token: str) -> Principal | None:
        rows = self.store.query(
            "SELECT s.csrf, s.expires_us, u.* FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE s.token_sha=?",
            [sha(token)],
        )
        if not rows or rows[0]["expires_us"] < self.clock.now_us() or rows[0]["disabled"]:
            return None
        return principal(rows[0], "session", rows[0]["csrf"])

    # --- API tokens -------------------------------------------------------------------------

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


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def principal(row: dict[str, Any], via: str, csrf: str = "") -> Principal:
    return Principal(
        user_id=row["id"],
        username=row["username"],
        roles=frozenset(Role(r) for r in json.loads(row["roles"])),
        area=Area(row["province_id"], row["commune_id"], frozenset(json.loads(row["hamlets"]))),
        via=via,
        csrf=csrf,
    )


def public(row: dict[str, Any]) -> dict[str, Any]:
    """An account as the API shows it: never the hash."""
    return {
        "id": row["id"],
        "username": row["username"],
        "full_name": row["full_name"],
        "roles": json.loads(row["roles"]),
        "area": {
            "province": row["province_id"],
            "commune": row["commune_id"],
            "hamlets": json.loads(row["hamlets"]),
        },
        "disabled": bool(row["disabled"]),
        "locked": bool(row["locked_until_us"]),
        "created_us": row["created_us"],
    }


def service_token(store: Store, clock: Clock, name: str, settings: SecuritySettings) -> str:
    """An admin API token for Loa's own scripts (demo, bench, tests): account
    ``svc-{name}`` on the first province (every province while there is none), with an
    unusable random password."""
    accounts = Accounts(store, clock, settings)
    rows = store.query("SELECT id FROM users WHERE username=?", [f"svc-{name}"])
    if rows:
        uid = rows[0]["id"]
    else:
        province = store.query("SELECT id FROM provinces ORDER BY id LIMIT 1")
        area = Area(province[0]["id"] if province else EVERYWHERE)
        uid = accounts.create(f"svc-{name}", secrets.token_urlsafe(24), [Role.ADMIN], area)["id"]
    token, _ = accounts.create_token(uid, f"{name} script")
    return token


def first_admin_line(store: Store, clock: Clock, settings: SecuritySettings) -> str:
    """What to print at start-up about logging in: the first admin's generated password
    (once, when no account exists yet), else where to log in."""
    province = store.query("SELECT id FROM provinces ORDER BY id LIMIT 1")
    password = Accounts(store, clock, settings).ensure_first_admin(
        province[0]["id"] if province else EVERYWHERE
    )
    if password is None:
        return "login: with your account (the first admin's password was shown at first start)"
    return (
        f"login: admin / {password}   (generated now and shown only this once: "
        "note it, then change it at /api/me/password)"
    )


def account_ids(db_path: Path) -> set[str]:
    """Every account's id (to undo, with :func:`forget_accounts`, those a start that
    failed before showing the first admin's password created)."""
    store = Store(db_path)
    try:
        return {r["id"] for r in store.query("SELECT id FROM users")}
    finally:
        store.close()


def forget_accounts(db_path: Path, keep: set[str]) -> None:
    """Delete the accounts not in ``keep`` (with their sessions and tokens): a first
    admin whose generated password was never shown would lock everyone out."""
    store = Store(db_path)
    try:
        gone = [r["id"] for r in store.query("SELECT id FROM users") if r["id"] not in keep]
        with store.db.atomic():
            for uid in gone:
                store.db.execute("DELETE FROM sessions WHERE user_id=?", [uid])
                store.db.execute("DELETE FROM api_tokens WHERE user_id=?", [uid])
                store.db.execute("DELETE FROM users WHERE id=?", [uid])
    finally:
        store.close()
