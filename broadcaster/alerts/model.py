"""What an alert is (pure): types, risk levels, CAP enumerations, message templates.

Risk levels are those of Quyết định 18/2021/QĐ-TTg (natural-disaster risk levels 1–5,
shown in light blue, light yellow, orange, red and purple). Message templates are
Vietnamese first, English second; their fields are named so a form (or a CAP
document) can fill them.
"""

from __future__ import annotations

import string
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from loa.errors import FieldError, InvalidInput


class AlertType(StrEnum):
    TYPHOON = "typhoon"
    FLOOD = "flood"
    DAM_RELEASE = "dam_release"
    LANDSLIDE = "landslide"
    FIRE = "fire"
    EARTHQUAKE = "earthquake"
    EPIDEMIC = "epidemic"
    OTHER = "other"


TYPE_NAMES: dict[AlertType, tuple[str, str]] = {
    AlertType.TYPHOON: ("Bão", "Typhoon"),
    AlertType.FLOOD: ("Lũ, ngập lụt", "Flood"),
    AlertType.DAM_RELEASE: ("Xả lũ hồ chứa", "Dam release"),
    AlertType.LANDSLIDE: ("Sạt lở đất", "Landslide"),
    AlertType.FIRE: ("Cháy", "Fire"),
    AlertType.EARTHQUAKE: ("Động đất", "Earthquake"),
    AlertType.EPIDEMIC: ("Dịch bệnh", "Epidemic"),
    AlertType.OTHER: ("Khẩn cấp", "Emergency"),
}

#: Risk level → (Vietnamese colour, English colour, CSS colour).
RISK_LEVELS: dict[int, tuple[str, str, str]] = {
    1: ("xanh dương nhạt", "light blue", "#9fd4f5"),
    2: ("vàng nhạt", "light yellow", "#fff3a3"),
    3: ("da cam", "orange", "#f59a23"),
    4: ("đỏ", "red", "#d7263d"),
    5: ("tím", "purple", "#7b2d8b"),
}

SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")

#: CAP severity → risk level (when a CAP document does not say one).
SEVERITY_RISK = {"Extreme": 5, "Severe": 4, "Moderate": 3, "Minor": 2, "Unknown": 1}
RISK_SEVERITY = {5: "Extreme", 4: "Severe", 3: "Moderate", 2: "Minor", 1: "Minor"}


class AlertStatus(StrEnum):
    DRAFT = "draft"  # created, waiting for an operator's confirm
    ACTIVE = "active"  # sounding or re-aired until it ends
    CANCELLED = "cancelled"
    ALL_CLEAR = "all_clear"
    EXPIRED = "expired"


TEMPLATES: dict[AlertType, tuple[str, str]] = {
    AlertType.TYPHOON: (
        "Thông báo khẩn: bão {name} đang tiến vào {place}, dự kiến đổ bộ lúc {time}, "
        "gió mạnh cấp {wind}. Cấp độ rủi ro thiên tai cấp {level}. Đề nghị bà con chằng "
        "chống nhà cửa, không ra khỏi nhà, di chuyển đến nơi trú ẩn an toàn.",
        "Emergency: typhoon {name} is approaching {place}, expected landfall at {time}, "
        "wind force {wind}. Disaster risk level {level}. Secure your house, stay indoors "
        "and move to a safe shelter.",
    ),
    AlertType.FLOOD: (
        "Thông báo khẩn: lũ trên sông {river} đang lên nhanh, mực nước tại {place} lúc "
        "{time} là {water_level} mét. Cấp độ rủi ro thiên tai cấp {level}. Đề nghị bà con "
        "vùng trũng thấp di chuyển người và tài sản đến nơi an toàn.",
        "Emergency: the {river} river is rising fast; the water level at {place} at {time} "
        "is {water_level} metres. Disaster risk level {level}. People in low-lying areas "
        "must move to safety with their belongings.",
    ),
    AlertType.DAM_RELEASE: (
        "Thông báo khẩn: hồ {dam} xả lũ từ {time} với lưu lượng {flow} mét khối trên giây. "
        "Vùng hạ du {place} có nguy cơ ngập. Đề nghị bà con không đi qua sông suối, "
        "di chuyển đến nơi cao an toàn.",
        "Emergency: the {dam} reservoir releases water from {time} at {flow} cubic metres "
        "per second. Downstream {place} may flood. Do not cross rivers or streams; move "
        "to high ground.",
    ),
    AlertType.LANDSLIDE: (
        "Thông báo khẩn: nguy cơ sạt lở đất tại {place}. Đề nghị bà con khẩn trương rời "
        "khỏi khu vực nguy hiểm trước {time}.",
        "Emergency: landslide risk at {place}. Leave the danger area before {time}.",
    ),
    AlertType.FIRE: (
        "Thông báo khẩn: đang xảy ra cháy tại {place}. Đề nghị bà con tránh xa khu vực, "
        "nhường đường cho lực lượng chữa cháy, gọi 114 khi cần.",
        "Emergency: fire at {place}. Keep away from the area, make way for firefighters "
        "and call 114 if needed.",
    ),
    AlertType.EARTHQUAKE: (
        "Thông báo khẩn: vừa xảy ra động đất mạnh {magnitude} độ tại {place} lúc {time}. "
        "Đề nghị bà con ra khỏi nhà, tránh xa tường và cột điện.",
        "Emergency: an earthquake of magnitude {magnitude} struck {place} at {time}. Leave "
        "buildings and keep away from walls and power poles.",
    ),
    AlertType.EPIDEMIC: (
        "Thông báo khẩn về dịch {disease} tại {place}. Đề nghị bà con thực hiện "
        "nghiêm các biện pháp phòng dịch và theo dõi thông báo của trạm y tế xã.",
        "Emergency notice about {disease} in {place}. Follow the prevention measures and "
        "the commune health station's notices.",
    ),
    AlertType.OTHER: (
        "Thông báo khẩn: {message}",
        "Emergency: {message}",
    ),
}

ALL_CLEAR_TEXT = (
    "Thông báo: tình huống khẩn cấp tại {place} đã kết thúc. Bà con có thể trở lại "
    "sinh hoạt bình thường.",
    "Notice: the emergency at {place} is over. You may return to normal activities.",
)


def template_fields(kind: AlertType) -> list[str]:
    """The fields a template needs, in order (``level`` is filled from the alert)."""
    names = [f for _, f, _, _ in string.Formatter().parse(TEMPLATES[kind][0]) if f]
    return [n for n in dict.fromkeys(names) if n != "level"]


def render(kind: AlertType, fields: dict[str, str], level: int, lang: str = "vi") -> str:
    """The message text from a template; InvalidInput naming each missing field."""
    missing = [f for f in template_fields(kind) if not str(fields.get(f, "")).strip()]
    if missing:
        raise InvalidInput(
            "the message template needs more fields",
            errors=[
                FieldError(f"fields.{f}", "required by the template", "required") for f in missing
            ],
        )
    text = TEMPLATES[kind][0 if lang == "vi" else 1]
    return text.format(level=level, **{k: str(v).strip() for k, v in fields.items()})


def next_airing(after_us: int, every_hours: int, timezone: str) -> int:
    """The next time on the hour, every ``every_hours`` hours (00:00, 02:00, … local),
    strictly after ``after_us``. Vietnamese practice re-airs storm and flood bulletins
    every 2 hours, day and night, until an update or cancel."""
    if not 1 <= every_hours <= 24:
        raise ValueError("every_hours must be between 1 and 24")
    tz = ZoneInfo(timezone)
    t = datetime.fromtimestamp(after_us / 1e6, tz)
    candidate = t.replace(minute=0, second=0, microsecond=0)
    while True:
        candidate += timedelta(hours=1)
        if candidate.hour % every_hours == 0:
            break
    return int(candidate.timestamp() * 1e6)
