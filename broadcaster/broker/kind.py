"""What Loa needs from a kind of broker to run it: one small interface.

A kind prepares its folder and says how to start it (:meth:`BrokerKind.prepare`), and
makes a running broker re-read its access files (:meth:`BrokerKind.reload`). Starting,
waiting for the port, stopping and supervising are the same for every kind
(:mod:`.process`, :mod:`.supervisor`). Mosquitto (:mod:`.mosquitto`) and the embedded
amqtt (:mod:`.amqtt_broker`) are the kinds today; a second one implements these two.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .tls import TlsFiles


@dataclass(frozen=True)
class Launch:
    """How to start a prepared broker, and what it reads."""

    argv: list[str]
    access_src: Path | None = None  # where Loa writes the access files (re-read on reload)
    user: str = ""  # who the broker runs as ("" = as Loa)


class BrokerKind(Protocol):
    @property
    def name(self) -> str: ...

    def prepare(
        self,
        workdir: Path,
        host: str,
        port: int,
        auth_dir: Path | None,
        tls: tuple[int, TlsFiles] | None,
    ) -> Launch:
        """Write the configuration into ``workdir`` (the broker's own folder); the
        command line that runs it. BrokerError if this kind cannot do what is asked."""
        ...

    def reload(self, process: subprocess.Popen[bytes], workdir: Path, launch: Launch) -> None:
        """Make the running broker re-read its access files (a revoked device is
        dropped), without a restart; nothing for a kind without access control."""
        ...
