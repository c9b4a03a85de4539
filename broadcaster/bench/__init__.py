"""``loa bench``: figures measured on real parts, written to BENCHMARKS.md."""

from __future__ import annotations
