"""What simulated speakers did, on the simulator's true clock: the ground truth tests use."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Any


class PlayLog:
    """Events (the last ``keep`` in memory), optionally mirrored to a JSON-lines file.

    The file is flushed at every report (the end of a stream) and at most every
    ``flush_s`` seconds otherwise, so thousands of speakers do not flush per chunk.
    """

    FLUSH_ON = frozenset({"report", "refused", "config", "clock_step"})  # rare, watched

    def __init__(
        self, path: Path | None = None, *, keep: int = 200_000, flush_s: float = 0.5
    ) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=keep)
        self._fh: IO[str] | None = path.open("a", encoding="utf-8") if path else None
        self._lock = threading.Lock()
        self._flush_s = flush_s
        self._flushed = time.monotonic()

    def add(self, **event: Any) -> None:
        with self._lock:
            self.events.append(event)
            if self._fh is not None:
                self._fh.write(json.dumps(event, ensure_ascii=False) + "\n")
                now = time.monotonic()
                if event.get("event") in self.FLUSH_ON or now - self._flushed > self._flush_s:
                    self._fh.flush()
                    self._flushed = now

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e.get("event") == kind and all(e.get(k) == v for k, v in match.items())
        ]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
