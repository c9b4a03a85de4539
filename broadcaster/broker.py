"""Start an MQTT broker: Mosquitto when installed, else the embedded amqtt (loudly).

Both run as a child process on a loopback port with a generated configuration, so
the controller and the tests treat them the same way.
"""

from __future__ import annotations

import getpass
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from loa.errors import BrokerError

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


def find_mosquitto(configured: str = "") -> str | None:
    """The configured binary, else ``mosquitto`` on PATH or in /usr/sbin (Debian)."""
    if configured:
        return shutil.which(configured)
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


@dataclass
class Broker:
    """A running broker child process."""

    kind: str  # "mosquitto" | "amqtt"
    host: str
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path

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
        """Make Mosquitto re-read its password file and ACL (SIGHUP): a revoked device
        is disconnected and refused, without restarting the broker."""
        if self.kind == "mosquitto" and self.running:
            self.process.send_signal(signal.SIGHUP)


def mosquitto_config(
    port: int,
    host: str = "127.0.0.1",
    auth_dir: Path | None = None,
    tls: tuple[int, TlsFiles] | None = None,
) -> str:
    access = (
        [
            "allow_anonymous false",
            f"password_file {auth_dir / 'passwd'}",
            f"acl_file {auth_dir / 'acl'}",
        ]
        if auth_dir is not None
        else ["allow_anonymous true"]
    )
    secure = (
        [
            f"listener {tls[0]} {host}",
            f"cafile {tls[1].ca}",
            f"certfile {tls[1].cert}",
            f"keyfile {tls[1].key}",
            "tls_version tlsv1.2",
        ]
        if tls is not None
        else []
    )
    return "\n".join(
        [
            f"listener {port} {host}",
            # Run as root, Mosquitto would switch to the user "mosquitto", who cannot read
            # Loa's 0600 files: keep the user that started it.
            f"user {getpass.getuser()}",
            *access,
            "max_packet_size 1048576",
            *secure,
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "max_keepalive 3600",
            "",
        ]
    )


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
    binary = find_mosquitto(mosquitto)
    if mode == "mosquitto" and binary is None:
        where = f" at {mosquitto!r}" if mosquitto else ""
        raise BrokerError(f"mosquitto is not installed{where}: apt-get install mosquitto")
    workdir = Path(tempfile.mkdtemp(prefix="loa-broker-"))
    if mode in ("auto", "mosquitto") and binary is not None:
        conf = workdir / "mosquitto.conf"
        # Sessions and queued QoS 1 messages (proof of play for the controller) are kept
        # in the broker's folder, so a supervised restart (same folder) loses none.
        conf.write_text(
            mosquitto_config(port, host, auth_dir, tls).replace(
                "persistence false\n",
                f"persistence true\npersistence_location {workdir}/\nautosave_interval 1\n",
            )
        )
        argv = [binary, "-c", str(conf)]
        kind = "mosquitto"
    elif auth_dir is not None or tls is not None:
        raise BrokerError("broker access control and TLS need mosquitto installed")
    elif mode in ("auto", "amqtt"):
        logger.warning(
            "%s: starting the embedded pure-Python amqtt broker instead "
            "(fine for a demo; install mosquitto for real use)",
            "mosquitto not found" if binary is None else "broker.mode is amqtt",
        )
        argv = [sys.executable, "-m", "broadcaster.amqtt_broker", host, str(port)]
        kind = "amqtt"
    else:
        raise BrokerError(f"unknown broker mode {mode!r}")
    log = (workdir / "broker.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    log.close()
    broker = Broker(kind, host, port, proc, workdir)
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
