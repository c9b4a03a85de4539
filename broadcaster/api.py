"""The HTTP API (JSON). Bodies are parsed into strict models; errors leave as one shape."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Annotated, Any, Literal, TypeVar

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from devices.frames import MINOR_VERSION, VERSION, Priority
from loa.errors import FieldError, InvalidInput, NotFound, PayloadTooLarge, UnsupportedMedia

from .arrival import arrived_us
from .auth.guard import principal, require_targets
from .auth.roles import Principal
from .directory import resolve_in
from .dispatcher import BroadcastRequest
from .services import Services
from .targeting import Resolution, Target

Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TargetIn(Body):
    commune: Id
    hamlet: Id | None = None
    zone: Id | None = None
    device: Id | None = None

    @model_validator(mode="after")
    def _one(self) -> TargetIn:
        if sum(x is not None for x in (self.hamlet, self.zone, self.device)) > 1:
            raise ValueError("a target names at most one of hamlet, zone or device")
        return self


class BroadcastIn(Body):
    media_id: Annotated[str, Field(pattern=UUID_RE.pattern)]
    targets: Annotated[list[TargetIn], Field(min_length=1, max_length=1000)]
    priority: Literal["normal", "priority"] = "normal"
    title: Annotated[str, Field(max_length=200)] = ""


B = TypeVar("B", bound=Body)


def svc(request: Request) -> Services:
    s: Services = request.app.state.loa
    return s


async def read_json(request: Request, model: type[B]) -> B:
    limit = svc(request).settings.http.max_body_bytes
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json":  # a cross-site form cannot send this without asking
        raise UnsupportedMedia("send the body as JSON (Content-Type: application/json)")
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise PayloadTooLarge(f"request body is over {limit} bytes")
    return parse_json(body, model)


def parse_json(body: bytes | str, model: type[B]) -> B:
    """JSON text → a strict model, or InvalidInput naming each bad field."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("the request body is not valid JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            FieldError(".".join(str(p) for p in e["loc"]) or "(body)", e["msg"], e["type"])
            for e in exc.errors()
        ]
        raise InvalidInput("the request has invalid fields", errors=errors) from None


def path_id(request: Request, name: str, pattern: re.Pattern[str] = _ID) -> str:
    """A path parameter that must look like an id (or a UUID); 404 otherwise."""
    value: str = request.path_params[name]
    if not pattern.fullmatch(value):
        raise NotFound(f"{name} {value!r} does not exist")
    return value


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"ok": True, **data}, status_code=status)


async def health(request: Request) -> JSONResponse:
    s = svc(request)
    return ok({"mqtt": s.link.connected, "version": s.version})


async def keys(request: Request) -> JSONResponse:
    """The controller public keys a speaker must trust (protocol.md, *Keys*): the key it
    signs with now, then any other key a rotation announces. Public, never secret."""
    s = svc(request)
    signing = s.signer.public_hex()
    listed = [signing, *(k for k in s.settings.security.trusted_keys if k != signing)]
    return ok(
        {
            "protocol": f"{VERSION}.{MINOR_VERSION}",
            "keys": [
                {
                    "public_key": k,
                    "key_id": hashlib.sha256(bytes.fromhex(k)).digest()[:4].hex(),
                    "signing": k == signing,
                }
                for k in listed
            ],
        }
    )


async def device_revoke(request: Request) -> JSONResponse:
    s = svc(request)
    device = path_id(request, "device")
    await anyio.to_thread.run_sync(s.broker_access.revoke, device)
    s.audit("device.revoke", device=device)
    commune = s.store.device_commune(device)
    if commune is not None:  # the broker drops it without a will: say so ourselves
        s.store.set_presence(
            commune,
            device,
            online=False,
            at_us=s.clock.now_us(),
            firmware="",
            codecs=[],
            reason="broker credentials revoked",
        )
    return ok({})


async def communes(request: Request) -> JSONResponse:
    return ok({"communes": svc(request).store.communes()})


async def hamlets(request: Request) -> JSONResponse:
    return ok({"hamlets": svc(request).store.hamlets(path_id(request, "commune"))})


async def devices(request: Request) -> JSONResponse:
    return ok({"devices": svc(request).store.device_details(path_id(request, "commune"))})


def resolve_targets(s: Services, given: list[TargetIn], who: Principal) -> Resolution:
    """Targets as the API received them → groups and devices (InvalidInput if unknown,
    Forbidden if outside the caller's area)."""
    targets = [Target(t.commune, t.hamlet, t.zone, t.device) for t in given]
    require_targets(who, targets, s.store)
    return resolve_in(s.store, targets)


async def broadcast_create(request: Request) -> JSONResponse:
    s = svc(request)
    body = await read_json(request, BroadcastIn)
    media = s.store.media(body.media_id)
    resolution = resolve_targets(s, body.targets, principal(request))
    if media.commune_id is not None and set(resolution.communes) != {media.commune_id}:
        raise InvalidInput(
            "this recording belongs to another commune's library",
            errors=[FieldError("media_id", "media not available for these targets", "scope")],
        )
    title = unicodedata.normalize("NFC", body.title) or media.title
    bid = s.dispatcher.start(
        BroadcastRequest(
            media,
            resolution,
            Priority[body.priority.upper()],
            title,
            requested_us=arrived_us(request.scope),  # a late start says how late
        )
    )
    s.audit("broadcast.start", broadcast=bid)
    return ok({"broadcast": s.ledger.get(bid)}, status=202)


async def broadcast_get(request: Request) -> JSONResponse:
    bid = path_id(request, "broadcast", UUID_RE)
    return ok({"broadcast": svc(request).ledger.get(bid)})


async def broadcast_list(request: Request) -> JSONResponse:
    commune = path_id(request, "commune")
    svc(request).store.require_commune(commune)
    return ok({"broadcasts": svc(request).ledger.recent(commune)})


routes = [
    Route("/api/health", health),
    Route("/api/keys", keys),
    Route("/api/communes", communes),
    Route("/api/communes/{commune}/hamlets", hamlets),
    Route("/api/communes/{commune}/devices", devices),
    Route("/api/devices/{device}/credentials", device_revoke, methods=["DELETE"]),
    Route("/api/communes/{commune}/broadcasts", broadcast_list),
    Route("/api/broadcasts", broadcast_create, methods=["POST"]),
    Route("/api/broadcasts/{broadcast}", broadcast_get),
]
