"""JSON messages on the wire, parsed into strict models at the edge.

Device → controller messages (presence, telemetry, report, ack, time request) arrive
as UTF-8 JSON on the device's own topics. Controller → device JSON (stream start/end,
commands, config) travels inside signed frames (see :mod:`devices.frames`); the time
answer is plain JSON because it carries no authority.

Every model forbids unknown fields and wrong types. :data:`MESSAGE_TYPES` lists them
all; a test checks that docs/protocol.md documents each one.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from loa.errors import ProtocolError

MAX_JSON_BYTES = 16 * 1024
PROTOCOL_VERSION = 1

Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Uuid = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
Us = Annotated[int, Field(ge=0, le=2**63 - 1)]
Count = Annotated[int, Field(ge=0, le=2**32 - 1)]
CodecName = Literal["opus", "mp3"]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Volume = Annotated[int, Field(ge=0, le=100)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Message(Strict):
    v: Literal[1] = 1


# --- controller → device, inside signed frames --------------------------------------


class StreamStart(Message):
    """Payload of a START frame: what the following AUDIO frames contain."""

    broadcast: Uuid
    codec: CodecName
    sample_rate: Annotated[int, Field(ge=8000, le=48000)]
    channels: Annotated[int, Field(ge=1, le=2)]
    frame_ms: Annotated[int, Field(ge=2, le=120)]
    pre_skip: Annotated[int, Field(ge=0, le=65535)] = 0
    chunk_ms: Annotated[int, Field(ge=20, le=10_000)]
    chunks: Annotated[int, Field(ge=0, le=1_000_000)]  # 0: unknown (a live stream)
    duration_ms: Annotated[int, Field(ge=0)]  # 0: unknown (a live stream)
    title: Annotated[str, Field(max_length=200)] = ""
    volume: Volume | None = None  # play this stream at this volume (the programme's)


class StreamEnd(Message):
    """Payload of an END frame: the stream is over (or was stopped)."""

    chunks: Count
    reason: Literal["complete", "preempted", "cancelled", "stopped"] = "complete"


class ItemOffer(Message):
    """Payload of an ITEM frame: an item follows in ITEM_DATA slices (prefetch).

    The item's bytes are the AUDIO payloads of one stream, each preceded by its length
    as a u32 (big-endian); chunk *i* plays ``frame_ms`` × (packets before it) after the
    time a PLAY names. ``sha256`` is over the whole item.
    """

    item: Uuid
    sha256: Sha256
    size: Annotated[int, Field(ge=1, le=64 * 1024 * 1024)]
    slices: Annotated[int, Field(ge=1, le=1_000_000)]
    codec: Literal["opus"]
    sample_rate: Annotated[int, Field(ge=8000, le=48000)]
    channels: Annotated[int, Field(ge=1, le=2)]
    frame_ms: Annotated[int, Field(ge=2, le=120)]
    pre_skip: Annotated[int, Field(ge=0, le=65535)] = 0
    chunks: Annotated[int, Field(ge=1, le=1_000_000)]
    duration_ms: Annotated[int, Field(ge=1)]
    title: Annotated[str, Field(max_length=200)] = ""


class PlayItem(Message):
    """Payload of a PLAY frame: play a cached item at ``at_us`` (or cancel that play).

    The frame's stream id names this play: proof of play reports it like a stream.
    """

    broadcast: Uuid
    item: Uuid
    sha256: Sha256
    at_us: Us  # controller clock: when the first chunk sounds
    action: Literal["play", "cancel"] = "play"
    volume: Volume | None = None
    title: Annotated[str, Field(max_length=200)] = ""


class FirmwareOffer(Message):
    """Payload of a FIRMWARE frame on ``dev/{device}/fw``: an image follows in
    FIRMWARE_DATA slices. ``manifest_sig`` is the controller's Ed25519 signature (key
    ``key_id``) over ``b"loa-firmware\\0"`` + :func:`manifest_bytes`; install only if the
    image's size and SHA-256 match and the signature verifies."""

    rollout: Uuid
    version: Annotated[str, Field(min_length=1, max_length=64)]
    sha256: Sha256
    size: Annotated[int, Field(ge=1, le=64 * 1024 * 1024)]
    slices: Annotated[int, Field(ge=1, le=1_000_000)]
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{8}$")]
    manifest_sig: Annotated[str, Field(pattern=r"^[0-9a-f]{128}$")]


def manifest_bytes(version: str, sha256: str, size: int) -> bytes:
    """The signed firmware manifest: canonical JSON (sorted keys, no spaces)."""
    return json.dumps(
        {"sha256": sha256, "size": size, "version": version}, separators=(",", ":")
    ).encode()


MANIFEST_CONTEXT = b"loa-firmware\x00"


class GroupRef(Strict):
    kind: Literal["all", "hamlet", "zone", "device"]
    id: Annotated[str, Field(pattern=r"^([a-z0-9][a-z0-9_-]{0,62})?$")] = ""

    @model_validator(mode="after")
    def _id_matches_kind(self) -> GroupRef:
        if (self.kind == "all") != (self.id == ""):
            raise ValueError("'all' has no id; hamlet, zone and device need one")
        return self

    @model_serializer(mode="wrap")
    def _no_id_for_all(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """v1.1: ``all`` is sent without ``id`` (v1.0 controllers sent ``"id": ""``,
        which receivers still accept)."""
        data: dict[str, Any] = handler(self)
        if self.kind == "all":
            data.pop("id", None)
        return data


class DeviceConfig(Message):
    """Payload of a CONFIG frame (retained): who the device is and what it listens to."""

    device: Id
    commune: Id
    groups: Annotated[list[GroupRef], Field(max_length=64)]
    volume: Annotated[int, Field(ge=0, le=100)] | None = None
    issued_us: Us
    # Key rotation: the controller public keys (64 hex) to trust from now on. Announced
    # in a config signed by a key the device already trusts; both old and new are
    # listed during the changeover, then the old one is left out.
    keys: (
        Annotated[list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]], Field(max_length=4)]
        | None
    ) = None


class Command(Message):
    """Payload of a COMMAND frame."""

    id: Uuid
    action: Literal["set_volume", "test_tone", "reboot", "resync_clock", "stop", "update_config"]
    args: dict[str, int | str | bool] = Field(default_factory=dict, max_length=16)
    expires_us: Us


# --- device → controller, plain JSON on the device's own topics ----------------------


class Presence(Message):
    """Retained on ``dev/{id}/presence``; the last will says ``offline``."""

    state: Literal["online", "offline"]
    at_us: Us | None = None
    fw: Annotated[str, Field(max_length=64)] = ""
    codecs: Annotated[list[CodecName], Field(max_length=4)] = Field(default_factory=list)
    reason: Annotated[str, Field(max_length=200)] = ""
    # One id per MQTT connection, in the online message and in that connection's will:
    # a will from an older connection (published late, when the broker drops it after a
    # reconnect) must not mark the new connection offline.
    session: Annotated[str, Field(pattern=r"^[0-9a-f]{1,32}$")] | None = None
    # v1.1: the protocol version the device implements ("1.0" when absent).
    proto: Literal["1.0", "1.1"] | None = None


class Counters(Strict):
    refused: Count = 0
    late: Count = 0
    duplicate: Count = 0
    played: Count = 0
    ignored: Count = 0  # trailing frames of a pre-empted stream


class Telemetry(Message):
    at_us: Us
    uptime_s: Annotated[int, Field(ge=0)]
    volume: Annotated[int, Field(ge=0, le=100)]
    rssi_dbm: Annotated[int, Field(ge=-150, le=0)] | None = None
    temperature_c: Annotated[float, Field(ge=-50, le=150)] | None = None
    supply_v: Annotated[float, Field(ge=0, le=400)] | None = None
    amp_fault: bool = False
    free_storage_kb: Annotated[int, Field(ge=0)] | None = None
    fw: Annotated[str, Field(max_length=64)] = ""
    clock_offset_us: int | None = None
    counters: Counters = Field(default_factory=Counters)


class PlayReport(Message):
    """Proof of play: sent once per stream the device received (or was told to expect)."""

    stream: Uuid
    outcome: Literal["played", "partial", "preempted", "missed", "refused"]
    started_us: Us | None = None  # controller clock, device's estimate
    ended_us: Us | None = None
    frames_played: Count = 0
    frames_missing: Count = 0
    frames_late: Count = 0
    reason: Annotated[str, Field(max_length=200)] = ""
    source: Literal["stream", "cache"] = "stream"  # cache: played from a prefetched item


class CacheReport(Message):
    """Prefetch results on ``dev/{id}/cache``: an item stored (hash verified) or refused;
    a play armed (the item is here) or missing (send me the stream instead)."""

    item: Uuid
    state: Literal["stored", "refused", "armed", "missing", "cancelled"]
    broadcast: Uuid | None = None  # for armed / missing / cancelled
    detail: Annotated[str, Field(max_length=200)] = ""


class FirmwareStatus(Message):
    """On ``dev/{device}/fw/status``: the result of a firmware offer."""

    rollout: Uuid
    version: Annotated[str, Field(max_length=64)]
    state: Literal["installed", "refused"]
    detail: Annotated[str, Field(max_length=200)] = ""


class Ack(Message):
    id: Uuid
    ok: bool
    detail: Annotated[str, Field(max_length=500)] = ""


class TimeRequest(Message):
    id: Count
    t1_us: Us  # device clock when sent


class TimeResponse(Message):
    id: Count
    t1_us: Us  # echoed
    t2_us: Us  # controller clock on receipt
    t3_us: Us  # controller clock on send


MESSAGE_TYPES: dict[str, type[Message]] = {
    m.__name__: m
    for m in (
        StreamStart,
        StreamEnd,
        ItemOffer,
        PlayItem,
        FirmwareOffer,
        DeviceConfig,
        Command,
        Presence,
        Telemetry,
        PlayReport,
        CacheReport,
        FirmwareStatus,
        Ack,
        TimeRequest,
        TimeResponse,
    )
}

M = TypeVar("M", bound=Message)


def dump(msg: Message) -> bytes:
    return msg.model_dump_json(exclude_none=True).encode()


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse(model: type[M], payload: bytes | str) -> M:
    """Parse one JSON message; raise ProtocolError saying what is wrong."""
    try:
        raw = payload.encode() if isinstance(payload, str) else payload
    except UnicodeEncodeError:
        raise ProtocolError(f"{model.__name__}: text is not valid Unicode") from None
    if len(raw) > MAX_JSON_BYTES:
        raise ProtocolError(f"{model.__name__}: {len(raw)} bytes is over {MAX_JSON_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{model.__name__}: payload is not UTF-8") from None
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"{model.__name__}: not JSON ({exc.msg})") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise ProtocolError(f"{model.__name__}: not acceptable JSON ({exc})") from None
    except RecursionError:
        raise ProtocolError(f"{model.__name__}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"{model.__name__}: expected a JSON object")
    version = data.get("v", PROTOCOL_VERSION)
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise ProtocolError(f"{model.__name__}: protocol version {version!r} unsupported")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(f"{model.__name__}: {_describe(exc)}") from None
