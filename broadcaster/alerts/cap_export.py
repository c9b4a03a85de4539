"""Any Loa alert as a CAP 1.2 document (OASIS schema-valid; a test checks with the XSD).

Each state of an alert is its own CAP message, with an identifier and a ``<sent>`` that
never change once exported:

* a draft: ``loa-{id}-draft``, ``<status>Draft</status>``, sent when it was last edited;
* the alert itself once confirmed: ``loa-{id}``, sent when it was confirmed, Actual (or
  Exercise for a test alert);
* each update: ``loa-{id}-u{n}``, sent when it was made, ``<msgType>Update</msgType>``
  referencing the message before it;
* the end: ``loa-{id}-end``, sent when it ended, referencing the last message before
  it — ``<msgType>Cancel</msgType>`` for a cancel or expiry, ``<msgType>Update</msgType>``
  with ``<responseType>AllClear</responseType>`` and the all-clear text for an all-clear.

``<references>`` cite ``sender,identifier,sent`` exactly as that message was exported.
Each ``<info>`` carries the language of its text: ``vi-VN`` for the Vietnamese message,
``en-US`` for the English one (a CAP alert that came in English only has no ``vi-VN``
info until an operator writes one).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET  # output only; input goes through defusedxml

from .model import ALL_CLEAR_TEXT, RISK_SEVERITY, TYPE_NAMES, AlertType

if TYPE_CHECKING:
    from ..services import Services

NS = "urn:oasis:names:tc:emergency:cap:1.2"
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


def stamp(us: int) -> str:
    """A CAP date-time (whole seconds, Vietnam's offset)."""
    return datetime.fromtimestamp(us / 1e6, VN).replace(microsecond=0).isoformat()


def messages(alert: dict[str, Any], updates: list[int]) -> list[tuple[str, str, str]]:
    """(identifier, sent, msgType) of every message this alert has been, in order (pure).

    An alert never confirmed is one Draft message of its own (``loa-{id}-draft``): a
    draft is not the alert that sounded, so it never shares that one's identifier.
    Confirmed, the alert is ``loa-{id}`` sent at the confirm; updates made after it are
    Updates; the end is a Cancel, or for an all-clear an Update whose response is
    AllClear (CAP 1.2's way to say the danger is over).

    CAP times are whole seconds: a message made within the same second as the one
    before it is sent one second after it, so every message has its own ``<sent>``."""
    confirmed = alert.get("confirmed_us")
    if not confirmed:
        last = max([alert["created_us"], *updates])
        return [(f"loa-{alert['id']}-draft", stamp(last // 1_000_000 * 1_000_000), "Alert")]
    after = [u for u in updates if u >= confirmed]  # edits of the draft are in what sounded
    times = [confirmed, *after]
    ids = [f"loa-{alert['id']}", *(f"loa-{alert['id']}-u{n}" for n in range(1, len(times)))]
    kinds = ["Alert"] + ["Update"] * len(after)
    if alert["status"] in ("cancelled", "all_clear", "expired"):
        times.append(alert["ended_us"] or confirmed)
        ids.append(f"loa-{alert['id']}-end")
        kinds.append("Update" if alert["status"] == "all_clear" else "Cancel")
    out = []
    previous = -1
    for ident, at_us, kind in zip(ids, times, kinds, strict=True):
        second = max(at_us // 1_000_000, previous + 1)
        previous = second
        out.append((ident, stamp(second * 1_000_000), kind))
    return out


def export(alert: dict[str, Any], s: Services) -> bytes:
    """The alert's current CAP message."""
    commune = s.store.require_commune(alert["commune_id"])
    hamlets = {h["id"]: h["name"] for h in s.store.hamlets(alert["commune_id"])}
    updates = [
        r["at_us"]
        for r in s.store.query(
            "SELECT at_us FROM alert_events WHERE alert_id=? AND action='update'"
            " ORDER BY at_us, rowid",
            [alert["id"]],
        )
    ]
    sender = f"loa@{alert['commune_id']}.{commune['province_id']}"
    chain = messages(alert, updates)
    identifier, sent, msg_type = chain[-1]
    ET.register_namespace("", NS)

    def sub(parent: ET.Element, name: str, text: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{NS}}}{name}")
        el.text = text
        return el

    root = ET.Element(f"{{{NS}}}alert")
    sub(root, "identifier", identifier)
    sub(root, "sender", sender)
    sub(root, "sent", sent)
    status = "Actual" if alert.get("confirmed_us") else "Draft"
    sub(root, "status", "Exercise" if alert["test"] and status == "Actual" else status)
    sub(root, "msgType", msg_type)
    sub(root, "scope", "Public")
    cleared = alert["status"] == "all_clear" and identifier.endswith("-end")
    if msg_type == "Cancel" or cleared:
        sub(root, "note", alert.get("end_reason") or alert["status"])
    if len(chain) > 1:
        before = chain[-2]
        sub(root, "references", f"{sender},{before[0]},{before[1]}")
    kind = AlertType(alert["type"])
    names = [hamlets.get(t.get("hamlet", ""), "") for t in alert["targets"]]
    whole = any(set(t) == {"commune"} for t in alert["targets"])
    area_desc = commune["name"] if whole else ", ".join(n for n in names if n) or commune["name"]
    texts = []
    if alert["message_vi"] or not alert["message_en"]:
        texts.append(("vi-VN", 0, alert["message_vi"]))
    if alert["message_en"]:
        texts.append(("en-US", 1, alert["message_en"]))
    if cleared:  # what the speakers said when it ended
        place = alert.get("fields", {}).get("place") or commune["name"]
        texts = [(lang, i, ALL_CLEAR_TEXT[i].format(place=place)) for lang, i, _ in texts]
    for lang, name_i, text in texts:
        info = ET.SubElement(root, f"{{{NS}}}info")
        sub(info, "language", lang)
        sub(info, "category", CATEGORY_OF[kind])
        sub(info, "event", TYPE_NAMES[kind][name_i])
        response = "Evacuate" if alert["risk_level"] >= 4 else "Prepare"
        sub(info, "responseType", "AllClear" if cleared else response)
        sub(info, "urgency", alert["urgency"] or "Immediate")
        sub(info, "severity", alert["severity"] or RISK_SEVERITY[alert["risk_level"]])
        sub(info, "certainty", alert["certainty"] or "Observed")
        code = ET.SubElement(info, f"{{{NS}}}eventCode")
        sub(code, "valueName", "loa:type")
        sub(code, "value", kind.value)
        sub(info, "expires", stamp(alert["expires_us"]))
        sub(info, "senderName", f"UBND {commune['name']}")
        sub(info, "headline", alert["title"])
        sub(info, "description", text or alert["title"])
        param = ET.SubElement(info, f"{{{NS}}}parameter")
        sub(param, "valueName", "riskLevel")
        sub(param, "value", str(alert["risk_level"]))
        area = ET.SubElement(info, f"{{{NS}}}area")
        sub(area, "areaDesc", area_desc)
        for t in alert["targets"]:
            for key in ("hamlet", "zone", "device"):
                if key in t:
                    geo = ET.SubElement(area, f"{{{NS}}}geocode")
                    sub(geo, "valueName", f"loa:{key}")
                    sub(geo, "value", t[key])
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body
