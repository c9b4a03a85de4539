"""A broker Loa started is watched: when it dies, its death is logged and it is started
again (same command, configuration and port) with capped exponential back-off.

The control plane keeps serving meanwhile: ``/api/health`` says ``"mqtt": false`` and
actions that need the broker answer 503 ``broker_unavailable``; the MQTT link
reconnects on its own once the broker is back.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable

import anyio

from loa.clock import Clock
from loa.errors import BrokerError

from .process import Broker, wait_listening

logger = logging.getLogger(__name__)

#: A broker that stayed up this long starts the next back-off from the minimum again.
STABLE_S = 60.0


def log_tail(broker: Broker, size: int = 600) -> str:
    try:
        text = (broker.workdir / "broker.log").read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(text[-size:].strip().splitlines()[-5:])


def relaunch(broker: Broker, timeout: float = 10.0) -> None:
    """Start the dead broker again with the same command line, in the same folder (its
    configuration, password file and ACL are there); BrokerError if it does not listen."""
    with (broker.workdir / "broker.log").open("ab") as log:
        proc = subprocess.Popen(
            broker.process.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=broker.workdir,
        )
    if not wait_listening(broker.host, broker.port, timeout, proc) or proc.poll() is not None:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        raise BrokerError(
            f"{broker.kind} could not listen on {broker.host}:{broker.port} again: "
            f"{log_tail(broker)}"
        )
    broker.process = proc


class BrokerSupervisor:
    def __init__(
        self,
        broker: Broker,
        clock: Clock,
        *,
        check_s: float = 0.5,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
        restart: Callable[[Broker], None] = relaunch,
    ) -> None:
        self.broker = broker
        self.clock = clock
        self.check_s = check_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.restart = restart
        self.restarts = 0
        self.deaths = 0

    def _died(self, backoff: float) -> None:
        self.deaths += 1
        logger.error(
            "the MQTT broker (%s on %s:%d) died with exit code %s; restarting in %.1f s%s",
            self.broker.kind,
            self.broker.host,
            self.broker.port,
            self.broker.process.returncode,
            backoff,
            f" (log: {tail})" if (tail := log_tail(self.broker)) else "",
        )

    async def run(self) -> None:
        """Watch until cancelled (the demo's shutdown then stops the broker)."""
        backoff = self.backoff_min_s
        up_since = self.clock.monotonic()
        while True:
            await self.clock.sleep(self.check_s)
            if self.broker.running:
                if self.clock.monotonic() - up_since > STABLE_S:
                    backoff = self.backoff_min_s
                continue
            self._died(backoff)
            while True:
                await self.clock.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                try:
                    await anyio.to_thread.run_sync(self.restart, self.broker)
                except (BrokerError, OSError) as exc:
                    msg = exc.message if isinstance(exc, BrokerError) else str(exc)
                    logger.error("broker restart failed: %s; next try in %.1f s", msg, backoff)
                    continue
                break
            self.restarts += 1
            up_since = self.clock.monotonic()
            logger.warning(
                "the MQTT broker is back on %s:%d (restart #%d)",
                self.broker.host,
                self.broker.port,
                self.restarts,
            )


def supervise_forever(broker: Broker, check_s: float = 0.5, backoff_max_s: float = 30.0) -> None:
    """``loa broker``: the same watch, blocking, until interrupted."""
    backoff = 0.5
    while True:
        time.sleep(check_s)
        if broker.running:
            continue
        logger.error(
            "the MQTT broker died with exit code %s; restarting in %.1f s",
            broker.process.returncode,
            backoff,
        )
        time.sleep(backoff)
        backoff = min(backoff * 2, backoff_max_s)
        try:
            relaunch(broker)
            logger.warning("the MQTT broker is back on %s:%d", broker.host, broker.port)
        except (BrokerError, OSError) as exc:
            logger.error("broker restart failed: %s", exc)
