"""``loa conformance``: check a speaker against docs/protocol.md over MQTT.

The kit acts as the speaker's controller, so it signs with a key the speaker trusts:
the controller's own signing key (``--signing-key``, by default the data folder's
``loa-data/signing.key``), checked against the keys in the speaker's provisioning file
before anything is sent. See docs/conformance.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path
from urllib.parse import urlsplit

import anyio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devices import provisioning
from devices.signing import Signer
from loa.clock import SkewedClock, SystemClock
from loa.errors import BrokerError, ConfigError, LoaError

from .kit import Endpoint, Kit, Timing
from .provision import write_provision
from .report import Row, table
from .session import Session


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--broker",
        required=True,
        help="the broker the speaker is connected to: mqtt://host:port or mqtts://host:port",
    )
    p.add_argument("--device", required=True, help="the speaker's id")
    p.add_argument(
        "--provision",
        type=Path,
        required=True,
        metavar="FILE",
        help="the speaker's provisioning file (commune, hamlet and the keys it trusts)",
    )
    p.add_argument(
        "--signing-key",
        type=Path,
        default=Path("loa-data/signing.key"),
        help="the controller's Ed25519 private key (PEM) the speaker trusts "
        "(security.signing_key; default loa-data/signing.key); never created by a session",
    )
    p.add_argument(
        "--write-provision",
        action="store_true",
        help="instead of a session: write --provision for the speaker, trusting "
        "--signing-key (created if absent), and exit (a bench without a controller)",
    )
    p.add_argument("--commune", default="conformance", help="with --write-provision")
    p.add_argument("--hamlet", default="bench", help="with --write-provision")
    p.add_argument("--username", default=None, help="broker user name for the kit")
    p.add_argument(
        "--password-env",
        default="LOA_CONFORMANCE_PASSWORD",
        help="environment variable holding the kit's broker password",
    )
    p.add_argument(
        "--step-timeout",
        type=float,
        default=5.0,
        help="seconds each answer may take past its expected time",
    )
    p.add_argument(
        "--clock-offset-ms",
        type=int,
        default=-3000,
        help="the kit's controller clock minus this machine's (a speaker must sync to it)",
    )


def parse_broker(url: str) -> tuple[str, int, bool]:
    """``mqtt://host:port`` / ``mqtts://host:port`` → (host, port, TLS?), or ConfigError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        port, parts = None, urlsplit("")
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(f"--broker {url!r}: give mqtt://host:port or mqtts://host:port")
    return (
        parts.hostname,
        port or (8883 if parts.scheme == "mqtts" else 1883),
        parts.scheme == "mqtts",
    )


def load_provisioning(path: Path, device: str) -> provisioning.Provisioning:
    prov = provisioning.read(path)
    if prov.device != device:
        raise ConfigError(f"{path} is speaker {prov.device}'s provisioning file, not {device}'s")
    return prov


def load_signer(path: Path, prov: provisioning.Provisioning) -> Signer:
    """The controller's key, loaded (never created), and trusted by the speaker."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the signing key {path}: {exc.strerror} (give --signing-key: the "
            "controller's security.signing_key, whose public key the speaker trusts)"
        ) from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"signing key {path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"signing key {path} is not an Ed25519 key")
    signer = Signer(key)
    if signer.public_hex() not in {k.public for k in prov.keys}:
        raise ConfigError(
            f"the speaker does not trust {path} (key id {signer.key_id.hex()}; its "
            f"provisioning file trusts {', '.join(k.kid for k in prov.keys)}): it would "
            "refuse every frame"
        )
    return signer


def run(args: argparse.Namespace) -> int:
    """Run the session, print the table; 0 if every row passed, 1 if any failed."""
    host, port, tls = parse_broker(args.broker)
    if not 0 < args.step_timeout <= 600:
        raise ConfigError("--step-timeout must be more than 0 and at most 600 seconds")
    if abs(args.clock_offset_ms) > 86_400_000:
        raise ConfigError("--clock-offset-ms must be within a day (±86400000)")
    if args.write_provision:
        print(
            write_provision(
                path=args.provision,
                key=args.signing_key,
                device=args.device,
                commune=args.commune,
                hamlet=args.hamlet,
                broker_url=f"{'mqtts' if tls else 'mqtt'}://{host}:{port}",
                clock=SystemClock(),
            )
        )
        return 0
    prov = load_provisioning(args.provision, args.device)
    signer = load_signer(args.signing_key, prov)
    endpoint = Endpoint(
        host,
        port,
        tls,
        ca_pem=prov.mqtt.ca_pem,
        username=args.username,
        password=os.environ.get(args.password_env) or None,
    )
    timing = Timing(step_s=args.step_timeout, presence_s=2 * args.step_timeout)
    clock = SkewedClock(SystemClock(), offset_s=args.clock_offset_ms / 1000)
    rows = anyio.run(session, prov, signer, endpoint, clock, timing)
    print(table(rows, device=prov.device), flush=True)
    return 0 if all(r.passed for r in rows) else 1


async def session(
    prov: provisioning.Provisioning,
    signer: Signer,
    endpoint: Endpoint,
    clock: SkewedClock,
    timing: Timing,
) -> list[Row]:
    kit = Kit(prov, signer, endpoint, clock)
    transport_log = logging.getLogger("devices.transport")
    level = transport_log.level
    transport_log.setLevel(logging.ERROR)  # no retry warnings before the one-line error
    async with anyio.create_task_group() as tg:
        tg.start_soon(kit.link.run)
        try:
            await kit.link.wait_connected(timing.step_s)
            transport_log.setLevel(level)  # connected: a later drop is worth a warning
        except TimeoutError:
            raise BrokerError(
                f"could not connect to the MQTT broker at {endpoint.host}:{endpoint.port} "
                f"within {timing.step_s:.0f} s (is it running? are the kit's user name and "
                "password right?)"
            ) from None
        with anyio.CancelScope() as work:
            tg.start_soon(_stop_on_signal, work)
            rows = await Session(kit, timing).run()
        tg.cancel_scope.cancel()
    if work.cancelled_caught:
        raise LoaError("stopped before the end; the speaker's own config was put back")
    return rows


async def _stop_on_signal(work: anyio.CancelScope) -> None:
    """SIGINT or SIGTERM cancels the session's steps (its clean-up still runs)."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            work.cancel()
            return
