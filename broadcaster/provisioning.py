"""``loa provision DEVICE --out speaker.json``: issue a speaker's credentials through the
control plane's API and write its provisioning file (0600), ready for the speaker or
``loa sim --provision``."""

from __future__ import annotations

import argparse
import os
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
    out: Path = args.out
    url = args.url.rstrip("/")
    try:
        r = httpx.post(
            f"{url}/api/devices/{args.device}/credentials",
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
    p = provisioning.Provisioning.model_validate(r.json()["provisioning"])
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(provisioning.to_json(p) + "\n")
    print(
        f"{out}: provisioning for speaker {p.device} ({p.commune}/{p.hamlet}), "
        f"broker {p.mqtt.urls[0]}; keep it secret (it holds the speaker's password)"
    )
    return 0
