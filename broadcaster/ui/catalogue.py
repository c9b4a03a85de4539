"""The English catalogue kept in step with the pages: every ``_("…")`` in the templates
and the report, every ``T("…")`` in the scripts is a msgid.

``python -m broadcaster.ui.catalogue`` rewrites ``locale/en/LC_MESSAGES/messages.po``
with exactly those msgids (translations kept, stale entries dropped) and lists the ones
still to translate; after a merge that touched the catalogue on both sides, resolve it
by keeping both sides' entries, then run this. ``--check`` only reports (exit 1 if a
msgid lacks a translation or an entry is stale)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from .i18n import LOCALE_DIR, catalog

HERE = Path(__file__).parent
TEMPLATE_CALL = (re.compile(r'_\("([^"]+)"\)'), re.compile(r"_\('([^']+)'\)"))
SCRIPT_CALL = re.compile(r'\bT\("((?:[^"\\]|\\.)*)"\)')


def msgids() -> set[str]:
    """Every text the pages, the scripts and the printed report show."""
    from ..fleet.report_html import KIND_NAMES

    found: set[str] = set(KIND_NAMES.values())
    sources = [
        *sorted((HERE / "templates").glob("*.html")),
        HERE.parent / "fleet" / "report_html.py",
    ]
    for f in sources:
        text = f.read_text(encoding="utf-8")
        for pattern in TEMPLATE_CALL:
            found |= set(pattern.findall(text))
    for js in sorted((HERE / "static").glob("*.js")):
        found |= set(SCRIPT_CALL.findall(js.read_text(encoding="utf-8")))
    return found


def main(argv: list[str]) -> int:
    wanted = msgids()
    old = catalog("en")
    have = {str(m.id): str(m.string) for m in old or [] if m.id and m.string}
    missing = sorted(m for m in wanted if not have.get(m))
    stale = sorted(set(have) - wanted)
    for m in missing:
        print(f"to translate: {m}")
    if "--check" in argv:
        for m in stale:
            print(f"stale: {m}")
        return 1 if missing or stale else 0
    out = Catalog(locale="en", project="Loa")
    for m in sorted(wanted):
        out.add(m, have.get(m, ""))
    with (LOCALE_DIR / "en" / "LC_MESSAGES" / "messages.po").open("wb") as fh:
        write_po(fh, out, width=100)
    print(f"{len(wanted)} messages, {len(missing)} to translate, {len(stale)} stale dropped")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
