"""Reading a CAP document's words the way a Vietnamese reader does (pure).

In Vietnamese the tone marks are the word: *bão* (typhoon) is not *báo* (to report,
"báo động" = alarm), *đám* (a blaze, "đám cháy") is not *đập* (dam) nor English
"dam". So hazard words and place names are matched as whole words *with* their
diacritics (NFC, lower case); an accent-free match ("bao", "dam chay") is only a
fallback used when nothing matches exactly, so it can never beat an exact match.

* :func:`hazard` — the alert type: a ``loa:type`` (or SAME) event code first, then the
  longest hazard phrase in the event and headline (a hazard word beats an alarm-level
  phrase: "Lũ trên báo động 3" is a flood; "báo động 1/2/3" alone is a flood alarm
  level), then the CAP category. The description is not searched: it often names
  other hazards in passing ("mưa lớn sau bão").
* :func:`places` — what an ``areaDesc`` names in this commune: the most specific place
  wins ("Ấp 3, xã Vị Tân" is Ấp 3 only); several hamlets in one description are
  several hamlets ("Ấp 3; Ấp 4", "Ấp 3 và Ấp 4"); a hamlet qualified by another
  commune ("Ấp 3, xã Vị Bình") is not ours.
* :func:`inside_polygon`, :func:`inside_circle` — a speaker's GPS position against a
  CAP ``<polygon>`` or ``<circle>``.
* :func:`spoken` — text fit to be read aloud: markup and entities gone.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from .model import AlertType


def norm(text: str) -> str:
    """NFC, lower case, single spaces: how words are compared (diacritics kept)."""
    return " ".join(unicodedata.normalize("NFC", text).lower().split())


def fold(text: str) -> str:
    """Lower case without accents, đ → d: the fallback comparison only."""
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return " ".join("".join(c for c in text if not unicodedata.combining(c)).lower().split())


def words(text: str) -> list[str]:
    """Words of a text (NFC, lower case, diacritics kept; punctuation dropped)."""
    return re.findall(r"\w+", norm(text))


#: Hazard phrases, Vietnamese with their tone marks (both spellings where old and new
#: orthography differ: thủy/thuỷ, hòa/hoà) and English.
HAZARDS: dict[AlertType, tuple[str, ...]] = {
    AlertType.DAM_RELEASE: (
        "xả lũ",
        "xả tràn",
        "xả nước hồ",
        "hồ chứa",
        "hồ thủy điện",
        "hồ thuỷ điện",
        "thủy điện",
        "thuỷ điện",
        "vỡ đập",
        "đập",
        "dam release",
        "dam",
        "reservoir",
        "spillway",
        "dam failure",
    ),
    AlertType.TYPHOON: (
        "bão",
        "siêu bão",
        "áp thấp nhiệt đới",
        "typhoon",
        "super typhoon",
        "cyclone",
        "tropical cyclone",
        "hurricane",
        "tropical storm",
        "tropical depression",
    ),
    AlertType.LANDSLIDE: (
        "sạt lở",
        "sạt lở đất",
        "lở đất",
        "lũ quét",
        "lũ ống",
        "sụt lún",
        "landslide",
        "mudslide",
        "debris flow",
    ),
    AlertType.FLOOD: (
        "lũ",
        "lụt",
        "lũ lụt",
        "ngập",
        "ngập lụt",
        "ngập úng",
        "triều cường",
        "nước dâng",
        "flood",
        "flooding",
        "flash flood",
        "inundation",
        "storm surge",
    ),
    AlertType.EARTHQUAKE: ("động đất", "sóng thần", "earthquake", "seismic", "tsunami"),
    AlertType.FIRE: (
        "cháy",
        "đám cháy",
        "vụ cháy",
        "cháy rừng",
        "cháy nổ",
        "hỏa hoạn",
        "hoả hoạn",
        "fire",
        "wildfire",
        "bushfire",
    ),
    AlertType.EPIDEMIC: (
        "dịch",
        "dịch bệnh",
        "bệnh dịch",
        "ổ dịch",
        "epidemic",
        "pandemic",
        "outbreak",
    ),
}
#: Flood warning levels ("báo động 1/2/3", "BĐ3"): a flood, but weaker than a hazard word.
ALARM_LEVEL = re.compile(r"\b(báo động|bđ)\s*(số\s*)?(1|2|3|i{1,3})\b")
ALARM_LEVEL_FOLDED = re.compile(r"\b(bao dong|bd)\s*(so\s*)?(1|2|3|i{1,3})\b")
#: Accent-free phrases that contain a hazard word but name none ("thong bao", "du bao",
#: "canh bao" all fold "báo" to "bao"; "dam bao" is "đảm bảo").
NOT_HAZARDS_FOLDED = re.compile(
    r"\b(thong bao|canh bao|bao cao|bao ve|dam bao|bao gom|bao nhieu|bao tin|du bao|"
    r"bao dong|bao dam|bao chi|tin bao)\b"
)
#: Event codes: Loa's own and the US SAME codes other CAP feeds use.
SAME_CODES: dict[str, AlertType] = {
    "HUW": AlertType.TYPHOON,
    "HUA": AlertType.TYPHOON,
    "TRW": AlertType.TYPHOON,
    "TRA": AlertType.TYPHOON,
    "FLW": AlertType.FLOOD,
    "FLA": AlertType.FLOOD,
    "FLS": AlertType.FLOOD,
    "CFW": AlertType.FLOOD,
    "FFW": AlertType.FLOOD,
    "FFA": AlertType.FLOOD,
    "DBW": AlertType.DAM_RELEASE,
    "DBA": AlertType.DAM_RELEASE,
    "FRW": AlertType.FIRE,
    "WFW": AlertType.FIRE,
    "EQW": AlertType.EARTHQUAKE,
    "TSW": AlertType.EARTHQUAKE,
    "TSA": AlertType.EARTHQUAKE,
}
#: CAP categories and the hazards they are consistent with (a tie-breaker), and the
#: hazard a category alone means.
CATEGORY_KINDS: dict[str, tuple[AlertType, ...]] = {
    "Met": (AlertType.TYPHOON, AlertType.FLOOD),
    "Geo": (AlertType.LANDSLIDE, AlertType.EARTHQUAKE),
    "Fire": (AlertType.FIRE,),
    "Health": (AlertType.EPIDEMIC,),
    "Infra": (AlertType.DAM_RELEASE,),
    "Env": (AlertType.FLOOD, AlertType.LANDSLIDE),
}
KINDS = frozenset(k.value for k in AlertType)
CATEGORY_ONLY = {"Fire": AlertType.FIRE, "Health": AlertType.EPIDEMIC}


@dataclass(frozen=True)
class Match:
    kind: AlertType
    phrase: str
    exact: bool  # with its diacritics
    length: int  # in words
    position: int  # word index in the text


def _find(phrase: list[str], text: list[str]) -> int:
    n = len(phrase)
    for i in range(len(text) - n + 1):
        if text[i : i + n] == phrase:
            return i
    return -1


def has_marks(text: str) -> bool:
    """Whether the text is written with Vietnamese letters (any diacritic or đ)."""
    return (
        any(unicodedata.combining(c) for c in unicodedata.normalize("NFD", text))
        or "đ" in text.lower()
    )


def hazard_matches(text: str) -> list[Match]:
    """Every hazard phrase in ``text``, as whole words with their diacritics; a text
    typed without any accents ("Lu tren bao dong 3") is compared accent-free instead
    (an accent-free comparison never runs on accented text, so "đàm" never reads as
    "dam" and "báo" never as "bão")."""
    exact = has_marks(text)
    if exact:
        text_words = words(ALARM_LEVEL.sub(" ", norm(text)))
    else:
        folded = NOT_HAZARDS_FOLDED.sub(" ", ALARM_LEVEL_FOLDED.sub(" ", fold(text)))
        text_words = re.findall(r"\w+", folded)
    found = []
    for kind, phrases in HAZARDS.items():
        for p in phrases:
            at = _find(words(p) if exact else re.findall(r"\w+", fold(p)), text_words)
            if at >= 0:
                found.append(Match(kind, p, exact, len(words(p)), at))
    return found


def _best(matches: list[Match], categories: Iterable[str]) -> AlertType | None:
    if not matches:
        return None
    fits = {k for c in categories for k in CATEGORY_KINDS.get(c, ())}
    best = max(matches, key=lambda m: (m.exact, m.length, m.kind in fits, -m.position))
    return best.kind


def hazard(
    event: str,
    headline: str,
    event_codes: Iterable[tuple[str, str]],
    categories: Iterable[str],
) -> AlertType:
    """The alert type a CAP ``<info>`` describes (see the module's docstring)."""
    categories = list(categories)
    codes = list(event_codes)
    for name, value in codes:
        if name.strip().lower() in ("loa:type", "type") and value.strip() in KINDS:
            return AlertType(value.strip())
        if name.strip().upper() == "SAME" and value.strip().upper() in SAME_CODES:
            return SAME_CODES[value.strip().upper()]
    code_words = " . ".join(v for _, v in codes)
    kind = _best(hazard_matches(f"{event} . {code_words} . {headline}"), categories)
    if kind is not None:
        return kind
    for text in (event, headline):
        if ALARM_LEVEL.search(norm(text)) or ALARM_LEVEL_FOLDED.search(fold(text)):
            return AlertType.FLOOD
    for c in categories:
        if c in CATEGORY_ONLY:
            return CATEGORY_ONLY[c]
    return AlertType.OTHER


# --- places ------------------------------------------------------------------------------

#: Words that open an administrative unit above the hamlet.
COMMUNE_UNIT = re.compile(r"^(xã|phường|thị trấn|commune|ward|township)\s+(.+)$")
HIGHER_UNIT = re.compile(
    r"^(huyện|quận|thị xã|thành phố|tp\.?|tỉnh|district|province|city)(\s+.+)?$"
)
#: The same, for descriptions typed without accents (compared folded), and English.
COMMUNE_UNIT_FOLDED = re.compile(r"^(xa|phuong|thi tran|commune of|ward of)\s+(.+)$")
COMMUNE_UNIT_EN = re.compile(r"^(.+?)\s+(commune|ward|township)$")
HIGHER_UNIT_FOLDED = re.compile(r"^(huyen|quan|thi xa|thanh pho|tp\.?|tinh)(\s+.+)?$")
_UNIT_START = re.compile(
    r"\s+(?=(?:xã|phường|thị trấn|huyện|quận|thị xã|thành phố|tỉnh)\s)", re.IGNORECASE
)
_UNIT_START_FOLDED = re.compile(
    r"\s+(?=(?:xa|phuong|thi tran|huyen|quan|thi xa|thanh pho|tinh)\s)", re.IGNORECASE
)
_LIST = re.compile(r"\s*(?:[,;/&\n]|\s-\s|\bvà\b|\band\b)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Place:
    id: str
    name: str


@dataclass(frozen=True)
class Named:
    """What an areaDesc names in one commune: hamlets and zones, or the whole commune."""

    hamlets: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    whole_commune: bool = False


def _segments(desc: str) -> list[str]:
    out = []
    splitter = _UNIT_START if has_marks(desc) else _UNIT_START_FOLDED
    for part in _LIST.split(unicodedata.normalize("NFC", desc)):
        out += [s.strip() for s in splitter.split(part) if s.strip()]
    return out


def _commune_unit(seg: str) -> str | None:
    """The name of the commune a segment names ("xã Vị Tân", "Vi Tan commune")."""
    m = COMMUNE_UNIT.match(norm(seg)) if has_marks(seg) else COMMUNE_UNIT_FOLDED.match(fold(seg))
    if m:
        return m.group(2)
    m = COMMUNE_UNIT_EN.match(norm(seg))
    return m.group(1) if m else None


def _higher_unit(seg: str) -> bool:
    if has_marks(seg):
        return HIGHER_UNIT.match(norm(seg)) is not None
    return HIGHER_UNIT_FOLDED.match(fold(seg)) is not None


def _strip_unit(name: str) -> str:
    return _commune_unit(name) or norm(name)


def _names_in(segment: str, places: list[Place]) -> list[str]:
    """Ids of the places named in a segment, longest names first, whole words only
    ("Ấp 3" is not in "Ấp 3A"); accent-free only when nothing matches exactly."""
    for prep in (norm, fold):
        text = prep(segment)
        found = []
        for p in sorted(places, key=lambda p: -len(p.name)):
            pattern = r"(?<!\w)" + re.escape(prep(p.name)) + r"(?!\w)"
            if re.search(pattern, text):
                found.append(p.id)
                text = re.sub(pattern, " ", text)
        if found:
            return found
    return []


def _is_commune(name: str, commune_name: str) -> bool:
    ours = _strip_unit(commune_name)
    return _strip_unit(name) == ours or fold(_strip_unit(name)) == fold(ours)


def places(desc: str, commune_name: str, hamlets: list[Place], zones: list[Place]) -> Named:
    """What ``desc`` names in the commune called ``commune_name`` (empty if nothing)."""
    pending_h: list[str] = []
    pending_z: list[str] = []
    hs: list[str] = []
    zs: list[str] = []
    whole = False
    for seg in _segments(desc):
        if _commune_unit(seg) or _is_commune(seg, commune_name):
            if _is_commune(seg, commune_name):
                if not pending_h and not pending_z and not hs and not zs:
                    whole = True
                hs += pending_h
                zs += pending_z
            pending_h, pending_z = [], []  # another commune's hamlets are not ours
            continue
        if _higher_unit(seg):
            continue
        z = _names_in(seg, zones)
        h = [] if z else _names_in(seg, hamlets)
        pending_h += h
        pending_z += z
    hs += pending_h
    zs += pending_z
    if hs or zs:
        return Named(tuple(dict.fromkeys(hs)), tuple(dict.fromkeys(zs)))
    return Named(whole_commune=whole)


# --- geometry ----------------------------------------------------------------------------

Point = tuple[float, float]  # (lat, lon), WGS 84


def inside_polygon(p: Point, ring: list[Point]) -> bool:
    """Ray casting; a point on an edge counts as inside."""
    lat, lon = p
    inside = False
    for (a_lat, a_lon), (b_lat, b_lon) in zip(ring, ring[1:] + ring[:1], strict=True):
        if (a_lat, a_lon) == (lat, lon):
            return True
        if (a_lat > lat) != (b_lat > lat):
            x = a_lon + (lat - a_lat) * (b_lon - a_lon) / (b_lat - a_lat)
            if abs(x - lon) < 1e-12:
                return True
            if x > lon:
                inside = not inside
    return inside


def distance_km(a: Point, b: Point) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = (
        math.sin((la2 - la1) / 2) ** 2
        + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(min(1.0, h)))


def inside_circle(p: Point, centre: Point, radius_km: float) -> bool:
    return distance_km(p, centre) <= radius_km


# --- text to be read aloud ---------------------------------------------------------------

_TAG = re.compile(r"<[^<>]{0,500}>")
_BREAK = re.compile(r"<\s*(br|p|/p|li|div|/div)\b[^<>]{0,200}>", re.IGNORECASE)


def spoken(text: str) -> str:
    """Text without markup (``<br />``, ``<p>``, entities), NFC, single spaces; a line
    break ends a sentence."""
    text = html.unescape(html.unescape(text))  # "&amp;lt;br /&amp;gt;" is seen in feeds
    text = _TAG.sub(" ", _BREAK.sub("\n", text))
    lines = [re.sub(r"\s+", " ", line).strip().lstrip("*•-– ") for line in text.splitlines()]
    lines = [ln for ln in lines if ln.strip(" .")]
    out = " ".join(ln if ln.endswith((".", "!", "?", ":", ";", ",")) else ln + "." for ln in lines)
    if len(lines) == 1 and not text.strip().endswith("."):
        out = out[:-1] if out.endswith(".") and not lines[0].endswith(".") else out
    return unicodedata.normalize("NFC", out)
