"""Authentication, CSRF, permission and area checks in front of every route.

Deny by default: a route without an entry in :data:`POLICY` answers 403. A request
is authenticated by an API token (``Authorization: Bearer loa_…``) or a session cookie;
cookie sessions must send the session's CSRF token in ``X-CSRF-Token`` on every
unsafe method (and WebSockets must come from the same origin). The area an action
touches is read from the path; targets inside bodies are checked by the handlers.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loa.errors import Forbidden, LoaError, PayloadTooLarge, Unauthorized

from ..web.errors import error_body
from .accounts import Accounts
from .audit import ACTOR
from .policy import POLICY, require_within
from .reach import ACCOUNTS, CONTAINERS, IN_COMMUNE, KINDS, OWN, Reaches
from .roles import Perm, Principal

COOKIE = "loa_session"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Routes whose bodies are media (their own, larger limits apply).
UPLOADS = frozenset(
    {
        "/api/communes/{commune}/media",
        "/api/provinces/{province}/media",
        "/api/communes/{commune}/alerts/cap",
        "/api/firmware",
    }
)
_MISSING = object()


def header(scope: Scope, name: bytes) -> str:
    for k, v in scope.get("headers", []):
        if k == name:
            return str(v.decode("latin-1"))
    return ""


def cookie(scope: Scope, name: str) -> str:
    for part in header(scope, b"cookie").split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return ""


def client_ip(scope: Scope) -> str:
    """The caller's address: the connection's peer, or — only when that peer is one of
    ``http.trusted_proxies`` — the last address in X-Forwarded-For that is not itself
    a trusted proxy. (uvicorn's own proxy-header handling is switched off.)"""
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    app = scope.get("app")
    services = getattr(getattr(app, "state", None), "loa", None)
    trusted = services.settings.http.trusted_proxies if services is not None else ()
    if not trusted or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in header(scope, b"x-forwarded-for").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop if _address(hop) else peer
    return peer


def _address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _in(address: str, networks: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)


class AuthMiddleware:
    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    def _match(self, scope: Scope) -> tuple[str, dict[str, Any]] | None:
        partial = None
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", "")), child.get("path_params", {})
            if match is Match.PARTIAL and partial is None:
                partial = str(getattr(route, "path", "")), child.get("path_params", {})
        return partial

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        ws = scope["type"] == "websocket"
        method = "WS" if ws else ("GET" if scope["method"] == "HEAD" else scope["method"])
        found = self._match(scope)
        if found is None:  # no such page: the router answers 404
            await self.app(scope, receive, send)
            return
        template, params = found
        perm = POLICY.get((method, template), _MISSING)
        ip = client_ip(scope)
        try:
            if perm is _MISSING:
                if any((m, template) in POLICY for m in ("GET", "POST", "PUT", "DELETE", "WS")):
                    await self.app(scope, receive, send)  # the router answers 405
                    return
                raise Forbidden("this route has no access rule, so nobody may use it")
            principal = None
            if perm is not None:
                assert isinstance(perm, Perm)
                principal = self._authenticate(scope)
                self._check(scope, method, principal, perm, params)
            if not ws and method in UNSAFE and template not in UPLOADS:
                receive = self._limited(scope, receive)
        except LoaError as exc:
            await self._refuse(scope, send, exc)
            return
        scope.setdefault("state", {})["principal"] = principal
        token = ACTOR.set((principal.username if principal else "anonymous", ip))
        try:
            await self.app(scope, receive, send)
        finally:
            ACTOR.reset(token)

    def _services(self, scope: Scope) -> Any:
        return scope["app"].state.loa

    def _authenticate(self, scope: Scope) -> Principal:
        accounts: Accounts = self._services(scope).accounts
        auth = header(scope, b"authorization")
        if auth:
            kind, _, token = auth.partition(" ")
            p = accounts.from_token(token.strip()) if kind.lower() == "bearer" else None
            if p is None:
                raise Unauthorized("the API token is not valid (revoked, or mistyped)")
            return p
        session = cookie(scope, COOKIE)
        p = accounts.from_session(session) if session else None
        if p is None:
            raise Unauthorized("log in first (no session, or it has ended)")
        return p

    def _check(
        self, scope: Scope, method: str, p: Principal, perm: Perm, params: dict[str, Any]
    ) -> None:
        if p.via == "session":
            if method in UNSAFE:
                sent = header(scope, b"x-csrf-token")
                if not sent or not secrets.compare_digest(sent, p.csrf):
                    raise Forbidden("missing or wrong CSRF token (send X-CSRF-Token from /api/me)")
            elif method == "WS":
                origin, host = header(scope, b"origin"), header(scope, b"host")
                if origin and origin.split("://", 1)[-1] != host:
                    raise Forbidden("a live connection must come from this site")
        if not p.can(perm):
            roles = ", ".join(sorted(r.value for r in p.roles))
            raise Forbidden(f"your role ({roles}) may not do this ({perm.value})")
        check_objects(p, method, params, self._services(scope).store)

    def _limited(self, scope: Scope, receive: Receive) -> Receive:
        limit = self._services(scope).settings.http.max_body_bytes
        length = header(scope, b"content-length")
        if length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(f"the request body is over {limit} bytes")
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"the request body is over {limit} bytes")
            return message

        return counted

    async def _refuse(self, scope: Scope, send: Send, exc: LoaError) -> None:
        path = scope.get("path", "")
        if (
            exc.status == 401
            and scope["type"] == "http"
            and scope["method"] == "GET"
            and not path.startswith("/api/")
            and path != "/metrics"
        ):  # a page: to the login form, and back here after it
            where = "/login?next=" + quote(path)
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", where.encode())],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["type"] == "websocket":
            await send(
                {"type": "websocket.close", "code": 4000 + exc.status, "reason": exc.message[:120]}
            )
            return
        body = json.dumps(error_body(exc.status, exc.message, code=exc.code)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if exc.status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="loa"'))
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def check_objects(p: Principal, method: str, params: dict[str, Any], store: Any) -> None:
    """The one object rule (:func:`~broadcaster.auth.policy.require_within`) for every
    object a path names: reading needs the object inside the caller's commune (or its
    province's shared catalogues), acting needs its whole area inside the caller's.
    A path parameter no loader knows is refused: deny by default."""
    reaches = Reaches(store)
    for name, value in params.items():
        if name in OWN:
            continue
        if name in IN_COMMUNE:  # a hamlet or zone: its id is unique within its commune
            reach = reaches.in_commune(name, str(params.get("commune", "")), str(value))
        elif name in KINDS:
            reach = reaches.of(name, str(value))
        else:
            raise Forbidden(f"this route names a {name} that has no access rule")
        if reach is None:
            continue  # no such object: the handler answers 404
        read = method in ("GET", "WS") or name in CONTAINERS
        if name in ACCOUNTS:
            read = False  # an account is managed whole, even to look at it
        require_within(p, reach, read=read, what=f"this {name}")


Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
