"""A commune set up from an empty data folder, through the API alone, with real processes:
``loa serve`` (and the broker it starts), ``loa provision`` and ``loa sim --provision``.
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
from typing import Any

import httpx
import pytest

from firmware_sim.playlog import read_log
from tests.conftest import wav

ROOT = Path(__file__).resolve().parent.parent
LOA = Path(sys.executable).parent / "loa"
pytestmark = pytest.mark.e2e

CSV = (
    "\ufeffMã;Tên;Ấp;Vĩ độ;Kinh độ;Model;SIM;Mạng;Ngày lắp;Ghi chú\r\n"
    "vt-1;Loa chợ;Ấp 1;9,9712;105,6203;IP-30W;0912000001;4G;30/11/2026;gần chợ\r\n"
    "vt-2;Loa trường;ấp 1;9,9720;105,6210;IP-30W;0912000002;4G;30/11/2026;\r\n"
    "vt-3;Loa đình;Ấp 2A;9,9800;105,6300;IP-30W;0912000003;wifi;01/12/2026;\r\n"
    "vt-4;Loa bến đò;ap-2a;9,9810;105,6310;IP-30W;0912000004;4G;01/12/2026;ven sông\r\n"
    "vt-5;Loa cầu;Ấp Đông Hòa;9,9900;105,6400;IP-30W;0912000005;4G;02/12/2026;\r\n"
    "vt-6;Loa trạm y tế;Ấp Đông Hòa;9,9910;105,6410;IP-30W;0912000006;ethernet;;\r\n"
)


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("LOA_")}
    e["PYTHONPATH"] = str(ROOT)
    return e


class Serve:
    """``loa serve`` in a fresh folder (default data folder), until a signal stops it."""

    def __init__(self, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [str(LOA), "serve", "--port", "0", "--set", "broker.port=0"],
            cwd=cwd,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("login:" in x for x in self.lines):
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
        out = "".join(self.lines)
        found = re.search(r"open (http://\S+)", out)
        password = re.search(r"login: admin / (\S+)", out)
        assert found and password, out
        self.url, self.password = found.group(1), password.group(1)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rest, _ = self.proc.communicate(timeout=60)
        return "".join(self.lines) + rest


def admin_token(url: str, password: str) -> str:
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/api/login", json={"username": "admin", "password": password})
        assert r.status_code == 200, r.text
        csrf = r.json()["csrf_token"]
        r = c.post("/api/me/tokens", json={"name": "set-up"}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201, r.text
        token: str = r.json()["token"]
        return token


def wait(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_commune_from_empty_through_the_api(tmp_path: Path) -> None:
    serve = Serve(tmp_path)
    sim: subprocess.Popen[str] | None = None
    try:
        assert "No commune yet" in "".join(serve.lines)
        token = admin_token(serve.url, serve.password)
        c = httpx.Client(
            base_url=serve.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
        )
        r = c.post("/api/provinces", json={"name": "Tỉnh Hậu Giang"})
        assert r.status_code == 201, r.text
        province = r.json()["province"]
        assert province["id"] == "hau-giang"
        r = c.post(f"/api/provinces/{province['id']}/communes", json={"name": "Xã Vị Tân"})
        assert r.status_code == 201, r.text
        commune = r.json()["commune"]
        assert (commune["id"], commune["timezone"]) == ("vi-tan", "Asia/Ho_Chi_Minh")
        ids = []
        for name in ("Ấp 1", "Ấp 2A", "Ấp Đông Hòa"):
            r = c.post("/api/communes/vi-tan/hamlets", json={"name": name})
            assert r.status_code == 201, r.text
            ids.append(r.json()["hamlet"]["id"])
        assert ids == ["ap-1", "ap-2a", "ap-dong-hoa"]
        r = c.post(
            "/api/communes/vi-tan/devices/import",
            content=CSV.encode(),
            headers={"content-type": "text/csv"},
        )
        assert r.status_code == 201, r.text
        assert sorted(r.json()["created"]) == [f"vt-{i}" for i in range(1, 7)]
        devices = c.get("/api/communes/vi-tan/devices").json()["devices"]
        by_id = {d["id"]: d for d in devices}
        assert by_id["vt-1"]["lat"] == pytest.approx(9.9712)
        assert by_id["vt-6"]["hamlet"] == "ap-dong-hoa"

        files = []
        for i in range(1, 7):
            out = tmp_path / f"vt-{i}.json"
            done = subprocess.run(
                [str(LOA), "provision", f"vt-{i}", "--out", str(out), "--url", serve.url],
                env={**env(), "LOA_TOKEN": token},
                check=False,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert token not in done.stdout + done.stderr
            data = json.loads(out.read_text())
            assert data["device"] == f"vt-{i}" and data["timezone"] == "Asia/Ho_Chi_Minh"
            assert data["mqtt"]["urls"][0].startswith("mqtt://")
            assert re.fullmatch(r"[0-9a-f]{8}", data["keys"][0]["kid"])
            assert oct(out.stat().st_mode & 0o777) == "0o600"
            files.append(out)
        log = tmp_path / "plays.jsonl"
        sim = subprocess.Popen(
            [
                str(LOA),
                "sim",
                *[a for f in files for a in ("--provision", str(f))],
                "--play-log",
                str(log),
            ],
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait(
            lambda: all(
                d["online"] for d in c.get("/api/communes/vi-tan/devices").json()["devices"]
            ),
            30,
            "six speakers online",
        )
        r = c.post(
            "/api/communes/vi-tan/media",
            files={"file": ("thong-bao.wav", wav(2.0), "audio/wav")},
            data={"title": "Thông báo họp ấp"},
        )
        assert r.status_code == 201, r.text
        media = r.json()["media"]["id"]
        r = c.post(
            "/api/broadcasts",
            json={"media_id": media, "targets": [{"commune": "vi-tan", "hamlet": "ap-2a"}]},
        )
        assert r.status_code == 202, r.text
        bid = r.json()["broadcast"]["id"]
        b = wait(
            lambda: (
                x
                if (x := c.get(f"/api/broadcasts/{bid}").json()["broadcast"])["status"]
                in ("done", "failed")
                else None
            ),
            40,
            "the broadcast to end",
        )
        assert b["status"] == "done", b
        streams = {x["stream_id"] for x in b["streams"]}
        played = wait(
            lambda: (
                {
                    e["device"]
                    for e in read_log(log)
                    if e["event"] == "play" and e.get("stream") in streams
                }
                or None
            ),
            10,
            "plays in the simulator's log",
        )
        assert played == {"vt-3", "vt-4"}  # ground truth: only Ấp 2A's speakers
        # a hamlet with speakers cannot be deleted; it is still there afterwards
        r = c.delete("/api/communes/vi-tan/hamlets/ap-1")
        assert r.status_code == 409, r.text
        assert "2 speakers" in r.json()["error"]
        hamlets = [h["id"] for h in c.get("/api/communes/vi-tan/hamlets").json()["hamlets"]]
        assert "ap-1" in hamlets
    finally:
        if sim is not None:
            sim.send_signal(signal.SIGTERM)
            try:
                sim.wait(30)
            except subprocess.TimeoutExpired:
                sim.kill()
        out = serve.stop()
    assert serve.proc.returncode == 0, out[-3000:]
    assert token not in out and serve.password not in out.split("login: admin / ", 1)[1][40:]
    assert re.search(r"POST /api/broadcasts 202 \d+ms admin", out), out[-3000:]
    assert "speaker vi-tan/vt-3 online" in out
    assert re.search(r"broadcast \S+ ended done: 2 played", out), out[-3000:]
