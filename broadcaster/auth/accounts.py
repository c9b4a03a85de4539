"""Accounts with argon2 password hashes, login lock-out, sessions and API tokens.

Secrets (passwords, session and API tokens) are never stored or logged: passwords as
argon2id hashes, tokens as SHA-256. A new secret is returned once, to be shown once.
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from loa.clock import Clock
from loa.errors import Conflict, FieldError, InvalidInput, NotFound, Unauthorized

from ..settings import SecuritySettings
from ..store.store import Store
from .names import MIN_PASSWORD, check_password, check_username, norm_username
from .roles import EVERYWHERE, Area, Principal, Role
from .throttle import Backoff, Hashing
from .tokens import TOKEN_PREFIX, Tokens, principal, sha

_hasher = PasswordHasher()
#: Verified against when the user does not exist, so timing does not tell.
_DUMMY = _hasher.hash("not a real password")
__all__ = [
    "MIN_PASSWORD",
    "TOKEN_PREFIX",
    "Accounts",
    "check_password",
    "norm_username",
    "principal",
    "sha",
]


def new_password() -> str:
    """A generated password people can type: 4 groups of 5 letters and digits."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))


class Accounts(Tokens):
    def __init__(self, store: Store, clock: Clock, settings: SecuritySettings) -> None:
        self.store = store
        self.db = store.db
        self.clock = clock
        self.settings = settings
        self.hashing = Hashing(settings.hash_workers, settings.hash_queue)
        self.backoff = Backoff(clock, settings.login_max_failures, settings.lockout_s)
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
        name = self._check_new(username, password, roles, area)
        return self._insert(name, _hasher.hash(password), roles, area, full_name)

    async def create_async(
        self,
        username: str,
        password: str,
        roles: list[Role],
        area: Area,
        full_name: str = "",
    ) -> dict[str, Any]:
        """:meth:`create` with the password hashed on a worker thread."""
        name = self._check_new(username, password, roles, area)
        hashed = await self.hashing.run(_hasher.hash, password)
        return self._insert(name, hashed, roles, area, full_name)

    def _check_new(self, username: str, password: str, roles: list[Role], area: Area) -> str:
        existing = [r["username"] for r in self.store.query("SELECT username FROM users")]
        name = check_username(username, existing)
        check_password(password, name)
        if not roles:
            raise InvalidInput(
                "give the account at least one role",
                errors=[FieldError("roles", "at least one role", "required")],
            )
        self._check_area(area)
        if name in existing:
            raise Conflict(f"the user name {name!r} is taken")
        return name

    def _insert(
        self, name: str, hashed: str, roles: list[Role], area: Area, full_name: str
    ) -> dict[str, Any]:
        if self.store.query("SELECT id FROM users WHERE username=?", [name]):
            raise Conflict(f"the user name {name!r} is taken")
        uid = str(uuid.uuid4())
        self.db.table("users").insert(
            {
                "id": uid,
                "username": name,
                "password_hash": hashed,
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
        by_other: bool = False,
    ) -> dict[str, Any]:
        hashed = None
        if password is not None:
            check_password(password, self._row(uid)["username"])
            hashed = _hasher.hash(password)
        return self._update(uid, roles, area, disabled, hashed, by_other)

    async def update_async(
        self,
        uid: str,
        *,
        roles: list[Role] | None = None,
        area: Area | None = None,
        disabled: bool | None = None,
        password: str | None = None,
        by_other: bool = False,
    ) -> dict[str, Any]:
        """:meth:`update` with the password hashed on a worker thread. A password set
        by someone else (an admin's reset) also revokes the account's API tokens."""
        hashed = None
        if password is not None:
            check_password(password, self._row(uid)["username"])
            hashed = await self.hashing.run(_hasher.hash, password)
        return self._update(uid, roles, area, disabled, hashed, by_other)

    def _update(
        self,
        uid: str,
        roles: list[Role] | None,
        area: Area | None,
        disabled: bool | None,
        hashed: str | None,
        by_other: bool,
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
        if hashed is not None:
            values.update(password_hash=hashed, failed_logins=0, locked_until_us=0)
        if values:
            with self.db.atomic():
                self.db.table("users").update(uid, values)
                if disabled or hashed is not None:  # old sessions end
                    self.db.execute("DELETE FROM sessions WHERE user_id=?", [uid])
                if (hashed is not None and by_other) or disabled:  # and scripts' tokens
                    self.db.execute(
                        "UPDATE api_tokens SET revoked_us=? WHERE user_id=? AND revoked_us IS NULL",
                        [self.clock.now_us(), uid],
                    )
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
        """The account, or Unauthorized (one message for every failure). Blocking: the
        HTTP routes use :meth:`login` instead."""
        rows = self.store.query("SELECT * FROM users WHERE username=?", [norm_username(username)])
        if not rows:
            _verify(_DUMMY, password)
            raise Unauthorized("wrong user name or password")
        if not _verify(rows[0]["password_hash"], password) or rows[0]["disabled"]:
            raise Unauthorized("wrong user name or password")
        return rows[0]

    async def login(self, username: str, password: str, address: str) -> dict[str, Any]:
        """Check a password off the event loop, with the per (address, name) back-off.

        Every failure answers the same whether the name exists or not: 401 "wrong user
        name or password", or 429 while this address must wait for this name."""
        name = norm_username(username)
        self.backoff.check(address, name)
        if self.hashing.full():  # refuse before touching the database
            await self.hashing.run(_verify, _DUMMY, "")
        rows = self.store.query("SELECT * FROM users WHERE username=?", [name])
        hashed = rows[0]["password_hash"] if rows else _DUMMY
        good = await self.hashing.run(_verify, hashed, password)
        if not rows or not good or rows[0]["disabled"]:
            self.backoff.failed(address, name)
            raise Unauthorized("wrong user name or password")
        self.backoff.succeeded(address, name)
        u = rows[0]
        if _hasher.check_needs_rehash(u["password_hash"]):
            new = await self.hashing.run(_hasher.hash, password)
            self.db.table("users").update(u["id"], {"password_hash": new})
        return u

    def start_session(self, user_id: str) -> tuple[str, str]:
        """A new session: (cookie token, CSRF token)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = self.clock.now_us()
        self.db.execute(  # plain SQL: sqlite-utils' insert re-reads the schema each time
            "INSERT INTO sessions (token_sha, user_id, csrf, created_us, expires_us)"
            " VALUES (?, ?, ?, ?, ?)",
            [sha(token), user_id, csrf, now, now + int(self.settings.session_ttl_h * 3600e6)],
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


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


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
