"""Vietnamese is the source language; other languages come from gettext catalogues
(``locale/{lang}/LC_MESSAGES/messages.po``) read with Babel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("vi", "en")


@cache
def catalog(lang: str) -> Catalog | None:
    path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return None
    with path.open("rb") as fh:
        return read_po(fh, locale=lang)


def translator(lang: str) -> dict[str, str]:
    """msgid → text in ``lang`` (Vietnamese: the msgid itself)."""
    cat = catalog(lang)
    if cat is None:
        return {}
    return {str(m.id): str(m.string) for m in cat if m.id and m.string}


def gettext_for(lang: str):  # type: ignore[no-untyped-def]
    table = translator(lang)

    def gettext(message: str) -> str:
        return table.get(message, message)

    return gettext
