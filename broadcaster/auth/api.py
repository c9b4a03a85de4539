"""Logging in and out, the caller's own account and tokens, accounts (admin), audit log."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from loa.errors import Forbidden, InvalidInput

from ..web.bodies import Body, Id, ok, read_json, svc
from .accounts import public
from .audit import ACTOR
from .guard import principal
from .middleware import COOKIE, client_ip
from .policy import area_reach, require_grant, within
from .roles import Area, Principal, Role
from .throttle import Busy

logger = logging.getLogger(__name__)

RoleIn = Annotated[Role, Field(strict=False)]  # from its name


class LoginIn(Body):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class AreaIn(Body):
    province: Id
    commune: Id | None = None
    hamlets: Annotated[list[Id], Field(max_length=100)] = Field(default_factory=list)


class UserIn(Body):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=256)]
    roles: Annotated[list[RoleIn], Field(min_length=1, max_length=6)]
    area: AreaIn
    full_name: Annotated[str, Field(max_length=200)] = ""


class UserUpdate(Body):
    roles: Annotated[list[RoleIn], Field(min_length=1, max_length=6)] | None = None
    area: AreaIn | None = None
    disabled: bool | None = None
    password: Annotated[str, Field(min_length=1, max_length=256)] | None = None


class TokenIn(Body):
    name: Annotated[str, Field(min_length=1, max_length=100)]


class PasswordIn(Body):
    current: Annotated[str, Field(min_length=1, max_length=256)]
    new: Annotated[str, Field(min_length=1, max_length=256)]


def _area(a: AreaIn) -> Area:
    return Area(a.province, a.commune, frozenset(a.hamlets))


async def login(request: Request) -> JSONResponse:
    s = svc(request)
    address = client_ip(request.scope)
    s.login_limit.hit(address)
    body = await read_json(request, LoginIn)
    ACTOR.set((body.username[:64], address))
    try:
        user = await s.accounts.login(body.username, body.password, address)
    except Busy:
        # no password was checked: counted (s.accounts.hashing.refused) and logged now
        # and then, not written one by one (a flood must not turn into a write flood)
        if s.accounts.hashing.refused % 100 == 1:
            logger.warning("logins refused, password checks busy: %d", s.accounts.hashing.refused)
        raise
    except Exception:
        s.audit("login.failed", username=body.username[:64])
        raise
    token, csrf = s.accounts.start_session(user["id"])
    ACTOR.set((user["username"], client_ip(request.scope)))
    s.audit("login", user=user["username"])
    resp = ok({"user": public(user), "csrf_token": csrf})
    secure = s.settings.security.cookie_secure
    resp.set_cookie(
        COOKIE,
        token,
        max_age=int(s.settings.security.session_ttl_h * 3600),
        httponly=True,
        samesite="strict",
        secure=secure == "always" or (secure == "auto" and request.url.scheme == "https"),
        path="/",
    )
    return resp


async def logout(request: Request) -> JSONResponse:
    s = svc(request)
    token = request.cookies.get(COOKIE)
    if token:
        s.accounts.end_session(token)
    s.audit("logout")
    resp = ok({})
    resp.delete_cookie(COOKIE, path="/")
    return resp


async def me(request: Request) -> JSONResponse:
    p = principal(request)
    return ok(
        {
            "user": svc(request).accounts.get(p.user_id),
            "permissions": sorted(x.value for x in p.perms),
            "csrf_token": p.csrf or None,
        }
    )


async def my_tokens(request: Request) -> JSONResponse:
    return ok({"tokens": svc(request).accounts.tokens(principal(request).user_id)})


async def token_create(request: Request) -> JSONResponse:
    s = svc(request)
    body = await read_json(request, TokenIn)
    token, record = s.accounts.create_token(principal(request).user_id, body.name)
    s.audit("token.create", token_id=record["id"], name=record["name"])
    return ok({"token": token, "record": record, "note": "shown once: store it now"}, 201)


async def token_revoke(request: Request) -> JSONResponse:
    s = svc(request)
    token_id = request.path_params["token"]
    s.accounts.revoke_token(token_id, principal(request).user_id)
    s.audit("token.revoke", token_id=token_id)
    return ok({})


async def my_password(request: Request) -> JSONResponse:
    s = svc(request)
    p = principal(request)
    body = await read_json(request, PasswordIn)
    await s.accounts.login(p.username, body.current, client_ip(request.scope))
    await s.accounts.update_async(p.user_id, password=body.new)
    s.audit("user.password", user=p.username)
    return ok({})


def _visible(who: Principal, user: dict[str, Any]) -> bool:
    """An account is seen and managed only by admins whose area holds it whole."""
    a = user["area"]
    area = Area(a["province"], a["commune"], frozenset(a["hamlets"]))
    return within(who.area, area_reach(area))


async def user_list(request: Request) -> JSONResponse:
    who = principal(request)
    return ok({"users": [u for u in svc(request).accounts.all() if _visible(who, u)]})


async def user_create(request: Request) -> JSONResponse:
    s = svc(request)
    body = await read_json(request, UserIn)
    area = _area(body.area)
    require_grant(principal(request), area, body.roles)
    user = await s.accounts.create_async(
        body.username, body.password, body.roles, area, body.full_name
    )
    s.audit("user.create", user=user["username"], roles=",".join(user["roles"]))
    return ok({"user": user}, 201)


def _user(request: Request) -> dict[str, Any]:
    """The account in the path (the middleware has checked it lies in the caller's area)."""
    user = svc(request).accounts.get(request.path_params["user"])
    if not _visible(principal(request), user):
        raise Forbidden(f"outside your area ({principal(request).area.describe()})")
    return user


async def user_get(request: Request) -> JSONResponse:
    return ok({"user": _user(request)})


async def user_update(request: Request) -> JSONResponse:
    s = svc(request)
    user = _user(request)
    body = await read_json(request, UserUpdate)
    who = principal(request)
    area = _area(body.area) if body.area else None
    a = user["area"]
    current = Area(a["province"], a["commune"], frozenset(a["hamlets"]))
    roles = [Role(r) for r in user["roles"]] if body.roles is None else body.roles
    # nobody widens an area (their own included) or grants more than they hold
    require_grant(who, area or current, roles)
    if user["id"] == who.user_id and (
        body.disabled or body.roles is not None or (area is not None and area != current)
    ):
        raise InvalidInput("you cannot disable yourself or change your own roles or area")
    updated = await s.accounts.update_async(
        user["id"],
        roles=body.roles,
        area=area,
        disabled=body.disabled,
        password=body.password,
        by_other=user["id"] != who.user_id,
    )
    changed = sorted(k for k, v in body.model_dump().items() if v is not None)
    s.audit("user.update", user=user["username"], changed=",".join(changed))
    return ok({"user": updated})


async def audit_list(request: Request) -> JSONResponse:
    s = svc(request)
    q = request.query_params

    def num(name: str) -> int | None:
        value = q.get(name)
        if value is None:
            return None
        if not value.isdigit():
            raise InvalidInput(f"{name} must be µs since the epoch (digits)")
        return int(value)

    limit = num("limit") or 200
    rows = await anyio.to_thread.run_sync(
        lambda: s.audit_log.query(
            actor=q.get("actor"),
            action=q.get("action"),
            since_us=num("since_us"),
            until_us=num("until_us"),
            limit=limit,
            area=principal(request).area,
        )
    )
    return ok({"audit": rows})


routes = [
    Route("/api/login", login, methods=["POST"]),
    Route("/api/logout", logout, methods=["POST"]),
    Route("/api/me", me),
    Route("/api/me/tokens", my_tokens, methods=["GET"]),
    Route("/api/me/tokens", token_create, methods=["POST"]),
    Route("/api/me/tokens/{token}", token_revoke, methods=["DELETE"]),
    Route("/api/me/password", my_password, methods=["POST"]),
    Route("/api/users", user_list, methods=["GET"]),
    Route("/api/users", user_create, methods=["POST"]),
    Route("/api/users/{user}", user_get, methods=["GET"]),
    Route("/api/users/{user}", user_update, methods=["PUT"]),
    Route("/api/audit", audit_list),
]
