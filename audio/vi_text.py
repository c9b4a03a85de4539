"""Vietnamese text made ready for a speech engine (pure).

espeak-ng's ``vi`` voice reads digits one by one or in English-like groups, so numbers
are spelt out here, in context, the way a commune announcer reads them:

* times — ``06:30``, ``6h30``, ``6g30``, ``17h``, ``17 giờ 30`` → "sáu giờ ba mươi phút"
  (":00" is dropped: "sáu giờ"); hours 0–23, minutes 0–59, else plain numbers;
* dates — ``24/11/2026``, ``24-11-2026``, ``24/11`` → "ngày hai mươi bốn tháng mười
  một năm hai nghìn không trăm hai mươi sáu" (no second "ngày" if one precedes it;
  April is "tháng tư");
* Vietnamese number format — "." groups thousands (``1.500.000``), "," is the decimal
  mark (``2,5`` → "hai phẩy năm"; leading zeros of a fraction are read: ``1,05`` →
  "một phẩy không năm");
* units after a number (``%``, ``mm``, ``cm``, ``m``, ``km``, ``km/h``, ``m3/s``,
  ``°C``, ``kg``, ``ha``, ``đ``/``VNĐ``), ranges ``10-12`` → "mười đến mười hai" and
  negatives ``-5°C`` → "âm năm độ C";
* every other run of digits is read as a number.

Numbers follow the northern standard: "mốt" for a units 1 after tens of twenty and
more, "tư" for a units 4 after tens of twenty and more, "lăm" for a units 5 after any
tens, "linh" for a zero tens inside a hundred ("một trăm linh năm"), "nghìn", "triệu",
"tỷ"; a zero hundreds inside a larger number is read ("một nghìn không trăm linh năm").
Text is NFC-normalised first, so NFD input (as some keyboards and browsers send) reads
the same.
"""

from __future__ import annotations

import re
import unicodedata

DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
SCALES = ("", "nghìn", "triệu", "tỷ", "nghìn tỷ")
MAX_NUMBER = 10**15 - 1

UNITS = {
    "%": "phần trăm",
    "mm": "mi-li-mét",
    "cm": "xen-ti-mét",
    "km/h": "ki-lô-mét trên giờ",
    "km": "ki-lô-mét",
    "m3/s": "mét khối trên giây",
    "m³/s": "mét khối trên giây",
    "m3": "mét khối",
    "m³": "mét khối",
    "m": "mét",
    "°C": "độ C",
    "độ C": "độ C",
    "kg": "ki-lô-gam",
    "ha": "héc-ta",
    "VNĐ": "đồng",
    "đ": "đồng",
}


def _triple(n: int, *, full: bool) -> str:
    """0–999; ``full`` reads a zero hundreds ("không trăm") inside a larger number."""
    hundreds, tens, units = n // 100, n // 10 % 10, n % 10
    words: list[str] = []
    if hundreds or full:
        words += [DIGITS[hundreds], "trăm"]
    if tens == 0:
        if units and words:
            words.append("linh")
        if units or not words:
            words.append(DIGITS[units])
        return " ".join(words)
    if tens == 1:
        words.append("mười")
    else:
        words += [DIGITS[tens], "mươi"]
    if units == 1 and tens >= 2:
        words.append("mốt")
    elif units == 4 and tens >= 2:
        words.append("tư")
    elif units == 5:
        words.append("lăm")
    elif units:
        words.append(DIGITS[units])
    return " ".join(words)


def number_to_words(n: int) -> str:
    """A non-negative integer (below 10¹⁵) in Vietnamese words."""
    if n < 0 or n > MAX_NUMBER:
        raise ValueError(f"cannot read {n}: numbers from 0 to {MAX_NUMBER} only")
    if n == 0:
        return DIGITS[0]
    groups: list[int] = []
    while n:
        groups.append(n % 1000)
        n //= 1000
    words: list[str] = []
    top = len(groups) - 1
    for i in range(top, -1, -1):
        g = groups[i]
        if g == 0:
            continue
        words.append(_triple(g, full=i < top))
        if SCALES[i]:
            words.append(SCALES[i])
    return " ".join(words)


def _digits(s: str) -> str:
    return " ".join(DIGITS[int(c)] for c in s)


def _number(text: str) -> str:
    """A number written the Vietnamese way: "." thousands, "," decimals."""
    whole, _, frac = text.partition(",")
    value = int(whole.replace(".", ""))
    if value > MAX_NUMBER:
        return _digits(whole.replace(".", ""))
    words = number_to_words(value)
    if frac:
        zeros = len(frac) - len(frac.lstrip("0"))
        rest = frac.lstrip("0")
        tail = [DIGITS[0]] * zeros + ([number_to_words(int(rest))] if rest else [])
        words += " phẩy " + " ".join(tail)
    return words


def _month(m: int) -> str:
    return "tư" if m == 4 else number_to_words(m)


# A number: plain digits, or groups of three after "." (thousands), then ",digits".
_NUM = r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:,\d+)?"
_UNIT = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))

# "24/11/2026", "24/11" and "24-11-2026" (a bare "10-12" is a range, not a date).
_DATE = re.compile(
    r"(?P<ngay>\bngày\s+)?\b(?P<d>\d{1,2})(?P<sep>[/-])(?P<m>\d{1,2})"
    r"(?:(?P=sep)(?P<y>\d{4}))?\b(?![/-]\d)",
    re.IGNORECASE,
)
_TIME = re.compile(
    r"\b(?P<h>\d{1,2})(?:\s*(?::|h|g|giờ)\s*(?P<min>\d{2})(?:\s*phút)?|(?P<hh>\s*(?:h|giờ))(?!\w))",
    re.IGNORECASE,
)
_RANGE = re.compile(
    rf"(?<![\d.,\w-])(?P<a>{_NUM})\s*[-–]\s*(?P<b>{_NUM})(?![\d.,])(?:\s*(?P<u>{_UNIT})(?!\w))?"
)
_WITH_UNIT = re.compile(rf"(?P<neg>(?<![\w\d])-)?(?P<n>{_NUM})\s*(?P<u>{_UNIT})(?![\w])")
_NEGATIVE = re.compile(rf"(?<![\w\d])-(?P<n>{_NUM})(?![\d])")
_MONTH_YEAR = re.compile(r"(?<=\btháng )(?P<m>\d{1,2})/(?P<y>\d{4})\b", re.IGNORECASE)
_PLAIN = re.compile(_NUM)


def _date(m: re.Match[str]) -> str:
    d, mo = int(m["d"]), int(m["m"])
    if not (1 <= d <= 31 and 1 <= mo <= 12) or (m["sep"] == "-" and not m["y"]):
        return m[0]
    prefix = m["ngay"] or "ngày "
    words = f"{prefix}{number_to_words(d)} tháng {_month(mo)}"
    if m["y"]:
        words += f" năm {number_to_words(int(m['y']))}"
    return words


def _month_year(m: re.Match[str]) -> str:
    mo = int(m["m"])
    if not 1 <= mo <= 12:
        return m[0]
    return f"{_month(mo)} năm {number_to_words(int(m['y']))}"


def _time(m: re.Match[str]) -> str:
    h = int(m["h"])
    minutes = int(m["min"]) if m["min"] else 0
    if m["hh"] and h > 23:  # "24h qua", "48 giờ tới": a duration, still hours
        return f"{number_to_words(h)} giờ"
    if h > 23 or minutes > 59:
        return m[0]
    words = f"{number_to_words(h)} giờ"
    if minutes:
        words += f" {number_to_words(minutes)} phút"
    return words


def _with_unit(m: re.Match[str]) -> str:
    sign = "âm " if m["neg"] else ""
    return f"{sign}{_number(m['n'])} {UNITS[m['u']]}"


def _range(m: re.Match[str]) -> str:
    unit = f" {UNITS[m['u']]}" if m["u"] else ""
    return f"{_number(m['a'])} đến {_number(m['b'])}{unit}"


def speakable(text: str) -> str:
    """``text`` with every number, date, time and unit spelt out in Vietnamese words."""
    text = unicodedata.normalize("NFC", text)
    text = _MONTH_YEAR.sub(_month_year, text)
    text = _DATE.sub(_date, text)
    text = _TIME.sub(_time, text)
    text = _RANGE.sub(_range, text)
    text = _WITH_UNIT.sub(_with_unit, text)
    text = _NEGATIVE.sub(lambda m: f"âm {_number(m['n'])}", text)
    return _PLAIN.sub(lambda m: _number(m[0]), text)


_SENTENCE_END = re.compile(r"(?<=[.!?…;])\s+|\n+")


def _cut(piece: str, max_chars: int) -> list[str]:
    """Split an over-long piece at commas, then at spaces, then anywhere."""
    if len(piece) <= max_chars:
        return [piece]
    for sep in (", ", " "):
        parts = piece.split(sep)
        if len(parts) > 1:
            out: list[str] = []
            current = ""
            for part in parts:
                candidate = f"{current}{sep}{part}" if current else part
                if len(candidate) <= max_chars or not current:
                    current = candidate
                else:
                    out.append(current)
                    current = part
            out.append(current)
            if all(len(p) <= max_chars for p in out):
                return [p.strip() for p in out if p.strip()]
            return [q for p in out for q in _cut(p.strip(), max_chars) if q]
    return [piece[i : i + max_chars] for i in range(0, len(piece), max_chars)]


def split_sentences(text: str, max_chars: int = 400) -> list[str]:
    """Sentences (or pieces of at most ``max_chars``) in order, none empty.

    Splits after ``. ! ? … ;`` followed by a space, and at line breaks, so "1.500",
    "2,5" and "06:30" are never cut.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    pieces = [p.strip() for p in _SENTENCE_END.split(unicodedata.normalize("NFC", text))]
    return [c for p in pieces if p for c in _cut(p, max_chars)]
