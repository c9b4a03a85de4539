"""A full disk (issue 18, item 3), with a real controller process whose database and
media live on a small tmpfs that the test fills: writes answer 507 "the server's disk
is full", reads and token authentication keep working, no temporary file is left,
and once space is freed everything works again. Left-over temporary files are swept
at start-up. Needs permission to mount a tmpfs (root); skipped with the reason
otherwise."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.broker.process import Broker, free_port
from tests.conftest import wav
from tests.test_api import COMMUNE
from tests.test_schedule_restart import seeded, wait_up

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def serve(disk: Path, logs: Path, broker: Broker, port: int) -> subprocess.Popen[bytes]:
    sets = {
        "db.path": disk / "loa.db",
        "storage.media_dir": disk / "media",
        "security.signing_key": disk / "signing.key",
        "mqtt.host": broker.host,
        "mqtt.port": broker.port,
        "mqtt.client_id": f"loa-disk-{uuid.uuid4().hex[:6]}",
        "broker.mode": "external",
        "http.port": port,
    }
    argv = [sys.executable, "-m", "broadcaster.cli", "serve"]
    for k, v in sets.items():
        argv += ["--set", f"{k}={v}"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=(logs / "ctl.log").open("ab"))


def fill(disk: Path) -> Path:
    """Write until the disk refuses (ENOSPC)."""
    filler = disk / "filler.bin"
    with filler.open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:
            pass
    return filler


def temp_files(disk: Path) -> list[str]:
    media = disk / "media"
    return [p.name for p in media.iterdir() if p.name.startswith(".upload-") or ".part" in p.name]


def test_a_full_disk_is_a_clear_error_and_recovers(tmp_path: Path, broker: Broker) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    with tmpfs(tmp_path / "disk", "24m") as disk:
        token = seeded(disk)
        port = free_port()
        ctl = serve(disk, tmp_path, broker, port)
        try:
            client = wait_up(f"http://127.0.0.1:{port}", token)
            ok = client.post(f"/api/communes/{COMMUNE}/media", files={"file": ("a.wav", wav(1))})
            assert ok.status_code == 201, ok.text
            filler = fill(disk)
            # Writes: a clear 507, nothing half-written left behind.
            up = client.post(f"/api/communes/{COMMUNE}/media", files={"file": ("b.wav", wav(20))})
            assert up.status_code == 507, up.text
            body = up.json()
            assert body["error"] == "the server's disk is full" and body["code"] == "disk_full"
            assert temp_files(disk) == []
            # A database write (a long TTS bulletin's row and files) is refused the same way.
            text = client.post(
                f"/api/communes/{COMMUNE}/media/text",
                json={"text": "Thông báo về lịch cắt điện ở ấp Một.", "title": "Cắt điện"},
            )
            assert text.status_code == 507, text.text
            assert temp_files(disk) == []
            # Reads and token authentication do not write: they keep working.
            for path in (
                f"/api/communes/{COMMUNE}/devices",
                f"/api/communes/{COMMUNE}/media",
                f"/api/communes/{COMMUNE}/broadcasts",
                "/api/health",
            ):
                got = client.get(path)
                assert got.status_code == 200, (path, got.text)
            # Space comes back: so does every write.
            filler.unlink()
            again = client.post(f"/api/communes/{COMMUNE}/media", files={"file": ("c.wav", wav(1))})
            assert again.status_code == 201, again.text
        finally:
            ctl.send_signal(signal.SIGTERM)
            ctl.wait(15)
        # Temporary files a crash left behind are swept at the next start.
        (disk / "media" / ".upload-crashed.wav").write_bytes(b"x")
        (disk / "media" / "abc.opus.part").write_bytes(b"x")
        ctl = serve(disk, tmp_path, broker, port)
        try:
            wait_up(f"http://127.0.0.1:{port}", token)
            assert temp_files(disk) == []
        finally:
            ctl.send_signal(signal.SIGTERM)
            ctl.wait(15)


def test_pages_say_the_disk_is_full_in_vietnamese_and_english() -> None:
    from broadcaster.ui.i18n import translator

    js = (Path(__file__).parents[1] / "broadcaster/ui/static/loa.js").read_text(encoding="utf-8")
    said = "Ổ đĩa của máy chủ đã đầy – chưa lưu được gì. Báo kỹ thuật viên."
    assert f'disk_full: T("{said}")' in js
    assert translator("en")[said].startswith("The server's disk is full")
