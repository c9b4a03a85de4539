"""Programme routes: create and edit (with conflicts), submit / approve / return, delete,
the calendar of firings and the history of outcomes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from loa.errors import FieldError, InvalidInput
from schedules.recurrence import KINDS, Kind, Rule, parse_date, validate

from ..auth.guard import principal, require_targets
from ..auth.roles import Role
from ..broadcasts.relay import check_source, redact
from ..places.targeting import Target
from ..web.bodies import UUID_RE, Body, TargetIn, ok, path_id, read_json, svc
from .service import ProgrammeService

DateText = Annotated[str, Field(max_length=10)]


class WhatIn(Body):
    kind: Literal["media", "text", "relay"]
    media_id: Annotated[str, Field(pattern=UUID_RE.pattern)] | None = None
    text: Annotated[str, Field(min_length=1, max_length=5000)] | None = None
    url: Annotated[str, Field(min_length=8, max_length=2000)] | None = None
    duration_s: Annotated[float, Field(gt=0, le=6 * 3600)] | None = None

    @model_validator(mode="after")
    def _fits(self) -> WhatIn:
        needs = {"media": {"media_id"}, "text": {"text"}, "relay": {"url", "duration_s"}}
        given = {f for f in ("media_id", "text", "url", "duration_s") if getattr(self, f)}
        if given != needs[self.kind]:
            raise ValueError(
                f"a {self.kind} programme has exactly {' and '.join(sorted(needs[self.kind]))}"
            )
        return self


class WhenIn(Body):
    kind: Kind
    at: Annotated[str, Field(max_length=5)]
    timezone: Annotated[str, Field(max_length=64)] | None = None
    start: DateText | None = None
    end: DateText | None = None
    weekdays: Annotated[list[int], Field(max_length=7)] = Field(default_factory=list)
    every_days: Annotated[int, Field(ge=1, le=366)] = 1
    month_day: Annotated[int, Field(ge=1, le=31)] = 1
    exceptions: Annotated[list[DateText], Field(max_length=366)] = Field(default_factory=list)


class ProgrammeIn(Body):
    title: Annotated[str, Field(min_length=1, max_length=200)]
    what: WhatIn
    targets: Annotated[list[TargetIn], Field(min_length=1, max_length=500)]
    when: WhenIn
    priority: Literal["normal", "priority"] = "normal"
    volume: Annotated[int, Field(ge=0, le=100)] | None = None


class ProvinceBulletinIn(Body):
    title: Annotated[str, Field(min_length=1, max_length=200)]
    what: WhatIn
    communes: Annotated[
        list[Annotated[str, Field(max_length=63)]], Field(min_length=1, max_length=500)
    ]
    when: WhenIn
    priority: Literal["normal", "priority"] = "priority"


class ReasonIn(Body):
    reason: Annotated[str, Field(max_length=500)] = ""


def programmes(request: Request) -> ProgrammeService:
    service: ProgrammeService = svc(request).programmes
    return service


def _rule(when: WhenIn, default_tz: str) -> Rule:
    if when.kind not in KINDS:
        raise InvalidInput("unknown repetition", errors=[FieldError("when.kind", "unknown")])
    return Rule(
        kind=when.kind,
        at=when.at,
        timezone=when.timezone or default_tz,
        start=parse_date(when.start, "when.start") if when.start else None,
        end=parse_date(when.end, "when.end") if when.end else None,
        weekdays=frozenset(when.weekdays),
        every_days=when.every_days,
        month_day=when.month_day,
        exceptions=frozenset(parse_date(d, "when.exceptions") for d in when.exceptions),
    )


async def _fields(request: Request, commune: str, body: ProgrammeIn) -> dict[str, object]:
    s = svc(request)
    media_id = body.what.media_id
    if body.what.kind == "relay":
        await check_source(body.what.url or "", s.settings.relay.allowed_hosts)
    if body.what.kind == "text":  # spoken once, when saved, so it airs without waiting
        item = await s.library.add_text(body.what.text or "", commune_id=commune, title=body.title)
        media_id = item["id"]
    return {
        "title": body.title,
        "what": body.what.kind,
        "media_id": media_id,
        "text": body.what.text or "",
        "relay_url": body.what.url or "",
        "relay_duration_s": body.what.duration_s or 0.0,
        "priority": body.priority,
        "volume": body.volume,
    }


def shown(request: Request, programme: dict[str, Any]) -> dict[str, Any]:
    """A programme as the caller may see it: a relay URL's user name and password only
    for admins."""
    if Role.ADMIN not in principal(request).roles and programme.get("relay_url"):
        return {**programme, "relay_url": redact(programme["relay_url"])}
    return programme


def _targets(request: Request, body: ProgrammeIn) -> list[Target]:
    targets = [Target(t.commune, t.hamlet, t.zone, t.device) for t in body.targets]
    require_targets(principal(request), targets, svc(request).store)
    return targets


async def programme_create(request: Request) -> JSONResponse:
    commune = path_id(request, "commune")
    s = svc(request)
    commune_row = s.store.require_commune(commune)
    body = await read_json(request, ProgrammeIn)
    rule = _rule(body.when, commune_row["timezone"] or s.settings.scheduler.timezone)
    service = programmes(request)
    validate(rule)  # before any text is spoken
    fields = await _fields(request, commune, body)
    programme, conflicts = service.save(commune, fields, rule, _targets(request, body))
    return ok({"programme": shown(request, programme), "conflicts": conflicts}, status=201)


async def programme_check(request: Request) -> JSONResponse:
    """The conflicts a programme would have, shown before it is saved; nothing is saved
    (text is not spoken here: its length is not known until it is)."""
    commune = path_id(request, "commune")
    s = svc(request)
    commune_row = s.store.require_commune(commune)
    body = await read_json(request, ProgrammeIn)
    rule = _rule(body.when, commune_row["timezone"] or s.settings.scheduler.timezone)
    fields = {
        "what": body.what.kind,
        "media_id": body.what.media_id,
        "relay_duration_s": body.what.duration_s or 0.0,
    }
    if body.what.media_id:
        s.store.media(body.what.media_id)  # 404 for an unknown item
    conflicts = programmes(request).check(commune, fields, rule, _targets(request, body))
    return ok({"conflicts": conflicts})


async def programme_update(request: Request) -> JSONResponse:
    service = programmes(request)
    pid = path_id(request, "programme", UUID_RE)
    current = service.get(pid)
    s = svc(request)
    body = await read_json(request, ProgrammeIn)
    commune_row = s.store.require_commune(current["commune_id"])
    rule = _rule(body.when, commune_row["timezone"] or s.settings.scheduler.timezone)
    validate(rule)
    fields = await _fields(request, current["commune_id"], body)
    programme, conflicts = service.save(
        current["commune_id"], fields, rule, _targets(request, body), programme_id=pid
    )
    return ok({"programme": shown(request, programme), "conflicts": conflicts})


async def programme_list(request: Request) -> JSONResponse:
    listed = programmes(request).of_commune(path_id(request, "commune"))
    return ok({"programmes": [shown(request, p) for p in listed]})


async def programme_get(request: Request) -> JSONResponse:
    pid = path_id(request, "programme", UUID_RE)
    service = programmes(request)
    return ok({"programme": shown(request, service.get(pid)), "conflicts": service.conflicts(pid)})


async def programme_delete(request: Request) -> JSONResponse:
    pid = path_id(request, "programme", UUID_RE)
    programmes(request).delete(pid)
    return ok({"deleted": pid})


def _action(action: str) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def handler(request: Request) -> JSONResponse:
        pid = path_id(request, "programme", UUID_RE)
        reason = ""
        if request.headers.get("content-length") not in (None, "0"):
            reason = (await read_json(request, ReasonIn)).reason
        return ok(
            {"programme": shown(request, programmes(request).set_status(pid, action, reason))}
        )

    return handler


def _instant(request: Request, name: str, default: int, zone: ZoneInfo) -> int:
    """A query's date or date-time. A plain date or a time without an offset is the
    commune's local time (``zone``); a plain ``to`` date includes that whole day."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        t = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            f"{name} must be a date or date-time (2026-11-24 or 2026-11-24T06:00:00+07:00)",
            errors=[FieldError(name, "not a date", "date")],
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=zone)
    if name == "to" and len(raw.strip()) == 10:  # a plain date: up to the end of that day
        t = datetime.combine(t.date() + timedelta(days=1), time(0), tzinfo=t.tzinfo)
    return int(t.timestamp() * 1_000_000)


async def occurrences(request: Request) -> JSONResponse:
    commune = path_id(request, "commune")
    service = programmes(request)
    zone = ZoneInfo(service.store.require_commune(commune)["timezone"])
    now = service.clock.now_us()
    start = _instant(request, "from", now, zone)
    end = _instant(request, "to", start + 7 * 86_400_000_000, zone)
    return ok({"occurrences": service.upcoming(commune, start, end)})


async def history(request: Request) -> JSONResponse:
    return ok({"occurrences": programmes(request).history(path_id(request, "commune"))})


async def province_bulletin(request: Request) -> JSONResponse:
    """A province sends one bulletin to chosen communes, approved at province level."""
    province = path_id(request, "province")
    s = svc(request)
    body = await read_json(request, ProvinceBulletinIn)
    if body.what.kind != "media":
        raise InvalidInput(
            "a province bulletin carries a recorded item (media)",
            errors=[FieldError("what.kind", "use media", "kind")],
        )
    zones = {c["id"]: c["timezone"] for c in s.store.communes()}

    def rule_for(commune: str) -> Rule:
        return _rule(body.when, zones.get(commune) or s.settings.scheduler.timezone)

    fields: dict[str, object] = {
        "title": body.title,
        "what": "media",
        "media_id": body.what.media_id,
        "text": "",
        "relay_url": "",
        "relay_duration_s": 0.0,
        "priority": body.priority,
        "volume": None,
    }
    made = programmes(request).province_bulletin(province, body.communes, fields, rule_for)
    return ok({"programmes": made}, status=201)


routes = [
    Route("/api/provinces/{province}/bulletins", province_bulletin, methods=["POST"]),
    Route("/api/communes/{commune}/programmes", programme_list, methods=["GET"]),
    Route("/api/communes/{commune}/programmes", programme_create, methods=["POST"]),
    Route("/api/communes/{commune}/programmes/check", programme_check, methods=["POST"]),
    Route("/api/communes/{commune}/occurrences", occurrences),
    Route("/api/communes/{commune}/occurrences/history", history),
    Route("/api/programmes/{programme}", programme_get, methods=["GET"]),
    Route("/api/programmes/{programme}", programme_update, methods=["PUT"]),
    Route("/api/programmes/{programme}", programme_delete, methods=["DELETE"]),
    Route("/api/programmes/{programme}/submit", _action("submit"), methods=["POST"]),
    Route("/api/programmes/{programme}/approve", _action("approve"), methods=["POST"]),
    Route("/api/programmes/{programme}/return", _action("return"), methods=["POST"]),
]
