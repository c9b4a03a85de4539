"""Mosquitto, the default broker kind: its configuration (listeners, password file and
ACL, TLS), the user it runs as, and the access files it re-reads on SIGHUP."""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from loa.errors import BrokerError

from .kind import Launch
from .tls import TlsFiles


def find_mosquitto(configured: str = "") -> str | None:
    """The configured binary, else ``mosquitto`` on PATH or in /usr/sbin (Debian)."""
    if configured:
        return shutil.which(configured)
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


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


class Mosquitto:
    """A spawned ``mosquitto``: its own folder holds the configuration and copies of the
    access files and TLS material, owned by the user it runs as."""

    name = "mosquitto"

    def __init__(self, binary: str) -> None:
        self.binary = binary

    def prepare(
        self,
        workdir: Path,
        host: str,
        port: int,
        auth_dir: Path | None,
        tls: tuple[int, TlsFiles] | None,
    ) -> Launch:
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
        return Launch([self.binary, "-c", str(conf)], auth_dir, user)

    def reload(self, process: subprocess.Popen[bytes], workdir: Path, launch: Launch) -> None:
        """SIGHUP: Mosquitto re-reads its password file and ACL (fresh copies)."""
        if launch.access_src is not None:
            _hand_over(launch.access_src, workdir / "access", launch.user)
        process.send_signal(signal.SIGHUP)
