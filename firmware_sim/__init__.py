"""The reference speaker and fleets of it; imports only ``devices``, ``loa`` and ``audio.mp3``.

Receive, verify, buffer, play on time, report. It follows docs/protocol.md through
``devices`` (as real firmware would), ``loa`` (errors, clock) and the pure MP3 frame
splitter of ``audio``; never ``broadcaster`` or ``schedules``
(``tests/test_import_graph.py`` checks).
"""

from __future__ import annotations
