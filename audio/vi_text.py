"""Vietnamese text for speech (temporary minimal version)."""

from __future__ import annotations

import re
import unicodedata


def speakable(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def split_sentences(text: str, max_chars: int = 400) -> list[str]:
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+", text) if p.strip()]
    return parts or [text]
