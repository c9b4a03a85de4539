"""Run the embedded amqtt broker: ``python -m broadcaster.broker.amqtt_broker HOST PORT``.

Only used where no mosquitto binary exists (see broadcaster.broker.process).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

from loa.errors import BrokerError

from .kind import Launch
from .tls import TlsFiles

logger = logging.getLogger(__name__)


class Amqtt:
    """The embedded pure-Python broker, as a child process: no access control, no TLS."""

    name = "amqtt"

    def __init__(self, why: str) -> None:
        self.why = why  # why not Mosquitto, said loudly at start

    def prepare(
        self,
        workdir: Path,
        host: str,
        port: int,
        auth_dir: Path | None,
        tls: tuple[int, TlsFiles] | None,
    ) -> Launch:
        if auth_dir is not None or tls is not None:
            raise BrokerError("broker access control and TLS need mosquitto installed")
        logger.warning(
            "%s: starting the embedded pure-Python amqtt broker instead "
            "(fine for a demo; install mosquitto for real use)",
            self.why,
        )
        return Launch([sys.executable, "-m", "broadcaster.broker.amqtt_broker", host, str(port)])

    def reload(self, process: subprocess.Popen[bytes], workdir: Path, launch: Launch) -> None:
        """No access files to re-read."""


async def serve(host: str, port: int) -> None:
    from amqtt.broker import Broker  # only in the broker's own process

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "sys_interval": 0,
        "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
        "topic-check": {"enabled": False},
    }
    broker = Broker(config)
    await broker.start()
    try:
        await asyncio.Event().wait()
    finally:
        await broker.shutdown()


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    asyncio.run(serve(host, port))


if __name__ == "__main__":
    main()
