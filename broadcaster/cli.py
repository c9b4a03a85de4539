"""The ``loa`` command line. Errors become one line of text, never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import anyio

from loa import __version__
from loa.errors import LoaError, exit_with_one_line, first_loa_error

from . import settings as settings_mod


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="TOML settings file (also LOA_CONFIG)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one setting (repeatable)",
    )
    p.add_argument("--port", type=int, default=None, help="web server port (http.port)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more (debug)")
    p.add_argument(
        "--log-json", action="store_true", help="log one JSON object per line (for machines)"
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="loa", description="Loa smart public-address controller")
    p.add_argument("--version", action="version", version=f"loa {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="broker + control plane + a simulated commune")
    _common(demo)
    demo.add_argument(
        "--headless", action="store_true", help="play a scripted bulletin, print a summary and exit"
    )
    demo.add_argument(
        "--duration", type=float, default=None, help="seconds to run (headless: the time budget)"
    )
    demo.add_argument(
        "--data",
        type=Path,
        default=Path("loa-data"),
        help="folder for the demo's database, media and key",
    )
    serve = sub.add_parser("serve", help="run the control plane (and the broker it starts)")
    _common(serve)
    serve.add_argument("--tls-cert", default=None, help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--tls-key", default=None, help="private key (PEM) of --tls-cert")
    serve.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder for the database, media, key and broker files (default: the settings', "
        "./loa-data)",
    )
    prov = sub.add_parser(
        "provision", help="issue a speaker's credentials and write its provisioning file"
    )
    prov.add_argument("device", help="the speaker's id (registered already)")
    prov.add_argument("--out", type=Path, required=True, help="file to write (JSON, 0600)")
    prov.add_argument(
        "--url",
        default=os.environ.get("LOA_URL", "http://127.0.0.1:8080"),
        help="the control plane's URL (also LOA_URL)",
    )
    prov.add_argument(
        "--token",
        default=None,
        help="an API token of a technician or admin (also LOA_TOKEN; never logged)",
    )
    sim = sub.add_parser("sim", help="run simulated speakers")
    from firmware_sim.__main__ import add_arguments

    add_arguments(sim)
    broker = sub.add_parser("broker", help="start an MQTT broker and wait")
    broker.add_argument("--mode", choices=["auto", "mosquitto", "amqtt"], default="auto")
    broker.add_argument("--broker-port", type=int, default=1883)
    bench = sub.add_parser("bench", help="measure the figures in BENCHMARKS.md")
    from .bench.cli import add_arguments as bench_arguments

    bench_arguments(bench)
    conf = sub.add_parser(
        "conformance",
        help="check a speaker (ours or a vendor's) against docs/protocol.md over MQTT",
    )
    from conformance.cli import add_arguments as conformance_arguments

    conformance_arguments(conf)
    kg = sub.add_parser("keygen", help="make a new controller signing key (for a key rotation)")
    kg.add_argument("path", type=Path, help="file to write the private key to (must not exist)")
    st = sub.add_parser("settings", help="list every setting with its default")
    _common(st)
    return p


def load_settings(args: argparse.Namespace) -> settings_mod.Settings:
    config = args.config or (Path(os.environ["LOA_CONFIG"]) if "LOA_CONFIG" in os.environ else None)
    overrides = list(args.overrides)
    if getattr(args, "port", None) is not None:
        overrides.append(f"http.port={args.port}")
    elif getattr(args, "headless", False):
        overrides.append("http.port=0")  # a scripted run needs no well-known port
    for name in ("tls_cert", "tls_key"):
        if getattr(args, name, None) is not None:
            overrides.append(f"http.{name}={getattr(args, name)}")
    data = getattr(args, "data", None)
    if data is not None:
        pre = [
            f"db.path={data / 'loa.db'}",
            f"storage.media_dir={data / 'media'}",
            f"security.signing_key={data / 'signing.key'}",
            f"security.broker_auth_dir={data / 'broker'}",
        ]
        overrides = pre + overrides
    return settings_mod.absolute(settings_mod.load(config, os.environ, overrides))


def _run(args: argparse.Namespace) -> int:
    if args.command == "settings":
        s = load_settings(args)
        for name, default, desc in settings_mod.describe():
            section, key = name.split(".")
            current = getattr(getattr(s, section), key)
            if key == "password" and current:
                current = "********"
            print(f"{name:<28} {current!r:<24} {desc}  (default {default})")
        return 0
    if args.command == "demo":
        from .demo import run_demo

        s = load_settings(args)
        return anyio.run(lambda: run_demo(s, headless=args.headless, duration=args.duration))
    if args.command == "serve":
        from .serve import run_serve

        s = load_settings(args)
        return anyio.run(run_serve, s)
    if args.command == "provision":
        from .provisioning import provision_to_file

        return provision_to_file(args)
    if args.command == "keygen":
        from devices.signing import Signer

        if args.path.exists():
            raise LoaError(f"{args.path} exists: choose a new file (keys are never overwritten)")
        signer = Signer.load_or_create(args.path)
        print(f"new signing key in {args.path}; public key: {signer.public_hex()}")
        return 0
    if args.command == "sim":
        from firmware_sim.__main__ import run

        run(args)
        return 0
    if args.command == "conformance":
        from conformance.cli import run as run_conformance

        return run_conformance(args)
    if args.command == "bench":
        from .bench.cli import run as run_bench

        return run_bench(args)
    if args.command == "broker":
        from .broker import start_broker
        from .broker_supervisor import supervise_forever

        b = start_broker(args.mode, port=args.broker_port)
        print(f"{b.kind} listening on {b.host}:{b.port}; Ctrl-C to stop", flush=True)
        try:
            supervise_forever(b)  # a broker that dies is started again
        finally:
            b.stop()
        return 0
    raise LoaError(f"unknown command {args.command}")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .logs import setup_logging

    setup_logging(
        verbose=getattr(args, "verbose", False),
        json_lines=getattr(args, "log_json", False),
        server=args.command in ("demo", "serve"),
    )
    if args.command in ("demo", "serve", "broker"):
        from .runner import terminate_as_interrupt

        terminate_as_interrupt()
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        return _os_error(exc)
    except BaseException as exc:
        found = _first_os_error(exc)  # inside the task group of demo/serve's start-up
        if found is not None and first_loa_error(exc) is None:
            return _os_error(found)
        return exit_with_one_line(exc, "loa")


def _os_error(exc: OSError) -> int:
    print(f"loa: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
    return 2


def _first_os_error(exc: BaseException) -> OSError | None:
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_os_error(inner)
            if found is not None:
                return found
    return None


if __name__ == "__main__":
    sys.exit(main())
