"""Every MQTT topic Loa uses, built and parsed in this one module.

Layout (all segments validated, see docs/protocol.md, "Topics")::

    loa/v1/{commune}/audio/all                 audio frames for the whole commune
    loa/v1/{commune}/audio/hamlet/{hamlet}     audio frames for one hamlet
    loa/v1/{commune}/audio/zone/{zone}         audio frames for one zone
    loa/v1/{commune}/audio/device/{device}     audio frames for one speaker
    loa/v1/{commune}/mp3/...                   the same groups, for MP3-only speakers
    loa/v1/{commune}/alert/...                 emergency audio only (same groups, Opus)
    loa/v1/{commune}/alert-mp3/...             emergency audio for MP3-only speakers
    loa/v1/{commune}/dev/{device}/presence     retained presence (device → controller)
    loa/v1/{commune}/dev/{device}/telemetry    health (device → controller)
    loa/v1/{commune}/dev/{device}/report       proof of play (device → controller)
    loa/v1/{commune}/dev/{device}/ack          command results (device → controller)
    loa/v1/{commune}/dev/{device}/cache        prefetch results (device → controller)
    loa/v1/{commune}/dev/{device}/time/req     clock-sync request (device → controller)
    loa/v1/{commune}/dev/{device}/time/resp    clock-sync answer (controller → device)
    loa/v1/{commune}/dev/{device}/cmd          signed commands (controller → device)
    loa/v1/{commune}/dev/{device}/config       retained signed config (controller → device)
    loa/v1/{commune}/dev/{device}/fw           firmware offer and image (controller → device)
    loa/v1/{commune}/dev/{device}/fw/status    firmware result (device → controller)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from loa.errors import ProtocolError

ROOT = "loa"
VERSION = "v1"
_SEGMENT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class GroupKind(StrEnum):
    """What an audio topic addresses."""

    COMMUNE = "all"
    HAMLET = "hamlet"
    ZONE = "zone"
    DEVICE = "device"


class DeviceTopic(StrEnum):
    """The per-device topics under ``loa/v1/{commune}/dev/{device}/``."""

    PRESENCE = "presence"
    TELEMETRY = "telemetry"
    REPORT = "report"
    ACK = "ack"
    CACHE = "cache"
    TIME_REQ = "time/req"
    TIME_RESP = "time/resp"
    CMD = "cmd"
    CONFIG = "config"
    FW = "fw"
    FW_STATUS = "fw/status"


#: Topics a device publishes on (and nothing else).
DEVICE_PUBLISHES = frozenset(
    {
        DeviceTopic.PRESENCE,
        DeviceTopic.TELEMETRY,
        DeviceTopic.REPORT,
        DeviceTopic.ACK,
        DeviceTopic.CACHE,
        DeviceTopic.TIME_REQ,
        DeviceTopic.FW_STATUS,
    }
)


def validate_segment(value: str, what: str = "segment") -> str:
    """Return ``value`` if it is a safe topic segment, else raise a clear ProtocolError.

    A segment is 1–63 characters of lowercase ASCII letters, digits, ``-`` and ``_``,
    starting with a letter or digit: no ``/``, ``+``, ``#``, spaces or NUL, so an id can
    never widen a subscription or escape its place in the tree.
    """
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
        raise ProtocolError(
            f"{what} {value!r} is not a valid id: use 1-63 lowercase letters, digits, "
            "'-' or '_', starting with a letter or digit"
        )
    return value


@dataclass(frozen=True, order=True)
class Group:
    """An audio destination: a whole commune, a hamlet, a zone or one device."""

    commune: str
    kind: GroupKind
    id: str = ""

    def __post_init__(self) -> None:
        validate_segment(self.commune, "commune")
        if self.kind is GroupKind.COMMUNE:
            if self.id:
                raise ProtocolError("a whole-commune group has no id")
        else:
            validate_segment(self.id, self.kind.value)

    @property
    def topic(self) -> str:
        """The Opus audio topic of this group."""
        return audio_topic(self)

    def topic_for(self, codec: str, *, emergency: bool = False) -> str:
        """The audio topic for ``codec``: ``opus`` (``audio/…``) or ``mp3`` (``mp3/…``);
        emergency audio has its own area (``alert/…``, ``alert-mp3/…``)."""
        return audio_topic(self, codec, emergency=emergency)

    def topics_for(self, codec: str) -> tuple[str, str]:
        """What a speaker of this group subscribes to: the audio and the alert topic."""
        return (self.topic_for(codec), self.topic_for(codec, emergency=True))


#: Audio area of the topic tree per codec: speakers that decode Opus listen under
#: ``audio/``; speakers that only decode MP3 listen under ``mp3/``.
AUDIO_AREAS = {"opus": "audio", "mp3": "mp3"}
#: Emergency audio travels only here, and nothing else does, so a speaker whose normal
#: subscriptions are lost or never made can still be reached by alerts.
ALERT_AREAS = {"opus": "alert", "mp3": "alert-mp3"}


def audio_topic(group: Group, codec: str = "opus", *, emergency: bool = False) -> str:
    try:
        area = (ALERT_AREAS if emergency else AUDIO_AREAS)[codec]
    except KeyError:
        raise ProtocolError(f"no audio topics for codec {codec!r}") from None
    base = f"{ROOT}/{VERSION}/{group.commune}/{area}"
    if group.kind is GroupKind.COMMUNE:
        return f"{base}/all"
    return f"{base}/{group.kind.value}/{group.id}"


def device_topic(commune: str, device: str, which: DeviceTopic) -> str:
    validate_segment(commune, "commune")
    validate_segment(device, "device")
    return f"{ROOT}/{VERSION}/{commune}/dev/{device}/{which.value}"


def device_filter(which: DeviceTopic, commune: str | None = None) -> str:
    """Subscription filter for one per-device topic across all devices (and communes)."""
    c = validate_segment(commune, "commune") if commune is not None else "+"
    return f"{ROOT}/{VERSION}/{c}/dev/+/{which.value}"


def device_inbox_filter(commune: str, device: str) -> list[str]:
    """What a device subscribes to for its own controller → device topics."""
    return [
        device_topic(commune, device, DeviceTopic.CMD),
        device_topic(commune, device, DeviceTopic.CONFIG),
        device_topic(commune, device, DeviceTopic.TIME_RESP),
        device_topic(commune, device, DeviceTopic.FW),
    ]


@dataclass(frozen=True)
class ParsedTopic:
    """A topic taken apart. Exactly one of ``group`` / ``device`` is set."""

    commune: str
    group: Group | None = None
    device: str | None = None
    which: DeviceTopic | None = None
    codec: str = ""  # for audio topics: "opus" or "mp3"
    emergency: bool = False  # an alert/… topic


def parse_topic(topic: str) -> ParsedTopic:
    """Parse any Loa topic; raise ProtocolError naming what is wrong."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != ROOT or parts[1] != VERSION:
        raise ProtocolError(f"topic {topic!r} is not under {ROOT}/{VERSION}/")
    commune = validate_segment(parts[2], "commune")
    area, rest = parts[3], parts[4:]
    codec = next((c for c, a in AUDIO_AREAS.items() if a == area), None)
    alert = next((c for c, a in ALERT_AREAS.items() if a == area), None)
    if codec is not None or alert is not None:
        emergency = alert is not None
        codec = alert or codec or ""
        if rest == ["all"]:
            group = Group(commune, GroupKind.COMMUNE)
            return ParsedTopic(commune, group=group, codec=codec, emergency=emergency)
        if len(rest) == 2 and rest[0] in {k.value for k in GroupKind if k != GroupKind.COMMUNE}:
            group = Group(commune, GroupKind(rest[0]), rest[1])
            return ParsedTopic(commune, group=group, codec=codec, emergency=emergency)
        raise ProtocolError(f"topic {topic!r}: unknown audio group")
    if area == "dev" and len(rest) >= 2:
        device = validate_segment(rest[0], "device")
        tail = "/".join(rest[1:])
        try:
            which = DeviceTopic(tail)
        except ValueError:
            raise ProtocolError(f"topic {topic!r}: unknown device topic {tail!r}") from None
        return ParsedTopic(commune, device=device, which=which)
    raise ProtocolError(f"topic {topic!r}: unknown area {area!r}")


def mqtt_publish_overhead(topic: str, payload_len: int, qos: int = 1) -> int:
    """Bytes an MQTT 3.1.1 PUBLISH adds to a payload: fixed header, topic, packet id."""
    variable = 2 + len(topic.encode("utf-8")) + (2 if qos else 0)
    remaining = variable + payload_len
    length_bytes = 1
    while remaining >= 128:
        remaining //= 128
        length_bytes += 1
    return 1 + length_bytes + variable


def retain_refused(topic: str) -> bool:
    """Whether a retained message on ``topic`` is one a device may not leave: devices
    retain only their presence; anything else they publish retained is cleared by the
    controller when it sees it (docs/protocol.md, *Retained messages*)."""
    try:
        parsed = parse_topic(topic)
    except ProtocolError:
        return False
    return parsed.which in DEVICE_PUBLISHES and parsed.which is not DeviceTopic.PRESENCE
