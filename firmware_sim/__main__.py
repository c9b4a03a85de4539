"""``python -m firmware_sim`` (also ``loa sim``): run a fleet of simulated speakers."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

import anyio

from devices import provisioning
from devices.signing import Verifier, public_from_hex
from loa.errors import ConfigError, exit_with_one_line

from .fleet import Fleet
from .playlog import PlayLog
from .speaker import SpeakerOptions
from .spec import DeviceSpec, load_fleet


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fleet", type=Path, help="fleet JSON file")
    p.add_argument(
        "--provision",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a speaker's provisioning file (from loa provision or the device page); "
        "repeatable; broker, credentials and keys come from it",
    )
    p.add_argument("--host", default="127.0.0.1", help="MQTT broker host")
    p.add_argument("--port", type=int, default=1883, help="MQTT broker port")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--pubkey", help="controller's Ed25519 public key, 64 hex characters")
    key.add_argument("--pubkey-file", type=Path, help="file holding that hex key")
    p.add_argument("--play-log", type=Path, help="append what was played here (JSON lines)")
    p.add_argument(
        "--tls-ca", type=Path, default=None, help="connect with TLS, trusting this CA file"
    )
    p.add_argument("--telemetry-interval", type=float, default=30.0, help="seconds")
    p.add_argument(
        "--sync-interval",
        type=float,
        default=10.0,
        help="seconds between clock-sync exchanges (0 = only the first burst)",
    )
    p.add_argument(
        "--first-sync", type=int, default=20, help="clock-sync exchanges in the burst at start"
    )
    p.add_argument(
        "--settle",
        type=float,
        default=300.0,
        help="seconds after the burst with an exchange every 2 s (0 = straight to the interval)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        help="keep each speaker's unsent proof of play here (resent after a restart)",
    )
    p.add_argument(
        "--outage-grace",
        type=float,
        default=60.0,
        help="seconds a stream stays open while the broker is unreachable",
    )


def _from_files(args: argparse.Namespace) -> tuple[list[DeviceSpec], list[str]]:
    """Speakers (and the keys they trust) from provisioning files; sets host and port."""
    specs: list[DeviceSpec] = []
    keys: list[str] = []
    endpoints: set[tuple[str, int, bool]] = set()
    cas: set[str] = set()
    for path in args.provision:
        p = provisioning.read(path)
        if any(spec.id == p.device for spec in specs):
            raise ConfigError(f"{path}: speaker {p.device} is given twice (one file each)")
        host, port, tls = provisioning.endpoint(p)
        endpoints.add((host, port, tls))
        if tls:
            cas.add(p.mqtt.ca_pem)
        specs.append(
            DeviceSpec(id=p.device, commune=p.commune, hamlet=p.hamlet, password=p.mqtt.password)
        )
        keys += [k.public for k in p.keys if k.public not in keys]
    if len(endpoints) > 1:
        raise ConfigError("the provisioning files name different brokers: run one sim each")
    args.host, args.port, tls = endpoints.pop()
    args.tls_ca_pem = cas.pop() if tls and len(cas) == 1 else ("" if tls else None)
    return specs, keys


def run(args: argparse.Namespace) -> None:
    if args.provision:
        if args.fleet:
            raise ConfigError("give --fleet or --provision, not both")
        specs, keys = _from_files(args)
        if args.pubkey or args.pubkey_file:
            keys = [*keys, args.pubkey or args.pubkey_file.read_text(encoding="utf-8")]
        verifier = Verifier([public_from_hex(k) for k in keys])
    else:
        if not args.fleet:
            raise ConfigError("give --fleet FILE (with --pubkey) or --provision FILE")
        if not (args.pubkey or args.pubkey_file):
            raise ConfigError("--fleet needs the controller's key: --pubkey or --pubkey-file")
        try:
            text = args.pubkey if args.pubkey else args.pubkey_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read the public key file: {exc.strerror}: {args.pubkey_file}"
            ) from None
        verifier = Verifier([public_from_hex(text)])
        specs = load_fleet(args.fleet)
    log = PlayLog(args.play_log)
    fleet = Fleet(
        specs,
        host=args.host,
        port=args.port,
        verifier=verifier,
        log=log,
        options=SpeakerOptions(
            telemetry_interval_s=args.telemetry_interval,
            sync_interval_s=args.sync_interval,
            first_sync_samples=args.first_sync,
            settle_s=args.settle,
            tls_ca=args.tls_ca,
            tls_ca_pem=getattr(args, "tls_ca_pem", None),
            state_dir=args.state_dir,
            outage_grace_s=args.outage_grace,
        ),
    )

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(fleet.run)
            print(
                f"loa sim: {len(specs)} speakers connected to {args.host}:{args.port}", flush=True
            )

    signal.signal(signal.SIGTERM, _terminate)  # flush the play log on a plain kill
    try:
        anyio.run(main)
    finally:
        log.close()


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="firmware_sim", description="simulated Loa speakers")
    add_arguments(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(args)
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:
        return exit_with_one_line(exc, "firmware_sim")
    return 0


if __name__ == "__main__":
    sys.exit(main())
