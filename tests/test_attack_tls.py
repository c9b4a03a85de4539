"""Issue 16, finding 6: ``loa serve --tls-cert/--tls-key`` serves HTTPS itself (uvicorn's
TLS), with the security headers and a Secure session cookie; a missing file is a
one-line error, not a traceback."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from broadcaster.broker.process import free_port
from broadcaster.broker.tls import demo_ca
from loa.clock import SystemClock


def _serve(tmp: Path, broker: Any, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "broadcaster.cli",
            "serve",
            "--set",
            f"db.path={tmp / 'loa.db'}",
            "--set",
            f"storage.media_dir={tmp / 'media'}",
            "--set",
            f"security.signing_key={tmp / 'signing.key'}",
            "--set",
            f"mqtt.port={broker.port}",
            "--set",
            "broker.mode=external",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )


def test_6_serve_speaks_https_with_its_own_certificate(tmp_path: Path, broker: Any) -> None:
    files = demo_ca(tmp_path / "tls", SystemClock())
    port = free_port()
    proc = _serve(
        tmp_path,
        broker,
        "--port",
        str(port),
        "--tls-cert",
        str(files.cert),
        "--tls-key",
        str(files.key),
    )
    trusted = ssl.create_default_context(cafile=str(files.ca))
    try:
        deadline = time.monotonic() + 60
        resp = None
        while time.monotonic() < deadline:
            try:
                resp = httpx.get(f"https://127.0.0.1:{port}/api/health", verify=trusted)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.2)
        assert resp is not None and resp.status_code == 200
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
        login = httpx.post(
            f"https://127.0.0.1:{port}/api/login",
            json={"username": "admin", "password": "sai-mat-khau-1"},
            verify=trusted,
        )
        assert login.status_code == 401
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"https://127.0.0.1:{port}" in out


def test_6_serve_refuses_a_missing_key_in_one_line(tmp_path: Path, broker: Any) -> None:
    files = demo_ca(tmp_path / "tls", SystemClock())
    proc = _serve(
        tmp_path, broker, "--port", "0", "--tls-cert", str(files.cert), "--tls-key", "/nope.key"
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "http.tls_key" in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1, out
