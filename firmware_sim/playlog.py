"""What simulated speakers did, on the simulator's true clock: the ground truth tests use."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO, Any


class PlayLog:
    """Append-only list of events, optionally mirrored to a JSON-lines file."""

    def __init__(self, path: Path | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self._fh: IO[str] | None = path.open("a", encoding="utf-8") if path else None
        self._lock = threading.Lock()

    def add(self, **event: Any) -> None:
        with self._lock:
            self.events.append(event)
            if self._fh is not None:
                self._fh.write(json.dumps(event, ensure_ascii=False) + "\n")
                self._fh.flush()

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
