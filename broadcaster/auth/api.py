"""Logging in and out, the caller's own account and tokens, accounts (admin), audit log."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from loa.errors import Forbidden, InvalidInput

from ..api import Body, Id, ok, read_json, svc
from .accounts import public
from .audit import ACTOR
from .guard import principal
from .middleware import COOKIE, client_ip
from .roles import Area, Role

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
    s.login_limit.hit(client_ip(request.scope))
    body = await read_json(request, LoginIn)
    ACTOR.set((body.username[:64], client_ip(request.scope)))
    try:
        user = s.accounts.authenticate(body.username, body.password)
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
    s.accounts.authenticate(p.username, body.current)
    s.accounts.update(p.user_id, password=body.new)
    s.audit("user.password", user=p.username)
    return ok({})


def _admin_over(request: Request, area: Area) -> None:
    """An admin manages accounts only inside its own area."""
    mine = principal(request).area
    if mine.is_everywhere:
        return
    if mine.is_province:
        if area.province != mine.province:
            raise Forbidden(f"outside your area ({mine.describe()})")
    elif area.commune != mine.commune:
        raise Forbidden(f"outside your area ({mine.describe()})")
    elif mine.hamlets and not (area.hamlets and area.hamlets <= mine.hamlets):
        raise Forbidden(f"accounts only for your hamlets ({mine.describe()})")


async def user_list(request: Request) -> JSONResponse:
    mine = principal(request).area
    users = [
        u
        for u in svc(request).accounts.all()
        if mine.is_everywhere
        or (mine.is_province and u["area"]["province"] == mine.province)
        or u["area"]["commune"] == mine.commune
    ]
    return ok({"users": users})


async def user_create(request: Request) -> JSONResponse:
    s = svc(request)
    body = await read_json(request, UserIn)
    area = _area(body.area)
    _admin_over(request, area)
    user = s.accounts.create(body.username, body.password, body.roles, area, body.full_name)
    s.audit("user.create", user=user["username"], roles=",".join(user["roles"]))
    return ok({"user": user}, 201)


def _user(request: Request) -> dict[str, Any]:
    user = svc(request).accounts.get(request.path_params["user"])
    a = user["area"]
    _admin_over(request, Area(a["province"], a["commune"], frozenset(a["hamlets"])))
    return user


async def user_get(request: Request) -> JSONResponse:
    return ok({"user": _user(request)})


async def user_update(request: Request) -> JSONResponse:
    s = svc(request)
    user = _user(request)
    body = await read_json(request, UserUpdate)
    area = _area(body.area) if body.area else None
    if area is not None:
        _admin_over(request, area)
    if user["id"] == principal(request).user_id and (body.disabled or body.roles is not None):
        raise InvalidInput("you cannot disable yourself or change your own roles")
    updated = s.accounts.update(
        user["id"], roles=body.roles, area=area, disabled=body.disabled, password=body.password
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
    rows = s.audit_log.query(
        actor=q.get("actor"),
        action=q.get("action"),
        since_us=num("since_us"),
        until_us=num("until_us"),
        limit=limit,
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
