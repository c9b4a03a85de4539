"""The server log: readable lines for people, or JSON lines (``--log-json``) for machines.

One line per HTTP request (method, path, status, ms, user), per broadcast and alert
event, per speaker coming and going; errors with their traceback. Secrets never reach
the log: a filter masks API tokens, passwords and keys in every message.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_logger = logging.getLogger("loa.http")

#: API tokens, ``password=…``/``"password": "…"`` pairs, PEM blocks and bearer headers.
_SECRETS = [
    (re.compile(r"loa_[A-Za-z0-9_\-]{8,}"), "loa_***"),
    (
        re.compile(r"(?i)(\"?(?:password|passwd|secret|token|key)\"?\s*[:=]\s*\"?)([^\s\",}]+)"),
        r"\1***",
    ),
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1***"),
    (re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.S), "[key]"),
]
#: Attributes every LogRecord has; anything else was passed in ``extra=``.
_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "", None, None))) | {"message", "asctime"}


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactFilter(logging.Filter):
    """Masks secrets in the formatted message (arguments included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = (  # extras are masked like the message
                    value
                    if isinstance(value, (int, float, bool, type(None)))
                    else redact(str(value))
                )
        if record.exc_info:
            out["traceback"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))


def setup_logging(*, verbose: bool = False, json_lines: bool = False, server: bool = False) -> None:
    """Configure the root logger once. Servers log at INFO (requests, broadcasts,
    speakers); other commands only warnings unless ``verbose``."""
    handler = logging.StreamHandler()
    handler.addFilter(RedactFilter())
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO if server else logging.WARNING)
    if not verbose:  # chatty libraries: only their warnings
        for name in (
            "apscheduler",
            "aiomqtt",
            "uvicorn",
            "httpx",
            "httpcore",
            "amqtt",
            "firmware_sim",
            "devices.transport",  # every simulated speaker's own connection
        ):
            logging.getLogger(name).setLevel(logging.WARNING)


class RequestLog:
    """ASGI middleware: one log line per request, written when the response ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            principal = scope.get("state", {}).get("principal")
            user = getattr(principal, "username", "-")
            ms = (time.perf_counter() - start) * 1000
            request_logger.info(
                "%s %s %d %.0fms %s",
                scope["method"],
                scope["path"],
                status,
                ms,
                user,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round(ms, 1),
                    "user": user,
                },
            )
