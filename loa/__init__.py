"""Loa's shared kernel: the root error tree and the injected clock.

Every other package (``broadcaster``, ``devices``, ``schedules``, ``audio``,
``firmware_sim``) may import from here; this package imports none of them.
"""

from __future__ import annotations

__version__ = "0.1.0"
