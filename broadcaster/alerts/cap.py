"""CAP 1.2 (OASIS Common Alerting Protocol) in and out.

Import: the document is parsed with defusedxml (no DTDs, entities or external
references: billion-laughs and XXE documents are refused), checked against CAP 1.2's
rules (namespace, required elements, enumerations, date-times with a zone, identifier
characters) and mapped onto an alert:

* type from ``eventCode``/``event``/``category`` keywords (Vietnamese and English);
* risk level from a ``parameter`` named ``riskLevel`` (or ``capDoRuiRo``), else from
  ``severity`` (Extreme 5, Severe 4, Moderate 3, Minor 2, Unknown 1);
* places from each ``area``: a ``geocode`` ``loa:hamlet``/``loa:zone`` with the id, or
  an ``areaDesc`` naming hamlets or the commune (accents and case ignored);
* the spoken text from the ``info`` in Vietnamese if there is one: headline,
  description, instruction.

``status`` is honoured: Actual alerts are held for an operator's confirm (or sound at
once when ``alerts.cap_auto_trigger`` is on and the alert is Immediate and Severe or
Extreme); Test and Exercise alerts sound only on ``alerts.cap_test_zone`` and are
held otherwise; System messages and Ack/Error are acknowledged and ignored; Draft is
refused. ``msgType`` Update and Cancel act on the alert their ``references`` name.
A document already imported (same sender and identifier) is refused as a duplicate.

Export writes any Loa alert as a valid CAP 1.2 document (Vietnamese ``info`` first,
English second).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET  # output only; input goes through defusedxml

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from loa.errors import Conflict, FieldError, InvalidInput

from ..targeting import Target
from .model import (
    CERTAINTIES,
    RISK_SEVERITY,
    SEVERITIES,
    SEVERITY_RISK,
    TYPE_NAMES,
    URGENCIES,
    AlertType,
)
from .service import AlertRequest, AlertService

if TYPE_CHECKING:
    from ..services import Services

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

KEYWORDS: list[tuple[AlertType, tuple[str, ...]]] = [
    (AlertType.DAM_RELEASE, ("xa lu", "ho chua", "thuy dien", "dam", "reservoir", "spillway")),
    (
        AlertType.TYPHOON,
        ("bao", "typhoon", "cyclone", "hurricane", "tropical storm", "ap thap nhiet doi"),
    ),
    (AlertType.LANDSLIDE, ("sat lo", "landslide", "mudslide", "lu quet", "debris flow")),
    (AlertType.FLOOD, ("flood", "flooding", "lu", "ngap", "ngap lut", "inundation")),
    (AlertType.EARTHQUAKE, ("dong dat", "earthquake", "seismic", "tsunami", "song than")),
    (AlertType.FIRE, ("dam chay", "vu chay", "chay rung", "hoa hoan", "fire", "wildfire")),
    (AlertType.EPIDEMIC, ("dich benh", "benh dich", "epidemic", "pandemic", "outbreak")),
]
#: Common words that contain a keyword but name no hazard ("thông báo", "cảnh báo"...).
NOT_HAZARDS = re.compile(
    r"\b(thong bao|canh bao|bao cao|bao ve|dam bao|bao gom|bao nhieu|bao tin|du bao)\b"
)


def fold(text: str) -> str:
    """Lowercase, no accents, đ → d: for matching place names and keywords."""
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return " ".join("".join(c for c in text if not unicodedata.combining(c)).lower().split())


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
    areas: list[tuple[str, list[tuple[str, str]]]]  # (areaDesc, geocodes)


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


def _bad(message: str, field: str = "(body)", code: str = "cap") -> InvalidInput:
    return InvalidInput(message, errors=[FieldError(field, message, code)])


def _text(el: ET.Element, name: str, *, required: bool = False, where: str = "alert") -> str:
    child = el.find(f"{{{NS}}}{name}")
    value = (child.text or "").strip() if child is not None else ""
    if required and not value:
        raise _bad(f"CAP {where} is missing <{name}>", f"{where}.{name}", "required")
    return value


def _all(el: ET.Element, name: str) -> list[ET.Element]:
    return el.findall(f"{{{NS}}}{name}")


def _enum(value: str, allowed: tuple[str, ...], name: str, where: str) -> str:
    if value not in allowed:
        raise _bad(
            f"CAP <{name}> must be one of {', '.join(allowed)}, not {value!r}",
            f"{where}.{name}",
            "enum",
        )
    return value


def _datetime(value: str, name: str) -> datetime:
    if not _DATETIME.match(value):
        raise _bad(
            f"CAP <{name}> must be a date-time with a time zone (2026-11-24T06:30:00+07:00),"
            f" not {value!r}",
            name,
            "datetime",
        )
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"CAP <{name}> is not a real date-time: {value!r}", name, "datetime") from None


def parse(data: bytes) -> CapAlert:
    """Parse and validate a CAP 1.2 document; InvalidInput with a clear reason if not."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True)
    except DefusedXmlException:
        raise _bad(
            "the CAP document declares a DTD or entities, which are not allowed", code="unsafe"
        ) from None
    except ET.ParseError as exc:
        raise _bad(f"the CAP document is not well-formed XML ({exc})", code="xml") from None
    if root.tag != f"{{{NS}}}alert":
        raise _bad(
            f'not a CAP 1.2 alert: the root element must be <alert xmlns="{NS}">',
            code="not_cap",
        )
    identifier = _text(root, "identifier", required=True)
    sender = _text(root, "sender", required=True)
    for name, value in (("identifier", identifier), ("sender", sender)):
        if not _IDENT.match(value):
            raise _bad(f"CAP <{name}> may not contain spaces, commas, < or &", name, "format")
    sent_text = _text(root, "sent", required=True)
    sent = _datetime(sent_text, "sent")
    status = _enum(_text(root, "status", required=True), STATUSES, "status", "alert")
    msg_type = _enum(_text(root, "msgType", required=True), MSG_TYPES, "msgType", "alert")
    scope = _enum(_text(root, "scope", required=True), SCOPES, "scope", "alert")
    references = []
    for ref in _text(root, "references").split():
        parts = ref.split(",")
        if len(parts) != 3:
            raise _bad("CAP <references> must be sender,identifier,sent triples", "references")
        references.append((parts[0], parts[1], parts[2]))
    infos = [_info(i, n) for n, i in enumerate(_all(root, "info"))]
    if msg_type in ("Alert", "Update") and not infos:
        raise _bad("a CAP Alert or Update needs at least one <info>", "info", "required")
    if msg_type in ("Update", "Cancel") and not references:
        raise _bad(f"a CAP {msg_type} must name the alert it changes in <references>", "references")
    return CapAlert(identifier, sender, sent, sent_text, status, msg_type, scope, references, infos)


def _info(el: ET.Element, n: int) -> CapInfo:
    where = f"info[{n}]"
    categories = [(c.text or "").strip() for c in _all(el, "category")]
    if not categories:
        raise _bad(f"CAP {where} is missing <category>", f"{where}.category", "required")
    for c in categories:
        _enum(c, CATEGORIES, "category", where)
    expires_text = _text(el, "expires")
    areas = []
    for a in _all(el, "area"):
        desc = _text(a, "areaDesc", required=True, where=f"{where}.area")
        codes = [(_text(g, "valueName"), _text(g, "value")) for g in _all(a, "geocode")]
        areas.append((desc, codes))
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
    )


def alert_type(info: CapInfo) -> AlertType:
    words = " ".join([info.event, *(v for _, v in info.event_codes), info.headline])
    text = " " + NOT_HAZARDS.sub(" ", re.sub(r"[^\w\s]", " ", fold(words))) + " "
    for kind, keys in KEYWORDS:
        if any(f" {k} " in text for k in keys):
            return kind
    if "Fire" in info.categories:
        return AlertType.FIRE
    if "Health" in info.categories:
        return AlertType.EPIDEMIC
    return AlertType.OTHER


def risk_level(info: CapInfo) -> int:
    for name in ("riskLevel", "capDoRuiRo", "cap_do_rui_ro"):
        raw = info.parameters.get(name, "")
        if raw.strip().isdigit() and 1 <= int(raw) <= 5:
            return int(raw)
    return SEVERITY_RISK[info.severity]


def targets(
    info: CapInfo, commune: str, hamlets: list[dict[str, Any]], zones: set[str], commune_name: str
) -> list[Target]:
    """The places the CAP areas name in this commune (empty if none)."""
    by_name = {fold(h["name"]): h["id"] for h in hamlets}
    ids = {h["id"] for h in hamlets}
    found: list[Target] = []
    for desc, codes in info.areas:
        for name, value in codes:
            if name in ("loa:hamlet", "hamlet") and value in ids:
                found.append(Target(commune, hamlet=value))
            elif name in ("loa:zone", "zone") and value in zones:
                found.append(Target(commune, zone=value))
        folded = fold(desc)
        if fold(commune_name) and fold(commune_name) in folded:
            return [Target(commune)]
        for part in re.split(r"[,;/]| va | and ", folded):
            hamlet = by_name.get(part.strip())
            if hamlet:
                found.append(Target(commune, hamlet=hamlet))
    return list(dict.fromkeys(found))


def _pick(infos: list[CapInfo]) -> CapInfo:
    for info in infos:
        if info.language.lower().startswith("vi"):
            return info
    return infos[0]


async def import_document(
    service: AlertService, s: Services, commune: str, data: bytes
) -> dict[str, Any]:
    """Parse, validate and act on a CAP document for ``commune``."""
    store = s.store
    row = store.require_commune(commune)
    doc = parse(data)
    if doc.status == "Draft":
        raise _bad("a CAP Draft is not to be acted on", "status", "draft")
    if doc.status == "System" or doc.msg_type in ("Ack", "Error"):
        return {"alert": None, "held": f"CAP {doc.status} {doc.msg_type}: acknowledged, no action"}
    if store.query(
        "SELECT 1 FROM alerts WHERE cap_sender=? AND cap_identifier=?",
        [doc.sender, doc.identifier],
    ):
        raise Conflict(f"CAP alert {doc.identifier} from {doc.sender} was already imported")
    if doc.msg_type == "Cancel":
        earlier = _referenced(store, doc)
        alert = service.cancel(earlier, actor=f"cap:{doc.sender}", reason="CAP Cancel")
        return {"alert": alert, "action": "cancelled"}
    info = _pick(doc.infos)
    now = datetime.now(UTC)
    if info.expires is not None and info.expires <= now:
        raise _bad("the CAP alert has already expired", "expires", "expired")
    test = doc.status in ("Exercise", "Test")
    zone = s.settings.alerts.cap_test_zone
    if test and not zone:
        return {
            "alert": None,
            "held": f"CAP {doc.status} message: it never sounds on public speakers "
            "(set alerts.cap_test_zone to try it on test speakers)",
        }
    if test:
        places = [Target(commune, zone=zone)]
    else:
        places = targets(
            info, commune, store.hamlets(commune), store.zone_ids(commune), row["name"]
        )
        if not places:
            raise _bad(
                f"none of the CAP areas names a hamlet or zone of {row['name']}",
                "area",
                "no_area",
            )
    message = " ".join(p for p in (info.headline, info.description, info.instruction) if p)
    expires_us = int(info.expires.timestamp() * 1e6) if info.expires else 0
    req = AlertRequest(
        commune=commune,
        type=alert_type(info),
        risk_level=risk_level(info),
        targets=places,
        message=message or info.event,
        repeat=3,
        expires_us=expires_us,
        title=(info.headline or info.event)[:200],
        severity=info.severity,
        urgency=info.urgency,
        certainty=info.certainty,
        test=test,
        source="cap",
        cap_identifier=doc.identifier,
        cap_sender=doc.sender,
        cap_sent=doc.sent_text,
    )
    if doc.msg_type == "Update":
        earlier = _referenced(store, doc)
        alert = await service.update(earlier, req, actor=f"cap:{doc.sender}")
        store.db.table("alerts").update(
            earlier, {"cap_identifier": doc.identifier, "cap_sent": doc.sent_text}
        )
        return {"alert": service.get(earlier), "action": "updated"}
    alert = await service.create(req, actor=f"cap:{doc.sender}")
    auto = (
        s.settings.alerts.cap_auto_trigger
        and doc.status == "Actual"
        and info.urgency == "Immediate"
        and info.severity in ("Severe", "Extreme")
    )
    if auto:
        alert = service.confirm(alert["id"], actor=f"cap:{doc.sender}")
    return {"alert": alert, "action": "triggered" if auto else "held for confirm"}


def _referenced(store: Any, doc: CapAlert) -> str:
    for sender, identifier, _ in reversed(doc.references):
        rows = store.query(
            "SELECT id FROM alerts WHERE cap_sender=? AND cap_identifier=?"
            " ORDER BY created_us DESC LIMIT 1",
            [sender, identifier],
        )
        if rows:
            return str(rows[0]["id"])
    raise _bad(
        f"the CAP {doc.msg_type} refers to an alert Loa does not have", "references", "unknown"
    )


# --- export -------------------------------------------------------------------------------

CATEGORY_OF = {
    AlertType.TYPHOON: "Met",
    AlertType.FLOOD: "Met",
    AlertType.DAM_RELEASE: "Infra",
    AlertType.LANDSLIDE: "Geo",
    AlertType.FIRE: "Fire",
    AlertType.EARTHQUAKE: "Geo",
    AlertType.EPIDEMIC: "Health",
    AlertType.OTHER: "Other",
}
VN = timezone(timedelta(hours=7))


def _stamp(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, VN).replace(microsecond=0).isoformat()


def export(alert: dict[str, Any], s: Services) -> bytes:
    """Any Loa alert as a CAP 1.2 document."""
    commune = s.store.require_commune(alert["commune_id"])
    hamlets = {h["id"]: h["name"] for h in s.store.hamlets(alert["commune_id"])}
    ET.register_namespace("", NS)

    def sub(parent: ET.Element, name: str, text: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{NS}}}{name}")
        el.text = text
        return el

    root = ET.Element(f"{{{NS}}}alert")
    sub(root, "identifier", f"loa-{alert['id']}")
    sub(root, "sender", f"loa@{alert['commune_id']}.{commune['province_id']}")
    sub(root, "sent", _stamp(alert["confirmed_us"] or alert["created_us"]))
    sub(root, "status", "Exercise" if alert["test"] else "Actual")
    ended = alert["status"] in ("cancelled", "all_clear")
    sub(root, "msgType", "Cancel" if ended else "Alert")
    sub(root, "scope", "Public")
    if ended:
        sub(root, "note", alert.get("end_reason") or alert["status"])
        original = f"{root[1].text},loa-{alert['id']},{_stamp(alert['created_us'])}"
        root[0].text = f"loa-{alert['id']}-end"
        sub(root, "references", original)
    kind = AlertType(alert["type"])
    names = [hamlets.get(t.get("hamlet", ""), t.get("hamlet", "")) for t in alert["targets"]]
    whole = any(set(t) == {"commune"} for t in alert["targets"])
    area_desc = commune["name"] if whole else ", ".join(n for n in names if n) or commune["name"]
    for lang, name_i, text in (
        ("vi-VN", 0, alert["message_vi"]),
        ("en-US", 1, alert["message_en"]),
    ):
        if not text and lang == "en-US":
            continue
        info = ET.SubElement(root, f"{{{NS}}}info")
        sub(info, "language", lang)
        sub(info, "category", CATEGORY_OF[kind])
        sub(info, "event", TYPE_NAMES[kind][name_i])
        sub(info, "responseType", "Evacuate" if alert["risk_level"] >= 4 else "Prepare")
        sub(info, "urgency", alert["urgency"] or "Immediate")
        sub(info, "severity", alert["severity"] or RISK_SEVERITY[alert["risk_level"]])
        sub(info, "certainty", alert["certainty"] or "Observed")
        code = ET.SubElement(info, f"{{{NS}}}eventCode")
        sub(code, "valueName", "loa:type")
        sub(code, "value", kind.value)
        sub(info, "expires", _stamp(alert["expires_us"]))
        sub(info, "senderName", f"UBND {commune['name']}")
        sub(info, "headline", alert["title"])
        sub(info, "description", text or alert["title"])
        param = ET.SubElement(info, f"{{{NS}}}parameter")
        sub(param, "valueName", "riskLevel")
        sub(param, "value", str(alert["risk_level"]))
        area = ET.SubElement(info, f"{{{NS}}}area")
        sub(area, "areaDesc", area_desc)
        for t in alert["targets"]:
            for key in ("hamlet", "zone"):
                if key in t:
                    geo = ET.SubElement(area, f"{{{NS}}}geocode")
                    sub(geo, "valueName", f"loa:{key}")
                    sub(geo, "value", t[key])
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body
