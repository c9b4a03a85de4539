"""The provisioning file: everything a speaker needs once, to join the system.

Issued by the controller when a technician registers a speaker or issues its broker
credentials (JSON, and the same JSON in a QR code); read by a speaker's firmware (and
by ``loa sim --provision``). docs/protocol.md, "Provisioning", describes every field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from loa.errors import ConfigError

from .signing import key_id, public_from_hex
from .topics import DeviceTopic, device_topic

FORMAT: Literal["loa-provisioning/1"] = "loa-provisioning/1"
Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProvisionedKey(Strict):
    kid: Annotated[str, Field(pattern=r"^[0-9a-f]{8}$")]  # first 4 bytes of SHA-256(key)
    public: Hex64


class ProvisionedMqtt(Strict):
    urls: Annotated[list[str], Field(min_length=1, max_length=8)]  # most preferred first
    username: Id
    password: Annotated[str, Field(min_length=1, max_length=256)]
    client_id: Id
    ca_pem: str = ""  # the CA that signed the broker's TLS certificate, when not public

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or not parts.port:
                raise ValueError(f"{url!r} is not mqtt://host:port or mqtts://host:port")
        return value


class ProvisionedTopics(Strict):
    time_request: str
    time_response: str
    config: str


class Provisioning(Strict):
    format: Literal["loa-provisioning/1"] = FORMAT
    device: Id
    commune: Id
    hamlet: Id
    timezone: str
    mqtt: ProvisionedMqtt
    keys: Annotated[list[ProvisionedKey], Field(min_length=1, max_length=4)]
    topics: ProvisionedTopics
    issued_us: int


def build(
    *,
    device: str,
    commune: str,
    hamlet: str,
    timezone: str,
    urls: list[str],
    password: str,
    public_keys: list[str],
    issued_us: int,
    ca_pem: str = "",
) -> Provisioning:
    """The file for one speaker (``public_keys``: 64-hex keys, the signing key first)."""
    return Provisioning(
        device=device,
        commune=commune,
        hamlet=hamlet,
        timezone=timezone,
        mqtt=ProvisionedMqtt(
            urls=urls, username=device, password=password, client_id=device, ca_pem=ca_pem
        ),
        keys=[ProvisionedKey(kid=key_id(public_from_hex(k)).hex(), public=k) for k in public_keys],
        topics=ProvisionedTopics(
            time_request=device_topic(commune, device, DeviceTopic.TIME_REQ),
            time_response=device_topic(commune, device, DeviceTopic.TIME_RESP),
            config=device_topic(commune, device, DeviceTopic.CONFIG),
        ),
        issued_us=issued_us,
    )


def to_json(p: Provisioning, *, compact: bool = False) -> str:
    if compact:  # for the QR code
        return p.model_dump_json(exclude_defaults=True)
    return json.dumps(p.model_dump(), ensure_ascii=False, indent=1)


def parse(text: str, source: str = "provisioning file") -> Provisioning:
    """A provisioning file → the model, or a one-line ConfigError naming the field."""
    try:
        return Provisioning.model_validate_json(text)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(file)"
        raise ConfigError(f"{source}: {where}: {err['msg']}") from None


def read(path: Path) -> Provisioning:
    """The provisioning file at ``path``, or a one-line ConfigError a person understands."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the provisioning file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a provisioning file (not UTF-8 JSON)") from None
    return parse(text, f"provisioning file {path}")


def endpoint(p: Provisioning) -> tuple[str, int, bool]:
    """The most preferred broker URL as (host, port, TLS?): the first ``mqtts://`` or
    ``mqtt://`` URL listed (a broker with a TLS listener lists only ``mqtts://``: its
    plaintext listener is the controller's alone)."""
    for url in p.mqtt.urls:
        parts = urlsplit(url)
        if parts.scheme in ("mqtt", "mqtts") and parts.hostname:
            default = 8883 if parts.scheme == "mqtts" else 1883
            return parts.hostname, parts.port or default, parts.scheme == "mqtts"
    raise ConfigError("the provisioning file lists no mqtt:// or mqtts:// broker URL")
