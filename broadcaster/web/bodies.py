"""What every package's routes share: strict JSON bodies, path ids, the services, ``ok``.

Bodies are parsed into strict models; errors leave as one shape (:mod:`.errors`).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, TypeVar

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse

from loa.errors import FieldError, InvalidInput, NotFound, PayloadTooLarge, UnsupportedMedia

from ..services import Services

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


async def ok_off_loop(data: Any, status: int = 200) -> JSONResponse:
    """``ok`` for a big answer (thousands of speakers): encoded in a worker thread, so
    the event loop keeps streaming while a megabyte of JSON is written."""
    response = JSONResponse(None, status_code=status)
    response.body = await anyio.to_thread.run_sync(response.render, {"ok": True, **data})
    response.init_headers()
    return response
