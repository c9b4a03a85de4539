"""Speakers: the wire protocol (written once, here), the MQTT adapter, presence.

``docs/protocol.md`` is the human copy of this package's protocol modules.
"""

from __future__ import annotations
