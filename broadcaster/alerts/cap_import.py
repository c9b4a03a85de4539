"""CAP 1.2 import: a parsed document (:mod:`.cap`) mapped onto this commune and acted on.

Mapping rules are in :mod:`.cap` (what is read) and :mod:`.vi_match` (how Vietnamese
words and places are matched). The account posting the document is the actor of
every change (audit, alert events); the document's sender is recorded beside it.
Targets are checked against the account's area before anything is created or changed,
and ``<references>`` resolve only to alerts of the commune the document is posted to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loa.errors import Conflict

from ..places.targeting import Target
from . import vi_match
from .cap import SKEW_S, CapAlert, CapInfo, alert_type, bad, parse, risk_level
from .prepare import AlertRequest
from .service import AlertService

if TYPE_CHECKING:
    from ..services import Services


@dataclass(frozen=True)
class Commune:
    """What the mapping needs to know of the commune a document is posted to."""

    id: str
    name: str
    hamlets: list[vi_match.Place]
    zones: list[vi_match.Place]
    positions: dict[str, tuple[float, float]]  # speaker → GPS (those that have one)


@dataclass(frozen=True)
class Mapped:
    targets: list[Target]
    empty_geometry: bool  # a polygon or circle held no speaker


def targets(info: CapInfo, c: Commune) -> Mapped:
    """The places the CAP areas name in this commune (pure; empty targets if none)."""
    found: list[Target] = []
    empty_geometry = False
    hamlet_ids = {h.id for h in c.hamlets}
    zone_ids = {z.id for z in c.zones}
    for area in info.areas:
        coded = []
        for name, value in area.geocodes:
            if name in ("loa:hamlet", "hamlet") and value in hamlet_ids:
                coded.append(Target(c.id, hamlet=value))
            elif name in ("loa:zone", "zone") and value in zone_ids:
                coded.append(Target(c.id, zone=value))
        if coded:
            found += coded
            continue
        if (area.polygons or area.circles) and c.positions:
            inside = [
                d
                for d, p in c.positions.items()
                if any(vi_match.inside_polygon(p, ring) for ring in area.polygons)
                or any(vi_match.inside_circle(p, ctr, r) for ctr, r in area.circles)
            ]
            found += [Target(c.id, device=d) for d in sorted(inside)]
            empty_geometry = empty_geometry or not inside
            continue
        named = vi_match.places(area.desc, c.name, c.hamlets, c.zones)
        if named.whole_commune:
            found.append(Target(c.id))
        found += [Target(c.id, hamlet=h) for h in named.hamlets]
        found += [Target(c.id, zone=z) for z in named.zones]
    if Target(c.id) in found:
        return Mapped([Target(c.id)], False)
    return Mapped(list(dict.fromkeys(found)), empty_geometry and not found)


def _pick(infos: list[CapInfo]) -> CapInfo | None:
    """The Vietnamese ``info`` (None when the document has none)."""
    for info in infos:
        if info.language.lower().startswith("vi"):
            return info
    return None


def _english(infos: list[CapInfo]) -> CapInfo | None:
    for info in infos:
        if not info.language.lower().startswith("vi"):
            return info
    return None


def _message(info: CapInfo) -> str:
    parts = (vi_match.spoken(p) for p in (info.headline, info.description, info.instruction))
    text = " ".join(p if p.endswith((".", "!", "?", ":")) else p + "." for p in parts if p)
    return text or vi_match.spoken(info.event)


def _commune(s: Services, commune: str) -> Commune:
    store = s.store
    row = store.require_commune(commune)
    zones = store.query("SELECT id, name FROM zones WHERE commune_id=?", [commune])
    positions = {
        d["id"]: (float(d["lat"]), float(d["lon"]))
        for d in store.query(
            "SELECT id, lat, lon FROM devices WHERE commune_id=? AND lat IS NOT NULL"
            " AND lon IS NOT NULL",
            [commune],
        )
    }
    return Commune(
        commune,
        row["name"],
        [vi_match.Place(h["id"], h["name"]) for h in store.hamlets(commune)],
        [vi_match.Place(z["id"], z["name"]) for z in zones],
        positions,
    )


#: Checks that the account may act on these targets (raises Forbidden); see access.py.
Allowed = Callable[[list[Target]], None]


async def import_document(
    service: AlertService,
    s: Services,
    commune: str,
    data: bytes,
    *,
    actor: str = "api",
    allowed: Allowed | None = None,
) -> dict[str, Any]:
    """Parse, validate and act on a CAP document for ``commune``.

    ``actor`` is the account posting it (the audit actor); the document's sender is
    recorded beside it. ``allowed`` refuses targets outside the account's area."""
    store = s.store
    place = _commune(s, commune)
    doc = parse(data)
    check: Allowed = allowed or (lambda _t: None)
    now = datetime.fromtimestamp(service.clock.now_us() / 1e6, UTC)
    if (doc.sent - now).total_seconds() > SKEW_S:
        raise bad(
            f"the CAP <sent> ({doc.sent_text}) is in the future: a document cannot have been "
            "sent yet (check the sender's clock and time zone)",
            "sent",
            "future",
        )
    if doc.status == "Draft":
        raise bad("a CAP Draft is not to be acted on", "status", "draft")
    if doc.status == "System" or doc.msg_type in ("Ack", "Error"):
        return {"alert": None, "held": f"CAP {doc.status} {doc.msg_type}: acknowledged, no action"}
    if _known(store, commune, doc.sender, doc.identifier):
        raise Conflict(f"CAP alert {doc.identifier} from {doc.sender} was already imported")
    via = f"CAP {doc.msg_type} {doc.identifier} from {doc.sender}"
    if doc.msg_type == "Cancel":
        earlier = _referenced(store, doc, commune)
        check(service.targets_of(earlier))
        alert = service.cancel(earlier, actor=actor, reason=f"CAP Cancel from {doc.sender}")
        _remember(store, earlier, doc)
        return {"alert": alert, "action": "cancelled"}
    if doc.msg_type == "Update" and all("AllClear" in i.response_types for i in doc.infos):
        earlier = _referenced(store, doc, commune)  # the danger is over (CAP 1.2 AllClear)
        check(service.targets_of(earlier))
        alert = await service.all_clear(earlier, actor=actor)
        _remember(store, earlier, doc)
        return {"alert": alert, "action": "all clear"}
    vi = _pick(doc.infos)
    en = _english(doc.infos)
    info = vi or en or doc.infos[0]
    if info.expires is not None and info.expires <= now:
        raise bad("the CAP alert has already expired", "expires", "expired")
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
        mapped = targets(info, place)
        places = mapped.targets
        if not places and mapped.empty_geometry:
            return {
                "alert": None,
                "held": "no speaker in this area: the CAP polygon or circle holds none of "
                f"{place.name}'s speakers (by their GPS positions); nothing sounds",
            }
        if not places:
            raise bad(
                f"none of the CAP areas names a hamlet or zone of {place.name}",
                "area",
                "no_area",
            )
    check(places)
    expires_us = int(info.expires.timestamp() * 1e6) if info.expires else 0
    title = vi_match.spoken(info.headline or info.event)[:200]
    req = AlertRequest(
        commune=commune,
        type=alert_type(info),
        risk_level=risk_level(info),
        targets=places,
        message=_message(vi) if vi else "",
        message_en=_message(en) if en else "",
        language="vi-VN" if vi else (info.language or "en-US"),
        repeat=3,
        expires_us=expires_us,
        title=title,
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
        earlier = _referenced(store, doc, commune)
        check(service.targets_of(earlier))
        if not vi:  # an English-only update keeps the Vietnamese message already airing
            kept = service.get(earlier)["message_vi"]
            if kept:
                req.message, req.language = kept, "vi-VN"
        await service.update(earlier, req, actor=actor, via=via)
        _remember(store, earlier, doc)
        return {"alert": service.get(earlier), "action": "updated"}
    alert = await service.create(req, actor=actor, via=via)
    _remember(store, alert["id"], doc)
    if not vi:
        return {
            "alert": alert,
            "action": "held: write the Vietnamese message",
            "held": "the CAP document has no Vietnamese text; it is kept in "
            f"{req.language} and waits for an operator to write the Vietnamese message",
        }
    auto = (
        s.settings.alerts.cap_auto_trigger
        and doc.status == "Actual"
        and info.urgency == "Immediate"
        and info.severity in ("Severe", "Extreme")
    )
    if auto:
        alert = service.confirm(alert["id"], actor=actor, via=via)
    return {"alert": alert, "action": "triggered" if auto else "held for confirm"}


def _key(sender: str, identifier: str) -> str:
    return f" {sender},{identifier} "


def _remember(store: Any, alert_id: str, doc: CapAlert) -> None:
    """Record a CAP message acted on for this alert (later ones may reference it)."""
    store.db.execute(
        "UPDATE alerts SET cap_messages = cap_messages || ? WHERE id=?",
        [_key(doc.sender, doc.identifier), alert_id],
    )


def _known(store: Any, commune: str, sender: str, identifier: str) -> str | None:
    """The alert of this commune a CAP message (sender, identifier) was acted on for."""
    rows = store.query(
        "SELECT id FROM alerts WHERE commune_id=? AND instr(cap_messages, ?) > 0"
        " ORDER BY created_us DESC LIMIT 1",
        [commune, _key(sender, identifier)],
    )
    return str(rows[0]["id"]) if rows else None


def _referenced(store: Any, doc: CapAlert, commune: str) -> str:
    """The alert a Cancel or Update refers to, in this commune only."""
    for sender, identifier, _ in reversed(doc.references):
        found = _known(store, commune, sender, identifier)
        if found:
            return found
    raise bad(
        f"the CAP {doc.msg_type} refers to an alert Loa does not have in this commune",
        "references",
        "unknown",
    )
