"""Settings helpers shared by every section."""

from __future__ import annotations

from pydantic import AfterValidator


def one_of(*allowed: int) -> AfterValidator:
    """An int field limited to ``allowed`` that still accepts "20" from env or --set.

    (``Literal[10, 20]`` would refuse the string "20" that environment variables carry.)
    """

    def check(value: int) -> int:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(map(str, allowed))}")
        return value

    return AfterValidator(check)
