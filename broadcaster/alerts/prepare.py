"""What an alert asks for (:class:`AlertRequest`), checked and rendered into its columns.

Rendering happens when an alert is created or updated, never when it is confirmed: the
message is chosen (a custom text, an English-only CAP text that waits for its
Vietnamese, or the template), and the siren and spoken message are encoded to one
media item, so *confirm* only starts a stream of audio already on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from loa.clock import Clock
from loa.errors import FieldError, InvalidInput

from ..library.service import Library
from ..places.directory import resolve_in
from ..places.targeting import Resolution, Target
from ..store.store import Store
from .board import _severity
from .model import RISK_LEVELS, TYPE_NAMES, AlertType, render


@dataclass
class AlertRequest:
    commune: str
    type: AlertType
    risk_level: int
    targets: list[Target]
    fields: dict[str, str] = field(default_factory=dict)
    message: str = ""  # a custom text instead of the template
    message_en: str = ""  # the English text (a CAP document's own, or the template's)
    language: str = "vi-VN"  # the language of the text as received (CAP: its <info>)
    media_id: str | None = None  # a recorded message instead of text
    siren: str = "wail"
    repeat: int = 3
    expires_us: int = 0
    reair_hours: int = 0
    title: str = ""
    severity: str = ""
    urgency: str = "Immediate"
    certainty: str = "Observed"
    test: bool = False
    source: str = "api"
    cap_identifier: str = ""
    cap_sender: str = ""
    cap_sent: str = ""
    client_key: str = ""  # the form's idempotency key: a double tap makes one draft


class AlertRenderer:
    """Checks a request against the store and renders its message and audio."""

    def __init__(
        self,
        store: Store,
        library: Library,
        clock: Clock,
        *,
        default_expiry_s: float,
        loudness_lufs: float,
    ) -> None:
        self.store = store
        self.library = library
        self.clock = clock
        self.default_expiry_s = default_expiry_s
        self.loudness_lufs = loudness_lufs  # alerts are rendered louder than bulletins

    async def prepare(self, req: AlertRequest) -> tuple[dict[str, Any], Resolution]:
        """Validate and render an alert's message and audio: the columns that describe it."""
        self.store.require_commune(req.commune)
        if any(t.commune != req.commune for t in req.targets):
            raise InvalidInput(
                "an alert of a commune reaches only that commune's speakers",
                errors=[FieldError("targets", "target outside this commune", "scope")],
            )
        if req.risk_level not in RISK_LEVELS:
            raise InvalidInput(
                "the risk level is 1 to 5 (Quyết định 18/2021/QĐ-TTg)",
                errors=[FieldError("risk_level", "1 to 5", "range")],
            )
        resolution = resolve_in(self.store, req.targets)
        now = self.clock.now_us()
        expires = req.expires_us or now + int(self.default_expiry_s * 1e6)
        if expires <= now:
            raise InvalidInput(
                "the alert has already expired",
                errors=[FieldError("expires", "in the past", "expired")],
            )
        message_vi, message_en = _messages(req)
        title = req.title.strip() or f"{TYPE_NAMES[req.type][0]} — cấp {req.risk_level}"
        media = await self.library.add_alert_audio(
            siren=req.siren,
            text=message_vi or None,
            media_id=req.media_id,
            repeat=req.repeat,
            commune_id=req.commune,
            title=title,
            loudness_lufs=self.loudness_lufs,
        )
        columns = {
            "type": req.type.value,
            "risk_level": req.risk_level,
            "severity": req.severity or _severity(req.risk_level),
            "urgency": req.urgency,
            "certainty": req.certainty,
            "title": title[:200],
            "message_vi": message_vi,
            "message_en": message_en,
            "fields": json.dumps(req.fields, ensure_ascii=False),
            "siren": req.siren,
            "repeat": req.repeat,
            "targets": json.dumps([t.as_dict() for t in req.targets]),
            "media_id": media["id"],
            "reair_hours": req.reair_hours,
            "expires_us": expires,
            "language": "vi-VN" if message_vi or req.media_id else req.language,
        }
        return columns, resolution


def _messages(req: AlertRequest) -> tuple[str, str]:
    """(Vietnamese, English) texts of the alert; both empty for a recorded message."""
    if req.media_id is not None:
        return "", ""
    if req.message.strip():
        return req.message.strip(), req.message_en.strip()
    if req.message_en.strip():
        # English only (a foreign CAP document): nothing foreign is read to villagers;
        # the siren is ready and the alert waits for the Vietnamese message.
        return "", req.message_en.strip()
    return (
        render(req.type, req.fields, req.risk_level, "vi"),
        render(req.type, req.fields, req.risk_level, "en"),
    )
