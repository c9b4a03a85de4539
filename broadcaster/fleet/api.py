"""Fleet routes: the registry, uptime, alarms, commands, and Prometheus metrics."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import anyio
from pydantic import Field
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from loa.errors import (
    Conflict,
    FieldError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    UnsupportedMedia,
)

from ..auth.guard import principal, require_targets
from ..auth.headers import DOCUMENT_HEADERS
from ..auth.policy import DEPLOYMENT, Part, require_within
from ..places.targeting import Target
from ..web.bodies import UUID_RE, Body, Id, ok, path_id, read_json, svc
from .metrics import render
from .registry_api import push_config, require_speaker
from .report import as_csv, commune_report, province_rollup, rollup_csv
from .report_html import as_html

Text = Annotated[str, Field(max_length=500)]
DATE = r"^\d{4}-\d{2}-\d{2}$"


class DeviceIn(Body):
    hamlet: Id | None = None
    name: Annotated[str, Field(max_length=100)] | None = None
    lat: Annotated[float, Field(ge=-90, le=90, strict=False)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180, strict=False)] | None = None
    model: Annotated[str, Field(max_length=100)] | None = None
    sim: Annotated[str, Field(max_length=40)] | None = None
    network: Annotated[str, Field(max_length=20)] | None = None
    installed: Annotated[str, Field(pattern=DATE)] | None = None
    notes: Text | None = None


class NewDeviceIn(DeviceIn):
    id: Id
    hamlet: Id


class CommandIn(Body):
    action: Annotated[str, Field(max_length=40)]
    args: Annotated[dict[str, int | str | bool], Field(max_length=16)] = Field(default_factory=dict)


def _period(request: Request) -> tuple[int, int]:
    q = request.query_params
    now = svc(request).clock.now_us()
    out = []
    for name, default in (("from_us", now - 30 * 86_400_000_000), ("to_us", now)):
        value = q.get(name)
        if value is None:
            out.append(default)
        elif re.fullmatch(r"\d{1,19}", value):
            out.append(int(value))
        else:
            raise InvalidInput(
                f"{name} must be µs since the epoch",
                errors=[FieldError(name, "digits", "invalid")],
            )
    if out[1] <= out[0]:
        raise InvalidInput(
            "the period must end after it starts", errors=[FieldError("to_us", "range", "range")]
        )
    return out[0], out[1]


def _device(request: Request) -> dict[str, Any]:
    device = path_id(request, "device")
    rows = svc(request).store.query("SELECT * FROM devices WHERE id=?", [device])
    if not rows:
        raise NotFound(f"speaker {device!r} does not exist")
    return rows[0]


async def device_get(request: Request) -> JSONResponse:
    s = svc(request)
    d = _device(request)
    details = s.store.device_details(d["commune_id"], d["id"])[0]
    series = s.store.query(
        "SELECT * FROM telemetry WHERE device_id=? ORDER BY at_us DESC LIMIT 500", [d["id"]]
    )
    return ok({"device": {**details, "commune": d["commune_id"]}, "telemetry": series[::-1]})


async def device_create(request: Request) -> JSONResponse:
    s = svc(request)
    commune = path_id(request, "commune")
    s.store.require_commune(commune)
    body = await read_json(request, NewDeviceIn)
    require_speaker(request, commune, body.hamlet)
    if s.store.device_commune(body.id) is not None:
        raise Conflict(f"speaker {body.id!r} already exists")
    s.store.require_hamlet(commune, body.hamlet)
    require_targets(principal(request), [Target(commune, hamlet=body.hamlet)], s.store)
    s.store.upsert_device(commune, body.id, body.hamlet, body.name or "")
    _update(request, body.id, body)

    await push_config(s, next(x for x in s.store.devices(commune) if x.id == body.id))
    s.audit("device.create", device=body.id, hamlet=body.hamlet)
    return ok({"device": _public(request, body.id)}, 201)


def _update(request: Request, device: str, body: DeviceIn) -> dict[str, Any]:
    values = {k: v for k, v in body.model_dump(exclude={"id", "hamlet"}).items() if v is not None}
    if values:
        svc(request).store.db.table("devices").update(
            (svc(request).store.device_commune(device), device), values
        )
    return values


def _public(request: Request, device: str) -> dict[str, Any]:
    s = svc(request)
    commune = s.store.device_commune(device)
    assert commune is not None
    return s.store.device_details(commune, device)[0]


async def device_update(request: Request) -> JSONResponse:
    """Change registry fields; a move to another hamlet reaches the speaker at once
    (its retained config and its broker ACL are rewritten)."""
    s = svc(request)
    d = _device(request)
    body = await read_json(request, DeviceIn)
    require_speaker(request, d["commune_id"], device=d["id"])
    if body.hamlet is not None:
        s.store.require_hamlet(d["commune_id"], body.hamlet)  # before anything changes
        require_speaker(request, d["commune_id"], body.hamlet)
    changed = sorted(_update(request, d["id"], body))
    if body.hamlet is not None and body.hamlet != d["hamlet_id"]:
        s.store.db.table("devices").update((d["commune_id"], d["id"]), {"hamlet_id": body.hamlet})
        row = next(x for x in s.store.devices(d["commune_id"]) if x.id == d["id"])
        await s.facts.push_config(row)
        s.broker_access.apply()
        changed.append("hamlet")
    s.audit("device.update", device=d["id"], changed=",".join(changed))
    return ok({"device": _public(request, d["id"])})


async def uptime_device(request: Request) -> JSONResponse:
    s = svc(request)
    d = _device(request)
    start, end = _period(request)
    u = s.fleet.device_uptime(d["id"], start, end, s.fleet.watched())
    return ok({"uptime": u.as_dict(), "from_us": start, "to_us": end})


async def uptime_commune(request: Request) -> JSONResponse:
    s = svc(request)
    start, end = _period(request)
    commune = path_id(request, "commune")
    out = await s.store.read(lambda st: s.fleet.area_uptime(commune, start, end, st))
    return ok({"uptime": out, "from_us": start, "to_us": end})


async def alarm_list(request: Request) -> JSONResponse:
    s = svc(request)
    open_only = request.query_params.get("open", "1") not in ("0", "false", "no")
    return ok({"alarms": s.fleet.alarms(path_id(request, "commune"), open_only)})


async def alarm_stream(request: Request) -> StreamingResponse:
    """Server-Sent Events: each alarm of the commune as it is raised or cleared."""
    s = svc(request)
    commune = path_id(request, "commune")
    s.store.require_commune(commune)
    feed = s.fleet.watch()

    async def stream() -> AsyncIterator[str]:
        with feed:
            yield "event: hello\ndata: {}\n\n"
            async for e in feed:
                if e["commune_id"] == commune:
                    yield f"event: alarm\ndata: {json.dumps(e, ensure_ascii=False)}\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


async def alarm_ack(request: Request) -> JSONResponse:
    s = svc(request)
    alarm = s.fleet.ack(path_id(request, "alarm", UUID_RE), principal(request).username)
    return ok({"alarm": alarm})


async def command_send(request: Request) -> JSONResponse:
    s = svc(request)
    s.command_limit.hit(principal(request).user_id)
    d = _device(request)
    require_speaker(request, d["commune_id"], device=d["id"])
    body = await read_json(request, CommandIn)
    row = await s.fleet.command(d["id"], body.action, dict(body.args), principal(request).username)
    return ok({"command": row}, 202)


async def command_list(request: Request) -> JSONResponse:
    return ok({"commands": svc(request).fleet.commands(_device(request)["id"])})


def _report_period(request: Request, timezone: str) -> tuple[int, int, str, date, date]:
    """``?month=YYYY-MM`` or ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (inclusive), in the
    commune's time zone; by default the last full month."""
    q = request.query_params
    zone = ZoneInfo(timezone)
    try:
        if "from" in q or "to" in q:
            first = date.fromisoformat(q.get("from", ""))
            last = date.fromisoformat(q.get("to", ""))
        else:
            if "month" in q:
                if not re.fullmatch(r"\d{4}-\d{2}", q["month"]):
                    raise ValueError
                year, month = map(int, q["month"].split("-"))
                first = date(year, month, 1)
            else:
                today = datetime.fromtimestamp(svc(request).clock.now_us() / 1e6, zone).date()
                first = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
            last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    except ValueError:
        raise InvalidInput(
            "give month=YYYY-MM, or from and to as YYYY-MM-DD",
            errors=[FieldError("month", "YYYY-MM or from/to dates", "invalid")],
        ) from None
    if last < first or (last - first).days > 366:
        raise InvalidInput(
            "the period must end after it starts and last at most a year",
            errors=[FieldError("to", "range", "range")],
        )
    start = datetime.combine(first, time.min, zone)
    end = datetime.combine(last + timedelta(days=1), time.min, zone)
    span = f"{first} – {last}"
    return int(start.timestamp() * 1e6), int(end.timestamp() * 1e6), span, first, last


def _format(request: Request, allowed: tuple[str, ...]) -> str:
    fmt = request.query_params.get("format", "json")
    if fmt not in allowed:
        raise InvalidInput(
            f"format must be one of {', '.join(allowed)}",
            errors=[FieldError("format", "unknown format", "invalid")],
        )
    return fmt


async def report_commune(request: Request) -> Response:
    s = svc(request)
    commune = path_id(request, "commune")
    row = s.store.require_commune(commune)
    fmt = _format(request, ("json", "csv", "html"))
    zone = row["timezone"] or s.settings.scheduler.timezone
    start, end, period, first, last = _report_period(request, zone)
    # Off the loop, on a reader connection of its own: the loop keeps streaming.
    report = await s.store.read(commune_report, s.fleet, commune, start, end)
    if fmt == "csv":
        name = f"bao-cao-{commune}.csv"
        return Response(
            as_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )
    if fmt == "html":
        lang = request.query_params.get("lang") or request.cookies.get("lang") or "vi"
        page = await s.offload.run(as_html, report, first, last, lang)  # charts: a process
        return HTMLResponse(page, headers=DOCUMENT_HEADERS)
    return ok({"report": report, "period": period})


async def report_province(request: Request) -> Response:
    s = svc(request)
    province = path_id(request, "province")
    if not s.store.query("SELECT id FROM provinces WHERE id=?", [province]):
        raise NotFound(f"province {province!r} does not exist")
    fmt = _format(request, ("json", "csv"))
    start, end, period, _first, _last = _report_period(request, s.settings.scheduler.timezone)
    rows = await s.store.read(province_rollup, province, start, end)
    if fmt == "csv":
        return Response(rollup_csv(rows), media_type="text/csv; charset=utf-8")
    return ok({"communes": rows, "period": period, "from_us": start, "to_us": end})


class RolloutIn(Body):
    devices: Annotated[list[Id], Field(min_length=1, max_length=10_000)]
    canary: Annotated[int, Field(ge=0, le=1000)] = 2


async def firmware_upload(request: Request) -> JSONResponse:
    """The image as the raw body (``application/octet-stream``), ``?version=``."""
    s = svc(request)
    require_within(principal(request), (Part(DEPLOYMENT),), what="a firmware image")
    limit = s.settings.fleet.firmware_max_bytes
    if "octet-stream" not in request.headers.get("content-type", ""):
        raise UnsupportedMedia(
            "send the image as the body (Content-Type: application/octet-stream)"
        )
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise PayloadTooLarge(f"the firmware image is over {limit} bytes")
    fw = await anyio.to_thread.run_sync(
        s.firmware.add, request.query_params.get("version", ""), body
    )
    s.audit("firmware.upload", version=fw["version"], sha256=fw["sha256"])
    return ok({"firmware": fw}, 201)


async def firmware_list(request: Request) -> JSONResponse:
    return ok({"firmware": svc(request).firmware.images()})


async def rollout_start(request: Request) -> JSONResponse:
    s = svc(request)
    fw = path_id(request, "firmware", UUID_RE)
    body = await read_json(request, RolloutIn)
    who = principal(request)
    for d in body.devices:  # every device inside the caller's area
        commune = s.store.device_commune(d)
        if commune is not None:
            require_targets(who, [Target(commune, device=d)], s.store)
    rid = s.firmware.plan(fw, list(body.devices), body.canary, who.username)
    s.dispatcher.spawn(s.firmware.run, rid)
    s.audit("firmware.rollout", rollout=rid, firmware=fw, devices=len(body.devices))
    return ok({"rollout": s.firmware.get(rid)}, 202)


async def rollout_get(request: Request) -> JSONResponse:
    return ok({"rollout": svc(request).firmware.get(path_id(request, "rollout", UUID_RE))})


async def metrics(request: Request) -> Response:
    """The whole province's figures: for province accounts (a Prometheus token) only."""
    who = principal(request)
    require_within(who, (Part(who.area.province),), read=True, what="the metrics")
    body, content_type = await anyio.to_thread.run_sync(render, svc(request), who.area.province)
    return Response(body, media_type=content_type)


async def health(request: Request) -> JSONResponse:
    s = svc(request)
    syncer = s.store.syncer  # commits made durable by the syncer thread
    age = syncer.age_s() if syncer is not None else None
    store = {
        "durable": syncer is None or syncer.healthy,
        "synced_s_ago": None if age is None else round(age, 3),
    }
    return ok({"mqtt": s.link.connected, "store": store, "version": s.version})


routes = [
    Route("/api/health", health),
    Route("/api/communes/{commune}/devices", device_create, methods=["POST"]),
    Route("/api/devices/{device}", device_get, methods=["GET"]),
    Route("/api/devices/{device}", device_update, methods=["PUT"]),
    Route("/api/devices/{device}/uptime", uptime_device),
    Route("/api/communes/{commune}/uptime", uptime_commune),
    Route("/api/communes/{commune}/alarms", alarm_list),
    Route("/api/communes/{commune}/alarms/stream", alarm_stream),
    Route("/api/alarms/{alarm}/ack", alarm_ack, methods=["POST"]),
    Route("/api/devices/{device}/commands", command_send, methods=["POST"]),
    Route("/api/devices/{device}/commands", command_list, methods=["GET"]),
    Route("/metrics", metrics),
    Route("/api/firmware", firmware_upload, methods=["POST"]),
    Route("/api/firmware", firmware_list, methods=["GET"]),
    Route("/api/firmware/{firmware}/rollouts", rollout_start, methods=["POST"]),
    Route("/api/rollouts/{rollout}", rollout_get),
    Route("/api/communes/{commune}/report", report_commune),
    Route("/api/provinces/{province}/report", report_province),
]
