"""Run the embedded amqtt broker: ``python -m broadcaster.broker.amqtt_broker HOST PORT``.

Only used where no mosquitto binary exists (see broadcaster.broker.process).
"""

from __future__ import annotations

import asyncio
import sys

from amqtt.broker import Broker


async def serve(host: str, port: int) -> None:
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
