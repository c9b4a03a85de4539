"""The people using the controller during ``loa bench loop``, in a process of their own.

In production the controller is alone in its process and its users are browsers
elsewhere. Run in the bench's process, these clients (TLS contexts, JSON decoding, 16
login threads) would compete with the controller for the GIL and be counted as the
controller's own lag. So the bench starts this module as a child process: it reads a
JSON job from a file, does the work over HTTP, and prints one JSON line of timings.

    python -m broadcaster.bench.loadgen job.json
"""

from __future__ import annotations

import json
import ssl
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from loa.errors import LoaError

LOGIN_THREADS = 16


def logins(url: str, n: int, username: str, password: str) -> float:
    """``n`` people logging in, 16 at a time, each on a connection of their own."""
    tls = ssl.create_default_context()  # built once: every client would load the CAs again
    t0 = time.monotonic()

    def one(_: int) -> int:
        with httpx.Client(base_url=url, timeout=120, verify=tls) as c:
            r = c.post("/api/login", json={"username": username, "password": password})
            return r.status_code

    with ThreadPoolExecutor(max_workers=LOGIN_THREADS) as pool:
        codes = list(pool.map(one, range(n)))
    bad = [c for c in codes if c != 200]
    if bad:
        raise LoaError(f"{len(bad)} of {n} logins failed (status {bad[0]})")
    return time.monotonic() - t0


def upload(client: httpx.Client, commune: str, path: Path) -> float:
    t0 = time.monotonic()
    with path.open("rb") as fh:
        r = client.post(
            f"/api/communes/{commune}/media", files={"file": (path.name, fh)}, timeout=3600
        )
    if r.status_code != 201:
        raise LoaError(f"the long upload failed: {r.text[:300]}")
    return time.monotonic() - t0


def reports(client: httpx.Client, commune: str, province: str, rounds: int) -> float:
    t0 = time.monotonic()
    for _ in range(rounds):
        for path in (
            f"/api/communes/{commune}/report?format=html",
            f"/api/provinces/{province}/report",
        ):
            r = client.get(path, timeout=600)
            if r.status_code != 200:
                raise LoaError(f"report failed: {r.text[:300]}")
    return time.monotonic() - t0


def broadcast(client: httpx.Client, media_id: str, target: dict[str, str]) -> dict[str, Any]:
    """Start a broadcast and return it once it has ended."""
    r = client.post("/api/broadcasts", json={"media_id": media_id, "targets": [target]})
    if r.status_code != 202:
        raise LoaError(f"broadcast refused: {r.text}")
    bid = r.json()["broadcast"]["id"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        b: dict[str, Any] = client.get(f"/api/broadcasts/{bid}").json()["broadcast"]
        if b["status"] in ("done", "failed", "stopped", "interrupted"):
            return b
        time.sleep(0.5)
    raise LoaError("the broadcast did not finish")


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Everything at once; each result under its name."""
    headers = {"Authorization": f"Bearer {job['token']}"}
    with (
        httpx.Client(base_url=job["url"], timeout=60, headers=headers) as c1,
        httpx.Client(base_url=job["url"], timeout=60, headers=headers) as c2,
        httpx.Client(base_url=job["url"], timeout=60, headers=headers) as c3,
        ThreadPoolExecutor(max_workers=4) as pool,
    ):
        jobs: dict[str, Future[Any]] = {
            "broadcast": pool.submit(broadcast, c1, job["media_id"], job["target"]),
            "logins": pool.submit(
                logins, job["url"], job["logins"], job["username"], job["password"]
            ),
            "upload": pool.submit(upload, c2, job["commune"], Path(job["upload"])),
            "reports": pool.submit(reports, c3, job["commune"], job["province"], job["rounds"]),
        }
        return {name: f.result(timeout=3600) for name, f in jobs.items()}


def main() -> int:
    try:
        print(json.dumps(run(json.loads(Path(sys.argv[1]).read_text()))), flush=True)
    except (LoaError, httpx.HTTPError, OSError, KeyError, ValueError, IndexError) as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
