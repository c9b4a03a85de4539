"""Broadcast routes: start a stored recording on chosen targets, follow it, list them."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from devices.frames import Priority
from loa.errors import FieldError, InvalidInput

from ..auth.guard import principal, require_targets
from ..auth.roles import Principal
from ..places.directory import resolve_in
from ..places.targeting import Resolution, Target
from ..services import Services
from ..web.arrival import arrived_us
from ..web.bodies import UUID_RE, Body, TargetIn, ok, path_id, read_json, svc
from .dispatcher import BroadcastRequest


class BroadcastIn(Body):
    media_id: Annotated[str, Field(pattern=UUID_RE.pattern)]
    targets: Annotated[list[TargetIn], Field(min_length=1, max_length=1000)]
    priority: Literal["normal", "priority"] = "normal"
    title: Annotated[str, Field(max_length=200)] = ""


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
    Route("/api/communes/{commune}/broadcasts", broadcast_list),
    Route("/api/broadcasts", broadcast_create, methods=["POST"]),
    Route("/api/broadcasts/{broadcast}", broadcast_get),
]
