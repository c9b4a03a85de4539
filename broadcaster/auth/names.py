"""What a user name and a password may be (pure).

User names are NFKC-normalised and lower-cased (``ａｄｍｉｎ`` is ``admin``), made of
letters (any script, Vietnamese with its tone marks included), digits and ``. _ - @``
only (no spaces, zero-width or control characters, no ``<script>``), from one script
family, and must not look like an existing name (``аdmin`` with a Cyrillic ``а``,
``adm1n`` next to ``admin``). Passwords count their length after trimming and are
checked against a small list of the most common ones.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from loa.errors import FieldError, InvalidInput

MIN_PASSWORD = 10
MAX_PASSWORD = 256
_EXTRA = frozenset(".-_@")
#: Letters that look like Latin ones (Cyrillic, Greek) and digits that look like letters.
_CONFUSABLE = str.maketrans(
    {
        "а": "a",
        "е": "e",
        "о": "o",
        "р": "p",
        "с": "c",
        "у": "y",
        "х": "x",
        "і": "i",
        "ј": "j",
        "ѕ": "s",
        "һ": "h",
        "ԁ": "d",
        "ӏ": "l",
        "α": "a",
        "ο": "o",
        "ρ": "p",
        "ν": "v",
        "τ": "t",
        "ι": "i",
        "κ": "k",
        "χ": "x",
        "0": "o",
        "1": "l",
        "i": "l",
        "|": "l",
        "5": "s",
        "_": "-",
        ".": "-",
    }
)
#: The most common passwords of 10+ characters (world lists and Vietnamese ones).
COMMON = frozenset(
    """
    1234567890 0123456789 12345678910 1234567891 0987654321 9876543210 1111111111
    0000000000 1122334455 1234512345 1q2w3e4r5t 1qaz2wsx3edc qwertyuiop asdfghjkl;
    qwerty1234 qwerty12345 qwertyuiop1 password12 password123 password1234
    passw0rd12 iloveyou12 iloveyou123 princess12 sunshine12 football12 baseball12
    welcome123 abc1234567 abcd123456 abcdef1234 a123456789 aa12345678 zxcvbnm123
    administrator admin12345 admin123456 adminadmin rootroot12 changeme12 letmein123
    trustno1234 matkhau123 matkhau1234 matkhaumoi anhyeuem123 anhyeuem12 emyeuanh12
    emyeuanh123 yeuemnhieu vietnam123 vietnam1234 hanoi12345 saigon1234 hochiminh1
    cantho1234 truyenthanh loaphuong1 loa1234567 12345678a@ 123456789a 123456789@
    123456aa@@
    """.split()  # noqa: SIM905 - a word list reads better as text
)


def norm_username(name: str) -> str:
    """The stored form of a user name: NFKC, lower case, trimmed."""
    return unicodedata.normalize("NFKC", name).strip().lower()


def skeleton(name: str) -> str:
    """What a name looks like: look-alike letters folded together."""
    return norm_username(name).translate(_CONFUSABLE)


def _script(ch: str) -> str:
    if not ch.isalpha():
        return ""
    word = unicodedata.name(ch, "").split(" ", 1)[0]
    return word if word in ("CYRILLIC", "GREEK", "LATIN") else "OTHER"


def check_username(name: str, existing: Iterable[str] = ()) -> str:
    """The normalised name, or InvalidInput saying what is wrong with it."""

    def bad(message: str, code: str = "invalid") -> InvalidInput:
        return InvalidInput(message, errors=[FieldError("username", message, code)])

    norm = norm_username(name)
    if not norm or len(norm) > 64:
        raise bad("choose a user name of 1-64 characters")
    for ch in norm:
        if not (ch.isalnum() or ch in _EXTRA or unicodedata.category(ch) in ("Mn", "Mc")):
            shown = ch if ch.isprintable() and not ch.isspace() else f"U+{ord(ch):04X}"
            raise bad(
                f"a user name has letters, digits and . _ - @ only (not {shown!r}); "
                "no spaces or invisible characters"
            )
    if not norm[0].isalnum():
        raise bad("a user name starts with a letter or a digit")
    scripts = {_script(c) for c in norm} - {""}
    if len(scripts) > 1:
        raise bad("a user name is written in one alphabet (not Latin mixed with Cyrillic)")
    mine = skeleton(norm)
    for other in existing:
        if other != norm and skeleton(other) == mine:
            raise bad(f"the user name looks like the existing {other!r}; choose another", "taken")
    return norm


def check_password(password: str, username: str = "") -> None:
    """At least ``MIN_PASSWORD`` characters once trimmed, not a common password, not
    the user name."""

    def bad(message: str, code: str) -> InvalidInput:
        return InvalidInput(message, errors=[FieldError("password", message, code)])

    core = password.strip()
    if len(core) < MIN_PASSWORD:
        raise bad(
            f"the password must have at least {MIN_PASSWORD} characters "
            "(spaces at the ends do not count)",
            "too_short",
        )
    if len(password) > MAX_PASSWORD:
        raise bad(f"the password is too long (at most {MAX_PASSWORD} characters)", "too_long")
    folded = core.casefold()
    if folded in COMMON or len(set(folded)) < 4:
        raise bad("this password is too easy to guess: choose a less common one", "common")
    if username and norm_username(username) in folded:
        raise bad("the password must not contain the user name", "common")
