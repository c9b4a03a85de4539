"""One error tree for the whole project.

Third-party errors are wrapped where they enter (``raise ... from exc``); the HTTP
layer turns every :class:`LoaError` into one JSON shape and the command line into one
line of text.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of an input, for people and for forms."""

    field: str
    message: str
    code: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "code": self.code}


class LoaError(Exception):
    """Root of every error Loa raises on purpose."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors: list[FieldError] = list(errors or [])


def first_loa_error(exc: BaseException) -> LoaError | None:
    """The LoaError inside ``exc`` (itself, or within nested exception groups)."""
    if isinstance(exc, LoaError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = first_loa_error(inner)
            if found is not None:
                return found
    return None


def exit_with_one_line(exc: BaseException, prog: str) -> int:
    """For command lines: print a LoaError (even inside a group) as one line, return 2.

    Anything else is a bug and is re-raised with its traceback.
    """
    err = first_loa_error(exc)
    if err is None:
        raise exc
    print(f"{prog}: error: {err.message}", file=sys.stderr)
    return 2


class ConfigError(LoaError):
    """Settings are missing, unknown or of the wrong type."""

    code = "config"


class InvalidInput(LoaError):
    """Input from a person or a client is malformed; nothing was changed."""

    status = 400
    code = "invalid_input"


class NotFound(LoaError):
    status = 404
    code = "not_found"


class Conflict(LoaError):
    status = 409
    code = "conflict"


class PayloadTooLarge(LoaError):
    status = 413
    code = "too_large"


class UnsupportedMedia(LoaError):
    status = 415
    code = "unsupported_media"


class ProtocolError(LoaError):
    """A wire message (topic, frame, JSON) does not follow docs/protocol.md."""

    status = 400
    code = "protocol"


class SignatureError(ProtocolError):
    """A frame's signature does not verify, or was made with an unknown key."""

    code = "bad_signature"


class AudioError(LoaError):
    """An audio file was refused or could not be processed."""

    status = 422
    code = "audio_rejected"

    def __init__(self, message: str, *, detail: str = "", errors: list[FieldError] | None = None):
        super().__init__(message, errors=errors)
        self.detail = detail  # e.g. ffmpeg's stderr tail, for logs and operators


class ToolMissing(LoaError):
    """A required external program (ffmpeg, mosquitto, espeak-ng) is not installed."""

    code = "tool_missing"
    status = 503


class BrokerError(LoaError):
    """The MQTT broker could not be started or reached."""

    status = 503
    code = "broker_unavailable"


class DiskFull(LoaError):
    """The server's disk (database, media) has no space left; nothing was changed."""

    status = 507
    code = "disk_full"

    def __init__(self, message: str = "the server's disk is full") -> None:
        super().__init__(message)


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT from the OS, or SQLite's "database or disk is full"."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.DatabaseError) and (
        "disk is full" in str(exc) or getattr(exc, "sqlite_errorcode", 0) == 13  # SQLITE_FULL
    )


class Unauthorized(LoaError):
    """No valid session or token: log in first."""

    status = 401
    code = "unauthorized"


class Forbidden(LoaError):
    """Logged in, but this account may not do this (role, area, CSRF)."""

    status = 403
    code = "forbidden"


class TooManyRequests(LoaError):
    """A rate limit or a lock-out; ``retry_after_s`` says when to try again."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float = 60.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
