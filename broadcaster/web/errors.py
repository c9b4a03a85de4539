"""One error shape for every HTTP error: ``{"ok": false, "error", "errors", "status"}``."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from loa.errors import AudioError, DiskFull, LoaError, is_disk_full

logger = logging.getLogger(__name__)


def error_body(
    status: int, message: str, errors: list[dict[str, str]] | None = None, code: str = "error"
) -> dict[str, Any]:
    return {"ok": False, "error": message, "code": code, "errors": errors or [], "status": status}


async def loa_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoaError)
    if exc.status >= 500:
        logger.error("%s %s: %s", request.method, request.url.path, exc.message)
    if isinstance(exc, AudioError) and exc.detail:
        logger.info("upload refused: %s | %s", exc.message, exc.detail)
    return JSONResponse(
        error_body(exc.status, exc.message, [e.as_dict() for e in exc.errors], exc.code),
        status_code=exc.status,
    )


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "no such page or API endpoint", 405: "method not allowed here"}
    return JSONResponse(
        error_body(exc.status_code, messages.get(exc.status_code, str(exc.detail)), code="http"),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def unexpected(request: Request, exc: Exception) -> Response:
    if is_disk_full(exc):  # ENOSPC, or SQLite's "database or disk is full"
        logger.error("%s %s: the disk is full (%s)", request.method, request.url.path, exc)
        return await loa_error(request, DiskFull())
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body(500, "internal error; see the server log", code="internal"), status_code=500
    )


async def storage_error(request: Request, exc: Exception) -> Response:
    """OS and SQLite errors inside a route: a full disk is a clear 507 (answered here, so
    the connection stays usable); anything else is the usual 500."""
    return await unexpected(request, exc)


HANDLERS: dict[Any, Any] = {
    LoaError: loa_error,
    OSError: storage_error,
    sqlite3.DatabaseError: storage_error,
    HTTPException: http_error,
    500: unexpected,
    Exception: unexpected,
}
