"""``loa conformance --write-provision``: a bench without a Loa controller.

Writes the provisioning file for the speaker under test, trusting the kit's signing
key (created, mode 0600, when the file does not exist yet — as ``loa keygen`` does), so
a vendor needs only a broker (``loa broker``) and this kit to test a speaker.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from devices import provisioning
from devices.signing import Signer
from devices.topics import validate_segment
from loa.clock import Clock
from loa.errors import ConfigError, ProtocolError


def write_provision(
    *,
    path: Path,
    key: Path,
    device: str,
    commune: str,
    hamlet: str,
    broker_url: str,
    clock: Clock,
) -> str:
    """Write ``path`` (never over an existing file); return a line saying what was done."""
    try:
        for value, what in ((device, "--device"), (commune, "--commune"), (hamlet, "--hamlet")):
            validate_segment(value, what)
    except ProtocolError as exc:
        raise ConfigError(exc.message) from None
    if path.exists():
        raise ConfigError(
            f"{path} exists: give a new file (a provisioning file is never overwritten)"
        )
    signer = Signer.load_or_create(key)
    prov = provisioning.build(
        device=device,
        commune=commune,
        hamlet=hamlet,
        timezone="Asia/Ho_Chi_Minh",
        urls=[broker_url],
        password=secrets.token_urlsafe(18),
        public_keys=[signer.public_hex()],
        issued_us=clock.now_us(),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(provisioning.to_json(prov) + "\n")
    return (
        f"{path}: provisioning for speaker {device} ({commune}/{hamlet}), broker {broker_url}, "
        f"trusting {key} (key id {signer.key_id.hex()}); load it into the speaker, start "
        "it, then run the same command without --write-provision"
    )
