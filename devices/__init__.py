"""Speakers: the wire protocol (written once), the MQTT adapter, presence; imports only ``loa``.

``docs/protocol.md`` is the human copy of this package's protocol modules. Nothing here
imports ``broadcaster``, ``schedules`` or ``firmware_sim`` (``tests/test_import_graph.py``
checks): the controller and the simulated speakers both build on it.
"""

from __future__ import annotations
