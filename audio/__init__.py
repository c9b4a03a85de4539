"""Audio: untrusted input in, safe, even, cheap-to-send packets out; imports only ``loa``.

Knows nothing of MQTT or HTTP, nor of ``broadcaster``, ``schedules`` or ``firmware_sim``
(``tests/test_import_graph.py`` checks). ffmpeg is called from :mod:`audio.ffmpeg` only.
"""

from __future__ import annotations
