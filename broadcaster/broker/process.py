"""Start an MQTT broker: Mosquitto when installed, else the embedded amqtt (loudly).

Both run as a child process on a loopback port with a generated configuration, so
the controller and the tests treat them the same way.
"""

from __future__ import annotations

import getpass
import logging
import os
import pwd
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
    access_src: Path | None = None  # where Loa writes the access files
    user: str = ""

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
            if self.access_src is not None:
                _hand_over(self.access_src, self.workdir / "access", self.user)
            self.process.send_signal(signal.SIGHUP)


def broker_user() -> str:
    """Who a spawned Mosquitto runs as: itself when Loa is not root; started as root,
    the unprivileged ``mosquitto`` user (else ``nobody``)."""
    if os.geteuid() != 0:
        return getpass.getuser()
    for name in ("mosquitto", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise BrokerError("started as root, but there is no unprivileged user to run mosquitto as")


def mosquitto_config(
    port: int,
    host: str = "127.0.0.1",
    auth_dir: Path | None = None,
    tls: tuple[int, TlsFiles] | None = None,
    user: str | None = None,
) -> str:
    """The configuration of a spawned Mosquitto.

    With ``auth_dir``: no anonymous clients, the password file and ACL there, and each
    client's id is its user name (``use_username_as_clientid``), so one speaker's
    credentials can never take another's (or the controller's) session. With ``tls``
    too: the plaintext listener is loopback-only and admits only the controller (its own
    password file ``passwd.local``); speakers use the TLS listener.
    """
    if auth_dir is None:
        plain = [f"listener {port} {host}", "allow_anonymous true"]
        secure: list[str] = []
    elif tls is None:
        plain = [
            f"listener {port} {host}",
            "allow_anonymous false",
            f"password_file {auth_dir / 'passwd'}",
            f"acl_file {auth_dir / 'acl'}",
        ]
        secure = []
    else:
        plain = [
            "per_listener_settings true",
            f"listener {port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {auth_dir / 'passwd.local'}",
            f"acl_file {auth_dir / 'acl'}",
            "use_username_as_clientid true",
        ]
        secure = [
            f"listener {tls[0]} {host}",
            f"cafile {tls[1].ca}",
            f"certfile {tls[1].cert}",
            f"keyfile {tls[1].key}",
            "tls_version tlsv1.2",
            "allow_anonymous false",
            f"password_file {auth_dir / 'passwd'}",
            f"acl_file {auth_dir / 'acl'}",
            "use_username_as_clientid true",
        ]
    if auth_dir is not None and tls is None:
        plain.append("use_username_as_clientid true")
    return "\n".join(
        [
            *plain,
            # Started as root, Mosquitto switches to this user before reading its files
            f"user {user or getpass.getuser()}",
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


#: Files a spawned Mosquitto reads from the access folder (copied into its own folder,
#: owned by the user it runs as, at start and at every reload).
ACCESS_FILES = ("passwd", "passwd.local", "acl")


def _hand_over(src: Path | None, dst: Path, user: str) -> None:
    """Copy the access files Mosquitto reads into its own folder, readable by it only."""
    if src is None:
        return
    ids = pwd.getpwnam(user)
    for name in ACCESS_FILES:
        if not (src / name).exists():
            continue
        tmp = dst / f".{name}.tmp"
        shutil.copyfile(src / name, tmp)
        os.chmod(tmp, 0o600)
        if os.geteuid() == 0:
            os.chown(tmp, ids.pw_uid, ids.pw_gid)
        tmp.replace(dst / name)


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
    user = ""
    if mode in ("auto", "mosquitto") and binary is not None:
        user = broker_user()
        own = workdir / "access"  # what mosquitto reads: copies it owns (it may not
        own.mkdir(mode=0o700)  # reach Loa's 0600 files in a root-only folder)
        if os.geteuid() == 0:
            ids = pwd.getpwnam(user)
            for d in (workdir, own):
                os.chown(d, ids.pw_uid, ids.pw_gid)
        _hand_over(auth_dir, own, user)
        if tls is not None:
            copies = TlsFiles(own / "ca.crt", own / "server.crt", own / "server.key")
            for a, b in (
                (tls[1].ca, copies.ca),
                (tls[1].cert, copies.cert),
                (tls[1].key, copies.key),
            ):
                shutil.copyfile(a, b)
                os.chmod(b, 0o600)
                if os.geteuid() == 0:
                    os.chown(b, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
            tls = (tls[0], copies)
        conf = workdir / "mosquitto.conf"
        # Sessions and queued QoS 1 messages (proof of play for the controller) are kept
        # in the broker's folder, so a supervised restart (same folder) loses none.
        conf.write_text(
            mosquitto_config(port, host, own if auth_dir is not None else None, tls, user).replace(
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
        argv = [sys.executable, "-m", "broadcaster.broker.amqtt_broker", host, str(port)]
        kind = "amqtt"
    else:
        raise BrokerError(f"unknown broker mode {mode!r}")
    log = (workdir / "broker.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    log.close()
    broker = Broker(
        kind, host, port, proc, workdir, auth_dir if kind == "mosquitto" else None, user
    )
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
