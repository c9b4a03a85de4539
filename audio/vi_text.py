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
* phone numbers — ``0912 345 678``, ``0912.345.678``, ``0912345678``, ``+84 912 345
  678``, ``(0292) 3 123 456`` and any number after "gọi", "điện thoại", "SĐT",
  "đường dây nóng", "hotline", "tổng đài" (``113``, ``1900 1234``) — are read digit by
  digit, a short pause (",") between the groups as written (4-3-3 when unbroken);
  other digit strings with a leading zero (``0123``, ``CCCD 079…``) likewise;
* house numbers — ``12/3``, ``168/25/7`` after "số", "số nhà", "nhà", "hẻm", "ngõ",
  "ngách", "kiệt", "địa chỉ", and any a/b that cannot be a date (``45/12``) or has three
  or more parts — are read "mười hai xuyệt ba" (so ``24/11`` alone stays a date);
* licence plates — ``65A-123.45``, ``51F-67890``, ``59-X1 234.56``: the province code
  as a number, the series by its letter names, the serial digit by digit;
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


# --- numbers that are not quantities: phones, house numbers, plates, codes ------------

#: Vietnamese names of the letters on plates and codes.
LETTERS = {
    "A": "a", "B": "bê", "C": "xê", "D": "dê", "Đ": "đê", "E": "e", "F": "ép", "G": "giê",
    "H": "hát", "I": "i", "K": "ca", "L": "lờ", "M": "mờ", "N": "nờ", "O": "o", "P": "pê",
    "Q": "quy", "R": "rờ", "S": "ét", "T": "tê", "U": "u", "V": "vê", "W": "vê kép",
    "X": "ích", "Y": "i dài", "Z": "dét",
}  # fmt: skip
_SEP = r"[ .\-]"
# After a word that announces a phone number, any digits (with separators) are one.
_PHONE_CONTEXT = re.compile(
    r"(?P<lead>\b(?:gọi(?:\s+số)?|số\s+điện\s+thoại|điện\s+thoại|đt|sđt|dđ|di\s+động|"
    r"đường\s+dây\s+nóng|hotline|tổng\s+đài|zalo|fax)\s*:?\s*(?:số\s+)?)"
    r"(?P<num>\+?\(?\d[\d() .\-]*\d)(?![\d,])",
    re.IGNORECASE,
)
# A Vietnamese number on its own: 0 or +84, then 9 or 10 more digits (mobile, landline).
_PHONE = re.compile(
    rf"(?<![\w.,+/-])(?:(?:\+84{_SEP}?|0)(?:\d{_SEP}?){{7,9}}\d"
    rf"|\(0\d{{2,3}}\)\s?(?:\d{_SEP}?){{5,7}}\d)(?![\w,]|[./-]\d)"
)
# Plates: 65A-123.45, 65A-12345, 51F 678.90, 59-X1 234.56, 29LD-123.45.
_PLATE = re.compile(
    r"(?<![\w.-])(?P<p>\d{2})\s?-?\s?(?P<s>[A-ZĐ]{1,2}\d?)\s?[- ]\s?"
    r"(?P<a>\d{3})\.?(?P<b>\d{2})(?![\w.,]|-\d)"
    r"|(?<![\w.-])(?P<p2>\d{2})(?P<s2>[A-ZĐ]{1,2}\d?)-(?P<a2>\d{4,5})(?![\w.,])"
)
_ADDRESS_CONTEXT = re.compile(
    r"(?P<lead>\b(?:số\s+nhà|nhà\s+số|nhà|số|hẻm|ngõ|ngách|kiệt|địa\s+chỉ|căn\s+hộ)"
    r"\s*:?\s+)(?P<num>\d+[A-Z]?(?:/\d+[A-Z]?)+)\b",
    re.IGNORECASE,
)
# Three or more parts (never a date unless the last is a 4-digit year), or a/b not a date.
_SLASHED = re.compile(r"(?<![\w/.,])(?P<num>\d+[A-Z]?(?:/\d+[A-Z]?)+)(?![\w/]|[.,]\d)")
_LEADING_ZERO = re.compile(r"(?<![\w.,])0\d{3,}(?![\d.,]\d|\w)")


def digit_by_digit(text: str) -> str:
    """Digits read one by one; groups as written (spaces, dots, dashes) become pauses."""
    groups = [g for g in re.split(r"[^\d+]+", text) if g.strip("+")]
    if len(groups) == 1 and len(groups[0]) == 10 and groups[0].isdigit():
        g = groups[0]
        groups = [g[:4], g[4:7], g[7:]]
    out = []
    for g in groups:
        words = "cộng " if g.startswith("+") else ""
        out.append(words + _digits(g.lstrip("+")))
    return ", ".join(out)


def _plate(m: re.Match[str]) -> str:
    province = m["p"] or m["p2"]
    series = m["s"] or m["s2"]
    serial = (m["a"] + m["b"]) if m["a"] else m["a2"]
    letters = " ".join(LETTERS.get(c, c) if not c.isdigit() else DIGITS[int(c)] for c in series)
    return f"{number_to_words(int(province))} {letters}, {_digits(serial)}"


def _slashed(text: str) -> str:
    parts = []
    for part in text.split("/"):
        digits = part.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        suffix = part[len(digits) :]
        words = _number(digits) if digits else ""
        parts.append(f"{words} {LETTERS.get(suffix.upper(), suffix)}".strip())
    return " xuyệt ".join(parts)


def _maybe_address(m: re.Match[str]) -> str:
    """a/b that is a real date stays for the date rule; anything else is a house number."""
    parts = m["num"].split("/")
    plain = all(p.isdigit() for p in parts)
    if plain and len(parts) == 2 and 1 <= int(parts[0]) <= 31 and 1 <= int(parts[1]) <= 12:
        return m[0]
    if plain and len(parts) == 3 and len(parts[2]) == 4:
        return m[0]
    if plain and len(parts) == 2 and len(parts[1]) == 4:  # "4/2026": month and year
        return m[0]
    return _slashed(m["num"])


def _codes(text: str) -> str:
    text = _PHONE_CONTEXT.sub(lambda m: m["lead"] + digit_by_digit(m["num"]), text)
    text = _PHONE.sub(lambda m: digit_by_digit(m[0]), text)
    text = _PLATE.sub(_plate, text)
    text = _ADDRESS_CONTEXT.sub(lambda m: m["lead"] + _slashed(m["num"]), text)
    text = _SLASHED.sub(_maybe_address, text)
    return _LEADING_ZERO.sub(lambda m: _digits(m[0]), text)


def speakable(text: str) -> str:
    """``text`` with every number, date, time and unit spelt out in Vietnamese words."""
    text = unicodedata.normalize("NFC", text)
    text = _codes(text)
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
