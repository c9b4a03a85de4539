"""Recurrence rules and the firing engine; imports loa/ and APScheduler only, not broadcaster/.

:mod:`schedules.recurrence` decides *when* (pure rules and their stored form);
:mod:`schedules.engine` writes occurrences ahead, starts them once and settles their
outcomes, through the interfaces in :mod:`schedules.occurrences` that the control plane
(``broadcaster.programmes``) implements; :mod:`schedules.alarm` is the wake-up timer.
"""

from __future__ import annotations
