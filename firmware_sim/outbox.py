"""Proof of play not yet taken by the broker: a bounded queue kept on disk.

A real speaker writes it to flash; here one JSON-lines file per speaker. Reports are
appended as they are made and the file is rewritten when the broker takes one, so a
restart (power cut, reboot, firmware update) resends whatever was still waiting.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from pathlib import Path

from devices.messages import PlayReport, dump, parse
from loa.errors import ProtocolError

logger = logging.getLogger(__name__)


class Outbox:
    def __init__(self, path: Path | None, limit: int = 1000) -> None:
        self.path = path
        self.limit = limit
        self._items: deque[PlayReport] = deque(maxlen=limit)
        self.dropped = 0  # the oldest, pushed out by the bound
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            return
        for line in lines[-self.limit :]:
            try:
                self._items.append(parse(PlayReport, line))
            except ProtocolError:
                logger.warning("outbox %s: a damaged line was skipped", path)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __getitem__(self, index: int) -> PlayReport:
        return self._items[index]

    def append(self, report: PlayReport) -> None:
        if len(self._items) == self.limit:
            self.dropped += 1
            self._items.append(report)
            self._rewrite()
            return
        self._items.append(report)
        if self.path is not None:
            with self.path.open("ab") as fh:
                fh.write(dump(report) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())

    def popleft(self) -> PlayReport:
        report = self._items.popleft()
        self._rewrite()
        return report

    def _rewrite(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".part")
        try:
            tmp.write_bytes(b"".join(dump(r) + b"\n" for r in self._items))
            tmp.replace(self.path)
        except OSError as exc:  # a full flash: keep going from memory
            tmp.unlink(missing_ok=True)
            logger.warning("outbox %s not saved: %s", self.path, exc.strerror)
