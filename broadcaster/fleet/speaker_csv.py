"""Speakers as CSV (pure): what Excel and LibreOffice in Vietnam write, and read back.

UTF-8 with or without a BOM, comma, semicolon or tab separated (Excel's ``sep=;``
first line is understood; a semicolon or tab file may use a decimal comma:
``10,0345``), a header row naming the columns in English or Vietnamese. Every problem
names its row (as the spreadsheet numbers it: the header is row 1) and its column.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime

from devices.reserved import reserved
from loa.errors import FieldError, InvalidInput

from ..places.names import slug

COLUMNS = ("id", "name", "hamlet", "lat", "lon", "model", "sim", "network", "installed", "notes")
#: Header spellings (after :func:`slug`) → column.
ALIASES = {
    "id": "id",
    "ma": "id",
    "ma-loa": "id",
    "device": "id",
    "device-id": "id",
    "name": "name",
    "ten": "name",
    "ten-loa": "name",
    "hamlet": "hamlet",
    "ap": "hamlet",
    "thon": "hamlet",
    "ap-thon": "hamlet",
    "lat": "lat",
    "latitude": "lat",
    "vi-do": "lat",
    "lon": "lon",
    "lng": "lon",
    "longitude": "lon",
    "kinh-do": "lon",
    "model": "model",
    "kieu": "model",
    "sim": "sim",
    "so-sim": "sim",
    "network": "network",
    "mang": "network",
    "installed": "installed",
    "install-date": "installed",
    "installed-on": "installed",
    "ngay-lap": "installed",
    "ngay-lap-dat": "installed",
    "notes": "notes",
    "note": "notes",
    "ghi-chu": "notes",
}
#: A cell starting with one of these is a formula to a spreadsheet (CSV injection): the
#: export writes it behind a ``'``, which the import takes off again.
FORMULA = ("=", "+", "-", "@", "\t", "\r")
LIMITS = {"name": 100, "model": 100, "sim": 40, "network": 20, "notes": 500}
MAX_ROWS = 5000
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass
class SpeakerRow:
    row: int  # as the spreadsheet numbers it
    id: str
    hamlet: str  # as written (a name or an id)
    values: dict[str, object] = field(default_factory=dict)  # name, lat, ... (given ones)


def refuse(row: int, column: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"row {row}, column {column}: {message}; nothing was imported",
        errors=[FieldError(f"row {row}.{column}", message, "invalid")],
    )


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(
            "the file is not UTF-8 text: save it as 'CSV UTF-8' (Excel) or choose UTF-8 "
            "(LibreOffice); nothing was imported"
        ) from None


def _number(text: str, row: int, column: str, low: float, high: float, comma: bool) -> float:
    raw = text.replace(",", ".") if comma else text
    try:
        value = float(raw)
    except ValueError:
        raise refuse(row, column, f"{text!r} is not a number") from None
    if not low <= value <= high:
        raise refuse(row, column, f"{text} is outside {low:g}..{high:g}")
    return value


def _date(text: str, row: int) -> str:
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    raise refuse(row, "installed", f"{text!r} is not a date (2026-11-30 or 30/11/2026)")


def _cell(text: str) -> str:
    """A cell as typed: NFC, trimmed, without the ``'`` the export puts before a formula."""
    text = unicodedata.normalize("NFC", text).strip()
    if text[:1] == "'" and text[1:2] in FORMULA:
        text = text[1:]
    return text


def _safe(value: object) -> object:
    """A cell a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA):
        return "'" + value
    return value


def parse(text: str) -> list[SpeakerRow]:
    """CSV text → rows, or InvalidInput naming the first bad row and column."""
    lines = text.splitlines()
    given = re.fullmatch(r"sep=([,;\t])", lines[0].strip(" ")) if lines else None
    if given:  # Excel's "sep=;" first line: the separator, not a row
        lines, text = lines[1:], text.split("\n", 1)[1] if "\n" in text else ""
    if not lines or not lines[0].strip():
        raise InvalidInput("the file is empty: it needs a header row (id, name, hamlet, ...)")
    header = lines[0]
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    delimiter = given.group(1) if given else max(counts, key=lambda d: counts[d])
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise InvalidInput(f"the file is not valid CSV: {exc}; nothing was imported") from None
    header_cells = list(rows[0])
    while header_cells and not header_cells[-1].strip():  # "id;hamlet;;" from a sheet
        header_cells.pop()  # with formatted empty columns at its right
    columns: list[str] = []
    for name in header_cells:
        key = ALIASES.get(slug(name))
        if key is None:
            known = ", ".join(COLUMNS)
            raise refuse(1, name.strip() or "(empty)", f"unknown column (known: {known})")
        if key in columns:
            raise refuse(1, name, "this column appears twice")
        columns.append(key)
    if "id" not in columns and "name" not in columns:
        raise refuse(1, "id", "the file needs an id or a name column")
    if "hamlet" not in columns:
        raise refuse(1, "hamlet", "the file needs a hamlet column")
    body = rows[1:]
    if len(body) > MAX_ROWS:
        raise InvalidInput(f"at most {MAX_ROWS} speakers per file")
    out: list[SpeakerRow] = []
    seen: dict[str, int] = {}
    comma = delimiter != ","
    for n, cells in enumerate(body, start=2):
        if not any(c.strip() for c in cells):
            continue  # blank lines at the end of a sheet
        if any(c.strip() for c in cells[len(columns) :]):
            raise refuse(n, f"#{len(columns) + 1}", "more cells than columns in the header")
        cell = {k: _cell(cells[i]) if i < len(cells) else "" for i, k in enumerate(columns)}
        values: dict[str, object] = {}
        for key, limit in LIMITS.items():
            if cell.get(key):
                if len(cell[key]) > limit:
                    raise refuse(n, key, f"longer than {limit} characters")
                values[key] = cell[key]
        did = cell.get("id", "")
        if not did:
            if not cell.get("name"):
                raise refuse(n, "id", "give an id or a name")
            did = speaker_id(cell["name"])
            if not did:
                raise refuse(n, "name", f"{cell['name']!r}: no letters or digits to make an id")
        elif not _ID.fullmatch(did):
            raise refuse(n, "id", f"{did!r}: use lowercase letters, digits, - and _ (at most 63)")
        elif reserved(did):
            raise refuse(
                n, "id", f"{did!r} is reserved for the system (loa-…, svc-…): choose another"
            )
        if did in seen:
            raise refuse(n, "id", f"{did!r} is already on row {seen[did]}")
        seen[did] = n
        if not cell.get("hamlet"):
            raise refuse(n, "hamlet", "every speaker needs its hamlet (a name or an id)")
        if len(cell["hamlet"]) > LIMITS["name"]:
            raise refuse(n, "hamlet", f"longer than {LIMITS['name']} characters")
        if cell.get("lat"):
            values["lat"] = _number(cell["lat"], n, "lat", -90, 90, comma)
        if cell.get("lon"):
            values["lon"] = _number(cell["lon"], n, "lon", -180, 180, comma)
        if cell.get("installed"):
            values["installed"] = _date(cell["installed"], n)
        out.append(SpeakerRow(n, did, cell["hamlet"], values))
    if not out:
        raise InvalidInput("the file has a header but no speakers")
    return out


#: Words a speaker's name often starts with, left out of the id made from it ("Loa Bến
#: Đò" → ``ben-do``): ids starting ``loa-`` are the system's own (devices/reserved.py).
SPEAKER_WORDS = ("cụm loa", "loa")


def speaker_id(name: str) -> str:
    """An id from a speaker's name, never a reserved one."""
    did = slug(name, SPEAKER_WORDS)
    return did if not reserved(did) else f"spk-{did}"[:63].rstrip("-")


def render(rows: list[dict[str, object]]) -> str:
    """Speakers → CSV (UTF-8 with a BOM so Excel shows Vietnamese right, comma)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow(["" if r.get(c) is None else _safe(r.get(c)) for c in COLUMNS])
    return "\ufeff" + buf.getvalue()


TEMPLATE_ROWS: list[dict[str, object]] = [
    {
        "id": "vt-ap1-01",  # never loa-…: reserved for the system
        "name": "Cụm loa đầu ấp",
        "hamlet": "Ấp 1",
        "lat": 9.9712,
        "lon": 105.6203,
        "model": "IP-LOA 30W",
        "sim": "0912345678",
        "network": "4G",
        "installed": date(2026, 11, 30).isoformat(),
        "notes": "gần nhà văn hóa",
    }
]
