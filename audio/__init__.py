"""Audio: untrusted input in, safe, even, cheap-to-send packets out.

Knows nothing of MQTT or HTTP. ffmpeg is called from :mod:`audio.ffmpeg` only.
"""

from __future__ import annotations
