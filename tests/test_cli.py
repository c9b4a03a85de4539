"""The command line: one-line errors, settings sources, and the headless demo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from broadcaster import demo_data


def loa(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broadcaster.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_settings_shows_values_from_every_source(tmp_path: Path) -> None:
    toml = tmp_path / "loa.toml"
    toml.write_text("[mqtt]\nport = 1900\n[stream]\nlead_ms = 700\n", encoding="utf-8")
    r = loa(
        "settings",
        "--config",
        str(toml),
        "--set",
        "stream.lead_ms=900",
        env={"LOA_MQTT__HOST": "broker.tinh"},
    )
    assert r.returncode == 0, r.stderr
    assert re.search(r"mqtt\.port\s+1900", r.stdout)
    assert re.search(r"mqtt\.host\s+'broker\.tinh'", r.stdout)
    assert re.search(r"stream\.lead_ms\s+900", r.stdout)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["settings", "--set", "mqtt.prot=1"], {}, "unknown setting mqtt.prot"),
        (["settings", "--set", "mqtt.port=abc"], {}, "mqtt.port"),
        (["settings", "--set", "nonsense"], {}, "use section.key=value"),
        (["settings"], {"LOA_HTTP__PROT": "1"}, "LOA_HTTP__PROT"),
        (["settings", "--config", "/nonexistent/loa.toml"], {}, "does not exist"),
        (
            ["sim", "--fleet", "/nonexistent/fleet.json", "--pubkey", "ab" * 32],
            {},
            "does not exist",
        ),
        (["sim", "--fleet", "/nonexistent/fleet.json", "--pubkey", "zz"], {}, "64 hex"),
        (["sim", "--fleet", "x.json", "--pubkey-file", "/nonexistent/key"], {}, "No such file"),
        (
            ["sim", "--provision", "/nonexistent/loa-ap-1.json"],
            {},
            "cannot read the provisioning file /nonexistent/loa-ap-1.json",
        ),
        (["sim", "--provision", "/etc/hostname"], {}, "provisioning file /etc/hostname: (file)"),
    ],
)
def test_bad_input_is_one_clear_line(args: list[str], env: dict[str, str], message: str) -> None:
    r = loa(*args, env=env)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_bad_settings_file_is_refused(tmp_path: Path) -> None:
    toml = tmp_path / "loa.toml"
    toml.write_text("[mqtt\nport = 1", encoding="utf-8")
    r = loa("settings", "--config", str(toml))
    assert r.returncode == 2 and "not valid TOML" in r.stderr
    toml.write_text("[mqtt]\nbroker = 'x'\n", encoding="utf-8")
    r = loa("settings", "--config", str(toml))
    assert r.returncode == 2 and "unknown setting mqtt.broker" in r.stderr


@pytest.mark.e2e
def test_headless_demo_plays_to_every_speaker(tmp_path: Path) -> None:
    r = loa(
        "demo",
        "--headless",
        "--duration",
        "60",
        "--port",
        "0",
        "--data",
        str(tmp_path / "demo"),
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "demo: OK" in r.stdout
    assert "login: admin / " in r.stdout  # the generated first password, shown once
    acl = (tmp_path / "demo" / "broker" / "acl").read_text()
    assert "user vt-ap-1-1" in acl and "user loa-controller" in acl  # the broker is locked
    rows = re.findall(r"vi-tan/(ap-\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", r.stdout)
    # two hamlets, then all nine: every speaker targeted played, none missed
    assert len(rows) == 2 + len(demo_data.HAMLETS)
    assert all(t == p == "3" and m == "0" for _, t, p, m, _ in rows), rows
    assert "Traceback" not in r.stderr


def test_keygen_makes_a_key_and_never_overwrites_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from broadcaster.cli import main

    path = tmp_path / "next.key"
    assert main(["keygen", str(path)]) == 0
    out = capsys.readouterr().out
    assert path.exists() and len(out.split("public key: ")[1].strip()) == 64
    before = path.read_bytes()
    assert main(["keygen", str(path)]) == 2
    assert "exists" in capsys.readouterr().err
    assert path.read_bytes() == before
