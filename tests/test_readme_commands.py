"""The README's first command, as a newcomer types it, and a clean stop on a signal.

These run ``loa`` as a real process from a fresh folder standing in for the clone's
root (default data folder ``./loa-data``), with the real broker it starts.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broadcaster.broker.mosquitto import find_mosquitto

ROOT = Path(__file__).resolve().parent.parent
LOA = Path(sys.executable).parent / "loa"  # .venv/bin/loa, as the README writes it

pytestmark = pytest.mark.e2e


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("LOA_")}
    e["PYTHONPATH"] = str(ROOT)
    return e


def children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    out: set[int] = set()
    frontier = {pid}
    while frontier:
        nxt = {c for c, p in parents.items() if p in frontier}
        out |= nxt
        frontier = nxt
    return out


def alive(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_readme_first_command_headless_as_written(tmp_path: Path) -> None:
    """`.venv/bin/loa demo --headless --duration 30` from the clone's root, defaults."""
    assert LOA.exists(), f"{LOA} is missing: install the project (scripts/install)"
    done = subprocess.run(
        [str(LOA), "demo", "--headless", "--duration", "30"],
        cwd=tmp_path,
        env=env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "demo: OK" in out
    assert "Unable to open pwfile" not in out
    # the default data folder, relative to where the command ran
    assert (tmp_path / "loa-data" / "loa.db").exists()
    if find_mosquitto() is not None:  # per-speaker credentials need mosquitto
        assert (tmp_path / "loa-data" / "broker" / "passwd").exists()
    # a second run on the same folder works too (the login is not shown again)
    again = subprocess.run(
        [str(LOA), "demo", "--headless", "--duration", "30"],
        cwd=tmp_path,
        env=env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]


@pytest.mark.parametrize("command", ["demo", "serve"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_everything_it_started(
    tmp_path: Path, sig: signal.Signals, command: str
) -> None:
    proc = subprocess.Popen(
        [str(LOA), command, "--port", "0", "--set", "broker.port=0"],
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "login:" in line:
                break
        assert any("open http" in x.lower() for x in lines), "".join(lines)[-3000:]
        kids = children(proc.pid)
        brokers = [k for k in kids if "mosquitto" in cmdline(k) or "amqtt" in cmdline(k)]
        assert brokers, f"no broker child among {[cmdline(k) for k in kids]}"
        workdirs = {Path(m) for k in brokers for m in re.findall(r"/\S*loa-broker-\w+", cmdline(k))}
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=60)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(lines)
    assert proc.returncode == 0, out[-3000:]
    survivors = [k for k in kids if alive(k)]
    assert not survivors, [cmdline(k) for k in survivors]
    for w in workdirs:
        assert not w.exists(), f"temporary folder {w} left behind"
    assert "Traceback" not in out, out[-3000:]
    warnings = [x for x in out.splitlines() if " WARNING " in x and "received: stopping" not in x]
    assert len(warnings) < 3, "\n".join(warnings)


def test_serve_logs_json_lines_without_secrets(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [str(LOA), "serve", "--port", "0", "--set", "broker.port=0", "--log-json"],
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        out: list[str] = []
        while not any("login:" in x for x in out):
            line = proc.stdout.readline()
            assert line, "loa serve ended early"
            out.append(line)
        url = re.search(r"open (http://\S+)", "".join(out))
        password = re.search(r"login: admin / (\S+)", "".join(out))
        assert url and password
        import httpx

        r = httpx.post(
            url.group(1) + "/api/login",
            json={"username": "admin", "password": password.group(1)},
            timeout=30,
        )
        assert r.status_code == 200
        assert httpx.get(url.group(1) + "/api/communes", timeout=30).status_code == 401
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    records = [json.loads(x) for x in err.splitlines() if x.strip()]
    requests = [x for x in records if x["logger"] == "loa.http"]
    assert {"method": "POST", "path": "/api/login", "status": 200, "user": "-"}.items() <= (
        requests[0].items()
    ), requests
    assert any(x["path"] == "/api/communes" and x["status"] == 401 for x in requests)
    assert all(isinstance(x["ms"], float) for x in requests)
    assert password.group(1) not in err
