"""``loa provision DEVICE --out speaker.json``: issue a speaker's credentials through the
control plane's API and write its provisioning file (0600), ready for the speaker or
``loa sim --provision``."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import httpx

from devices import provisioning
from loa.errors import ConfigError, LoaError


def provision_to_file(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("LOA_TOKEN", "")
    if not token:
        raise ConfigError(
            "give an API token (--token or LOA_TOKEN): make one with POST /api/me/tokens"
        )
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", args.device):
        raise ConfigError(
            f"{args.device!r} is not a speaker id (lowercase letters, digits, - and _)"
        )
    out: Path = args.out
    url = args.url.rstrip("/")
    # the file is opened before the credentials are issued: issuing replaces the speaker's
    # password, so a file that cannot be written must stop us first
    existed = out.exists()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}; nothing was issued") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fd, 0o600)  # a file that was there already keeps its mode otherwise
        try:
            p = _issue(url, args.device, token)
        except BaseException:
            if not existed:
                out.unlink(missing_ok=True)
            raise
        fh.truncate(0)
        fh.write(provisioning.to_json(p) + "\n")
    print(
        f"{out}: provisioning for speaker {p.device} ({p.commune}/{p.hamlet}), "
        f"broker {p.mqtt.urls[0]}; keep it secret (it holds the speaker's password)"
    )
    return 0


def _issue(url: str, device: str, token: str) -> provisioning.Provisioning:
    try:
        r = httpx.post(
            f"{url}/api/devices/{device}/credentials",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise LoaError(f"cannot reach the control plane at {url}: {exc}") from None
    if r.status_code != 201:
        try:
            message = r.json().get("error", r.text)
        except ValueError:
            message = r.text[:200]
        raise LoaError(f"the control plane refused ({r.status_code}): {message}")
    return provisioning.Provisioning.model_validate(r.json()["provisioning"])
