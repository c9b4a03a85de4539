"""When programmes fire: recurrence rules and their validation (pure, no I/O).

Knows nothing of MQTT or the database: :mod:`schedules.recurrence` decides *when*;
``broadcaster.programmes`` keeps the programmes and their occurrences in the store and
asks the dispatcher to play.
"""

from __future__ import annotations
