"""Alert routes: create, confirm, cancel, update, all-clear, list, detail, live board (SSE),
CAP import and export."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import anyio
from pydantic import Field, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from loa.errors import FieldError, PayloadTooLarge, UnsupportedMedia

from ..auth.guard import principal
from ..broadcasts.outcome import RUNNING
from ..places.targeting import Target
from ..web.bodies import UUID_RE, Body, TargetIn, ok, path_id, read_json, svc
from . import cap_export as capx
from . import cap_import as capi
from .access import require_alert_area
from .model import AlertType
from .prepare import AlertRequest
from .service import AlertService

Text = Annotated[str, Field(max_length=2000)]


class AlertIn(Body):
    type: Annotated[AlertType, Field(strict=False)]
    risk_level: Annotated[int, Field(ge=1, le=5)]
    targets: Annotated[list[TargetIn], Field(min_length=1, max_length=500)]
    fields: Annotated[dict[Annotated[str, Field(max_length=40)], Text], Field(max_length=20)] = (
        Field(default_factory=dict)
    )
    message: Text = ""
    media_id: Annotated[str, Field(pattern=UUID_RE.pattern)] | None = None
    siren: Literal["wail", "yelp", "steady"] = "wail"
    repeat: Annotated[int, Field(ge=1, le=5)] = 3
    expires_in_min: Annotated[int, Field(ge=1, le=7 * 24 * 60)] | None = None
    reair_every_hours: Annotated[int, Field(ge=0, le=24)] = 0
    title: Annotated[str, Field(max_length=200)] = ""
    test: bool = False
    #: One key per form: sending the same key again returns the same draft.
    client_key: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")] = ""

    @model_validator(mode="after")
    def _one_message(self) -> AlertIn:
        if self.media_id is not None and (self.message or self.fields):
            raise ValueError("give a recorded message (media_id) or text, not both")
        return self


class CancelIn(Body):
    reason: Annotated[str, Field(max_length=500)] = ""


def alerts(request: Request) -> AlertService:
    service: AlertService = request.app.state.alerts
    return service


def _request(commune: str, body: AlertIn, now_us: int) -> AlertRequest:
    return AlertRequest(
        commune=commune,
        type=body.type,
        risk_level=body.risk_level,
        targets=[Target(t.commune, t.hamlet, t.zone, t.device) for t in body.targets],
        fields=dict(body.fields),
        message=body.message,
        media_id=body.media_id,
        siren=body.siren,
        repeat=body.repeat,
        expires_us=now_us + body.expires_in_min * 60_000_000 if body.expires_in_min else 0,
        reair_hours=body.reair_every_hours,
        title=body.title,
        test=body.test,
        client_key=body.client_key,
    )


async def alert_create(request: Request) -> JSONResponse:
    commune = path_id(request, "commune")
    svc(request).alert_limit.hit(principal(request).user_id)
    body = await read_json(request, AlertIn)
    s = alerts(request)
    req = _request(commune, body, s.clock.now_us())
    p = principal(request)
    require_alert_area(p, req.targets, svc(request).store)
    alert = await s.create(req, actor=p.username)
    return ok({"alert": alert}, status=201)


def _may_act(request: Request, alert_id: str) -> str:
    """The account's name, once the alert's targets are known to be inside its area."""
    p = principal(request)
    require_alert_area(p, alerts(request).targets_of(alert_id), svc(request).store)
    return p.username


async def alert_list(request: Request) -> JSONResponse:
    return ok({"alerts": alerts(request).list(path_id(request, "commune"))})


async def alert_get(request: Request) -> JSONResponse:
    return ok({"alert": alerts(request).get(path_id(request, "alert", UUID_RE))})


async def alert_confirm(request: Request) -> JSONResponse:
    alert_id = path_id(request, "alert", UUID_RE)
    actor = _may_act(request, alert_id)
    return ok({"alert": alerts(request).confirm(alert_id, actor=actor)}, status=202)


async def alert_cancel(request: Request) -> JSONResponse:
    alert_id = path_id(request, "alert", UUID_RE)
    body = (
        await read_json(request, CancelIn)
        if request.headers.get("content-length") not in (None, "0")
        else CancelIn()
    )
    actor = _may_act(request, alert_id)
    return ok({"alert": alerts(request).cancel(alert_id, actor, body.reason)}, status=202)


async def alert_update(request: Request) -> JSONResponse:
    alert_id = path_id(request, "alert", UUID_RE)
    body = await read_json(request, AlertIn)
    s = alerts(request)
    actor = _may_act(request, alert_id)
    current = s.get(alert_id)
    req = _request(current["commune_id"], body, s.clock.now_us())
    require_alert_area(principal(request), req.targets, svc(request).store)
    alert = await s.update(alert_id, req, actor=actor)
    return ok({"alert": alert}, status=202)


async def alert_all_clear(request: Request) -> JSONResponse:
    alert_id = path_id(request, "alert", UUID_RE)
    actor = _may_act(request, alert_id)
    alert = await alerts(request).all_clear(alert_id, actor=actor)
    return ok({"alert": alert}, status=202)


async def alert_events(request: Request) -> StreamingResponse:
    """Server-Sent Events: the alert with its board, each time it changes (1 s polling)."""
    s = alerts(request)
    alert_id = path_id(request, "alert", UUID_RE)
    s.get(alert_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        last = ""
        while True:
            alert = s.get(alert_id)
            data = json.dumps(alert, ensure_ascii=False, sort_keys=True)
            if data != last:
                yield f"event: alert\ndata: {data}\n\n"
                last = data
            if alert["status"] != "active" and alert["status"] != "draft":
                running = [b for b in alert["broadcasts"] if b["status"] in RUNNING]
                if not running:
                    yield "event: end\ndata: {}\n\n"
                    return
            await anyio.sleep(1.0)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


async def cap_import(request: Request) -> JSONResponse:
    """POST a CAP 1.2 document (``application/cap+xml`` or ``application/xml``)."""
    svc(request).alert_limit.hit(principal(request).user_id)
    commune = path_id(request, "commune")
    limit = svc(request).settings.alerts.cap_max_bytes
    kind = request.headers.get("content-type", "")
    if "xml" not in kind:
        raise UnsupportedMedia("send the CAP document as XML (Content-Type: application/cap+xml)")
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise PayloadTooLarge(
                f"the CAP document is over the {limit}-byte limit",
                errors=[FieldError("(body)", "too large", "too_large")],
            )
    s = alerts(request)
    p = principal(request)
    store = svc(request).store
    result = await capi.import_document(
        s,
        svc(request),
        commune,
        body,
        actor=p.username,
        allowed=lambda targets: require_alert_area(p, targets, store),
    )
    return ok(result, status=201 if result.get("alert") else 200)


async def cap_export(request: Request) -> Response:
    s = alerts(request)
    alert = s.get(path_id(request, "alert", UUID_RE))
    xml = capx.export(alert, svc(request))
    return Response(xml, media_type="application/cap+xml")


routes = [
    Route("/api/communes/{commune}/alerts", alert_list, methods=["GET"]),
    Route("/api/communes/{commune}/alerts", alert_create, methods=["POST"]),
    Route("/api/communes/{commune}/alerts/cap", cap_import, methods=["POST"]),
    Route("/api/alerts/{alert}", alert_get, methods=["GET"]),
    Route("/api/alerts/{alert}/confirm", alert_confirm, methods=["POST"]),
    Route("/api/alerts/{alert}/cancel", alert_cancel, methods=["POST"]),
    Route("/api/alerts/{alert}/update", alert_update, methods=["POST"]),
    Route("/api/alerts/{alert}/all-clear", alert_all_clear, methods=["POST"]),
    Route("/api/alerts/{alert}/events", alert_events),
    Route("/api/alerts/{alert}/cap", cap_export),
]
