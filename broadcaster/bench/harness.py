"""Real parts for benchmarks (and tests): a controller in a thread, speakers in processes."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from firmware_sim.spec import DeviceSpec, dump_fleet
from loa.clock import Clock
from loa.errors import LoaError

from ..app import create_app, server_options
from ..services import Services
from ..settings import Settings


class ControllerThread:
    """uvicorn + the app on their own event loop in a thread (as in production: a process)."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.app: Starlette = create_app(settings, clock=clock)
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=0,
                log_level="warning",
                lifespan="on",
                **server_options(settings),
            )
        )
        self.thread = threading.Thread(target=self.server.run, name="loa-controller", daemon=True)

    @property
    def services(self) -> Services:
        s: Services = self.app.state.loa
        return s

    def start(self, timeout: float = 20.0) -> str:
        """Start; return the base URL once serving and connected to the broker."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise LoaError("the controller did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        while not self.services.link.connected:
            if time.monotonic() > deadline:
                raise LoaError("the controller did not connect to the broker")
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        if self.thread.is_alive():
            raise LoaError("the controller did not stop")


class SimProcess:
    """``python -m firmware_sim`` in a child process, logging plays to a JSON-lines file."""

    def __init__(
        self,
        specs: Sequence[DeviceSpec],
        *,
        host: str,
        port: int,
        pubkey_hex: str,
        workdir: Path,
        name: str = "sim",
        extra: Sequence[str] = (),
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.fleet_file = workdir / f"{name}-fleet.json"
        self.fleet_file.write_text(dump_fleet(list(specs)), encoding="utf-8")
        self.log_path = workdir / f"{name}-plays.jsonl"
        self.out_path = workdir / f"{name}.out"
        argv = [
            sys.executable,
            "-m",
            "firmware_sim",
            "--fleet",
            str(self.fleet_file),
            "--host",
            host,
            "--port",
            str(port),
            "--pubkey",
            pubkey_hex,
            "--play-log",
            str(self.log_path),
            *extra,
        ]
        with self.out_path.open("wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def machine() -> str:
    """One line describing this machine, for BENCHMARKS.md."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} × {cpu}{mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )
