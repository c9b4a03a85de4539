"""Start an MQTT broker: Mosquitto when installed, else the embedded amqtt (loudly).

Every kind (:class:`.kind.BrokerKind`) runs as a child process on a loopback port with
a generated configuration in a folder of its own, so the controller and the tests treat
them the same way.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from loa.errors import BrokerError

from .amqtt_broker import Amqtt
from .kind import BrokerKind, Launch
from .mosquitto import Mosquitto, find_mosquitto
from .tls import TlsFiles

logger = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(
    host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> bool:
    """True once something accepts on host:port (False if ``proc`` dies first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass
class Broker:
    """A running broker child process."""

    kind: str  # its kind's name: "mosquitto" | "amqtt"
    host: str
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    launch: Launch
    runs: BrokerKind

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def reload(self) -> None:
        """Make the broker re-read its access files: a revoked device is disconnected
        and refused, without restarting the broker."""
        if self.running:
            self.runs.reload(self.process, self.workdir, self.launch)


def choose_kind(mode: str, mosquitto: str = "") -> BrokerKind:
    """``mode`` auto, mosquitto or amqtt → the kind to run (BrokerError if impossible)."""
    binary = find_mosquitto(mosquitto)
    if mode == "mosquitto" and binary is None:
        where = f" at {mosquitto!r}" if mosquitto else ""
        raise BrokerError(f"mosquitto is not installed{where}: apt-get install mosquitto")
    if mode in ("auto", "mosquitto") and binary is not None:
        return Mosquitto(binary)
    if mode in ("auto", "amqtt"):
        return Amqtt("mosquitto not found" if binary is None else "broker.mode is amqtt")
    raise BrokerError(f"unknown broker mode {mode!r}")


def start_broker(
    mode: str = "auto",
    *,
    port: int = 0,
    mosquitto: str = "",
    host: str = "127.0.0.1",
    timeout: float = 10.0,
    auth_dir: Path | None = None,
    tls: tuple[int, TlsFiles] | None = None,
) -> Broker:
    """Start a broker; ``mode`` is auto, mosquitto or amqtt. With ``auth_dir`` (Mosquitto
    only) anonymous access is off and the password file and ACL there apply."""
    port = port or free_port(host)
    if auth_dir is not None:
        auth_dir = auth_dir.resolve()  # the broker runs in its own folder
    runs = choose_kind(mode, mosquitto)
    workdir = Path(tempfile.mkdtemp(prefix="loa-broker-"))
    try:
        launch = runs.prepare(workdir, host, port, auth_dir, tls)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    kind = runs.name
    log = (workdir / "broker.log").open("wb")
    proc = subprocess.Popen(launch.argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    log.close()
    broker = Broker(kind, host, port, proc, workdir, launch, runs)
    try:
        time.sleep(0.05)  # a child that cannot bind exits at once: let it
        up = wait_listening(host, port, timeout, proc) and proc.poll() is None
    except BaseException:  # Ctrl-C or SIGTERM while waiting: never leave it behind
        broker.stop()
        raise
    if not up:
        tail = (workdir / "broker.log").read_text(errors="replace")[-2000:]
        broker.stop()
        raise BrokerError(f"{kind} did not start listening on {host}:{port}: {tail}")
    logger.info("%s broker listening on %s:%d", kind, host, port)
    return broker
