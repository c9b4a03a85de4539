"""CAP 1.2 (OASIS Common Alerting Protocol) in and out.

Import: the document is parsed with defusedxml (no DTDs, entities or external
references: billion-laughs and XXE documents are refused), checked against CAP 1.2's
rules (namespace, required elements, enumerations, date-times with a zone, identifier
characters) and mapped onto an alert:

* type from ``eventCode``, then hazard words of ``event``/``headline`` matched with
  their diacritics (:mod:`.vi_match`: "Lũ trên báo động 3" is a flood, "Đám cháy" a
  fire), then ``category``;
* risk level from a ``parameter`` named ``riskLevel`` (or ``capDoRuiRo``), else from
  ``severity`` (Extreme 5, Severe 4, Moderate 3, Minor 2, Unknown 1);
* places from each ``area``: a ``geocode`` ``loa:hamlet``/``loa:zone`` with the id;
  else a ``<polygon>``/``<circle>`` against the speakers' GPS positions (every speaker
  inside sounds; none inside → held, "no speaker in this area"; judged only when the
  commune's speakers have positions); else the places the ``areaDesc`` names, the most
  specific winning ("Ấp 3, xã Vị Tân" is Ấp 3 only);
* the spoken text from the ``info`` in Vietnamese, markup stripped: headline,
  description, instruction. A document with no Vietnamese ``info`` keeps its text as
  ``en-US`` and is held until an operator writes the Vietnamese message (nothing in a
  foreign language is read to villagers unasked).

A ``<sent>`` in the future (beyond a minute of clock skew) or an ``<expires>`` before
``<sent>`` is refused with the reason. ``<references>`` resolve only to alerts of the
commune the document is posted to.

``status`` is honoured: Actual alerts are held for an operator's confirm (or sound at
once when ``alerts.cap_auto_trigger`` is on and the alert is Immediate and Severe or
Extreme); Test and Exercise alerts sound only on ``alerts.cap_test_zone`` and are
held otherwise; System messages and Ack/Error are acknowledged and ignored; Draft is
refused. ``msgType`` Update and Cancel act on the alert their ``references`` name.
A document already imported (same sender and identifier) is refused as a duplicate.

Export (:mod:`.cap_export`) writes any Loa alert as a valid CAP 1.2 document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from xml.etree import ElementTree as ET  # output only; input goes through defusedxml

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from loa.errors import FieldError, InvalidInput

from . import vi_match
from .model import CERTAINTIES, SEVERITIES, SEVERITY_RISK, URGENCIES, AlertType
from .vi_match import fold

__all__ = ["fold", "parse"]

NS = "urn:oasis:names:tc:emergency:cap:1.2"
STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES = ("Public", "Restricted", "Private")
CATEGORIES = (
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
)
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$")
_IDENT = re.compile(r"^[^\s,<&]+$")

#: Clock skew allowed on ``<sent>`` before a document is "sent in the future".
SKEW_S = 60


@dataclass
class CapArea:
    desc: str
    geocodes: list[tuple[str, str]] = field(default_factory=list)
    polygons: list[list[tuple[float, float]]] = field(default_factory=list)
    circles: list[tuple[tuple[float, float], float]] = field(default_factory=list)


@dataclass
class CapInfo:
    language: str
    categories: list[str]
    event: str
    urgency: str
    severity: str
    certainty: str
    event_codes: list[tuple[str, str]]
    expires: datetime | None
    headline: str
    description: str
    instruction: str
    parameters: dict[str, str]
    areas: list[CapArea]
    response_types: list[str] = field(default_factory=list)  # e.g. Evacuate, AllClear


@dataclass
class CapAlert:
    identifier: str
    sender: str
    sent: datetime
    sent_text: str
    status: str
    msg_type: str
    scope: str
    references: list[tuple[str, str, str]]
    infos: list[CapInfo]


def bad(message: str, field: str = "(body)", code: str = "cap") -> InvalidInput:
    return InvalidInput(message, errors=[FieldError(field, message, code)])


def _text(el: ET.Element, name: str, *, required: bool = False, where: str = "alert") -> str:
    child = el.find(f"{{{NS}}}{name}")
    value = (child.text or "").strip() if child is not None else ""
    if required and not value:
        raise bad(f"CAP {where} is missing <{name}>", f"{where}.{name}", "required")
    return value


def _all(el: ET.Element, name: str) -> list[ET.Element]:
    return el.findall(f"{{{NS}}}{name}")


def _enum(value: str, allowed: tuple[str, ...], name: str, where: str) -> str:
    if value not in allowed:
        raise bad(
            f"CAP <{name}> must be one of {', '.join(allowed)}, not {value!r}",
            f"{where}.{name}",
            "enum",
        )
    return value


def _datetime(value: str, name: str) -> datetime:
    if not _DATETIME.match(value):
        raise bad(
            f"CAP <{name}> must be a date-time with a time zone (2026-11-24T06:30:00+07:00),"
            f" not {value!r}",
            name,
            "datetime",
        )
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad(f"CAP <{name}> is not a real date-time: {value!r}", name, "datetime") from None


def parse(data: bytes) -> CapAlert:
    """Parse and validate a CAP 1.2 document; InvalidInput with a clear reason if not."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True)
    except DefusedXmlException:
        raise bad(
            "the CAP document declares a DTD or entities, which are not allowed", code="unsafe"
        ) from None
    except ET.ParseError as exc:
        raise bad(f"the CAP document is not well-formed XML ({exc})", code="xml") from None
    if root.tag != f"{{{NS}}}alert":
        raise bad(
            f'not a CAP 1.2 alert: the root element must be <alert xmlns="{NS}">',
            code="not_cap",
        )
    identifier = _text(root, "identifier", required=True)
    sender = _text(root, "sender", required=True)
    for name, value in (("identifier", identifier), ("sender", sender)):
        if not _IDENT.match(value):
            raise bad(f"CAP <{name}> may not contain spaces, commas, < or &", name, "format")
    sent_text = _text(root, "sent", required=True)
    sent = _datetime(sent_text, "sent")
    status = _enum(_text(root, "status", required=True), STATUSES, "status", "alert")
    msg_type = _enum(_text(root, "msgType", required=True), MSG_TYPES, "msgType", "alert")
    scope = _enum(_text(root, "scope", required=True), SCOPES, "scope", "alert")
    references = []
    for ref in _text(root, "references").split():
        parts = ref.split(",")
        if len(parts) != 3:
            raise bad("CAP <references> must be sender,identifier,sent triples", "references")
        references.append((parts[0], parts[1], parts[2]))
    infos = [_info(i, n) for n, i in enumerate(_all(root, "info"))]
    if msg_type in ("Alert", "Update") and not infos:
        raise bad("a CAP Alert or Update needs at least one <info>", "info", "required")
    if msg_type in ("Update", "Cancel") and not references:
        raise bad(f"a CAP {msg_type} must name the alert it changes in <references>", "references")
    for n, info in enumerate(infos):
        if info.expires is not None and info.expires < sent:
            raise bad(
                f"the CAP <expires> ({info.expires.isoformat()}) is before its <sent> "
                f"({sent.isoformat()}): the alert would have ended before it was sent",
                f"info[{n}].expires",
                "expires_before_sent",
            )
    return CapAlert(identifier, sender, sent, sent_text, status, msg_type, scope, references, infos)


def _info(el: ET.Element, n: int) -> CapInfo:
    where = f"info[{n}]"
    categories = [(c.text or "").strip() for c in _all(el, "category")]
    if not categories:
        raise bad(f"CAP {where} is missing <category>", f"{where}.category", "required")
    for c in categories:
        _enum(c, CATEGORIES, "category", where)
    expires_text = _text(el, "expires")
    areas = []
    for a in _all(el, "area"):
        desc = _text(a, "areaDesc", required=True, where=f"{where}.area")
        areas.append(
            CapArea(
                desc,
                [(_text(g, "valueName"), _text(g, "value")) for g in _all(a, "geocode")],
                [_polygon((p.text or "").strip(), where) for p in _all(a, "polygon")],
                [_circle((c.text or "").strip(), where) for c in _all(a, "circle")],
            )
        )
    return CapInfo(
        language=_text(el, "language") or "en-US",
        categories=categories,
        event=_text(el, "event", required=True, where=where),
        urgency=_enum(
            _text(el, "urgency", required=True, where=where), URGENCIES, "urgency", where
        ),
        severity=_enum(
            _text(el, "severity", required=True, where=where), SEVERITIES, "severity", where
        ),
        certainty=_enum(
            _text(el, "certainty", required=True, where=where), CERTAINTIES, "certainty", where
        ),
        event_codes=[(_text(c, "valueName"), _text(c, "value")) for c in _all(el, "eventCode")],
        expires=_datetime(expires_text, "expires") if expires_text else None,
        headline=_text(el, "headline"),
        description=_text(el, "description"),
        instruction=_text(el, "instruction"),
        parameters={_text(p, "valueName"): _text(p, "value") for p in _all(el, "parameter")},
        areas=areas,
        response_types=[(r.text or "").strip() for r in _all(el, "responseType")],
    )


def _pair(raw: str, what: str, where: str) -> tuple[float, float]:
    try:
        lat_s, lon_s = raw.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise bad(
            f"CAP <{what}> points are 'latitude,longitude' (WGS 84), not {raw[:40]!r}",
            f"{where}.area.{what}",
            "geometry",
        ) from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise bad(f"CAP <{what}> point {raw[:40]!r} is off the globe", f"{where}.area.{what}")
    return lat, lon


def _polygon(text: str, where: str) -> list[tuple[float, float]]:
    points = [_pair(p, "polygon", where) for p in text.split()]
    if len(points) < 4 or points[0] != points[-1]:
        raise bad(
            "a CAP <polygon> needs at least four points, the last the same as the first",
            f"{where}.area.polygon",
            "geometry",
        )
    return points


def _circle(text: str, where: str) -> tuple[tuple[float, float], float]:
    parts = text.split()
    if len(parts) != 2:
        raise bad("a CAP <circle> is 'latitude,longitude radius-in-km'", f"{where}.area.circle")
    try:
        radius = float(parts[1])
    except ValueError:
        radius = -1.0
    if not 0 <= radius <= 20_000:
        raise bad(f"CAP <circle> radius {parts[1]!r} is not a distance in km", "circle")
    return _pair(parts[0], "circle", where), radius


def alert_type(info: CapInfo) -> AlertType:
    return vi_match.hazard(info.event, info.headline, info.event_codes, info.categories)


def risk_level(info: CapInfo) -> int:
    for name in ("riskLevel", "capDoRuiRo", "cap_do_rui_ro"):
        raw = info.parameters.get(name, "")
        if raw.strip().isdigit() and 1 <= int(raw) <= 5:
            return int(raw)
    return SEVERITY_RISK[info.severity]
