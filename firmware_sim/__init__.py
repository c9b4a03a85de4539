"""The reference speaker: receive, verify, buffer, play on time, report; fleets of them.

Imports only ``devices`` (the protocol, as real firmware follows docs/protocol.md) and
``loa`` (errors, clock); never ``broadcaster``.
"""

from __future__ import annotations
