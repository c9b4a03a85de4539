"""Place names and ids (pure): Vietnamese names cleaned (NFC, one space), ids derived
from them ("Xã Vị Tân" → ``vi-tan``) and kept unique, time zones checked, two spellings
of one name recognised, and the refusals that say why."""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from loa.errors import Conflict, FieldError, InvalidInput

#: Administrative words left out of ids (the name keeps them).
PROVINCE_WORDS = ("tỉnh", "thành phố", "tp.", "tp")
COMMUNE_WORDS = ("xã", "phường", "thị trấn", "đặc khu")
ID_MAX = 63


def slug(name: str, drop: tuple[str, ...] = ()) -> str:
    """An id from a Vietnamese name: no tone marks, ``đ`` → ``d``, lowercase, dashes.
    A leading administrative word in ``drop`` is left out ("Xã Vị Tân" → ``vi-tan``)."""
    text = unicodedata.normalize("NFC", name).strip().lower()
    for word in sorted(drop, key=len, reverse=True):
        if text.startswith(word + " ") and len(text) > len(word) + 1:
            text = text[len(word) + 1 :]
            break
    text = text.replace("đ", "d")
    text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text[:ID_MAX].rstrip("-")


NAME_MAX = 100


def clean_name(name: str, what: str) -> str:
    """NFC, single spaces; at most :data:`NAME_MAX` characters once composed (an NFD
    name is longer as sent); no control characters."""
    text = unicodedata.normalize("NFC", name).strip()
    text = re.sub(r"\s+", " ", text)
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise InvalidInput(
            f"the {what}'s name has control characters",
            errors=[FieldError("name", "no control characters", "invalid")],
        )
    if len(text) > NAME_MAX:
        raise InvalidInput(
            f"the {what}'s name is longer than {NAME_MAX} characters",
            errors=[FieldError("name", f"at most {NAME_MAX} characters", "too_long")],
        )
    if not text or not slug(text):
        raise InvalidInput(
            f"give the {what} a name with letters or digits",
            errors=[FieldError("name", "letters or digits needed", "required")],
        )
    return text


#: Files in the zone database that are not time zones a commune can be in.
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


def check_timezone(value: str) -> str:
    try:
        if value in NOT_ZONES:
            raise ValueError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Asia": a folder of zones
        raise InvalidInput(
            f"unknown time zone {value!r} (for Vietnam: Asia/Ho_Chi_Minh)",
            errors=[FieldError("timezone", "an IANA time zone name", "unknown")],
        ) from None
    return value


def same_name(a: str, b: str) -> bool:
    """Two names of the same place: NFC or NFD, any case, any run of spaces."""

    def key(text: str) -> str:
        return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text).strip()).casefold()

    return key(a) == key(b)


def refuse_same_name(rows: list[dict[str, Any]], name: str, where: str, skip: str = "") -> None:
    """409 when another place of ``rows`` (``id``, ``name``) already has this name."""
    for r in rows:
        if r["id"] != skip and same_name(r["name"], name):
            raise Conflict(
                f"{name} already exists {where} (id {r['id']})",
                errors=[FieldError("name", "already exists", "taken")],
            )


def refused(code: str, message: str) -> Conflict:
    """A refusal with a stable code the pages translate: ``not_empty`` (speakers or
    places still in it), ``has_history``, ``in_use`` (targeted, in a zone, an account's
    area) or ``taken``."""
    return Conflict(message, errors=[FieldError("place", message, code)])


def unique_id(wanted: str | None, name: str, drop: tuple[str, ...], taken: set[str]) -> str:
    if wanted is not None:
        if wanted in taken:
            raise Conflict(
                f"the id {wanted!r} is taken", errors=[FieldError("id", "taken", "taken")]
            )
        return wanted
    base = slug(name, drop)
    candidate, n = base, 2
    while candidate in taken:
        suffix = f"-{n}"
        candidate = base[: ID_MAX - len(suffix)] + suffix
        n += 1
    return candidate
