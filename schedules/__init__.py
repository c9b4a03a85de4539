"""Programmes, recurrence, conflicts and the timer engine (built in the schedules issue).

Knows nothing of MQTT: it decides *when* and *what*, and asks the dispatcher to play.
"""

from __future__ import annotations
