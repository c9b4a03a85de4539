"""What the emergency page needs from the alert model: types, their templates and
fields (the form), risk levels with their colours, sirens."""

from __future__ import annotations

from typing import Any

from ..alerts.model import RISK_LEVELS, TEMPLATES, TYPE_NAMES, template_fields

#: An example for each template field (shown in the empty input).
EXAMPLES = {
    "river": "Hậu",
    "place": "Ấp 3, xã Vị Tân",
    "time": "06:00",
    "water_level": "2,15",
    "name": "số 9",
    "wind": "12",
    "dam": "Trị An",
    "flow": "850",
    "magnitude": "5,2",
    "disease": "sốt xuất huyết",
    "message": "Đề nghị bà con chú ý.",
}


def emergency_context() -> dict[str, Any]:
    return {
        "types": [(t.value, vi, en) for t, (vi, en) in TYPE_NAMES.items()],
        "risks": RISK_LEVELS,
        "fields": {t.value: template_fields(t) for t in TYPE_NAMES},
        "all_fields": list(dict.fromkeys(f for t in TYPE_NAMES for f in template_fields(t))),
        "examples": EXAMPLES,
        "templates": {t.value: vi for t, (vi, _en) in TEMPLATES.items()},
    }
