"""Topics: every Loa topic round-trips through parse_topic; bad ids and shapes are refused."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.topics import (
    DEVICE_PUBLISHES,
    DeviceTopic,
    Group,
    GroupKind,
    device_filter,
    device_inbox_filter,
    device_topic,
    parse_topic,
    validate_segment,
)
from loa.errors import ProtocolError

FIRST = "abcdefghijklmnopqrstuvwxyz0123456789"
REST = FIRST + "-_"

segments = st.builds(
    lambda head, tail: head + tail, st.sampled_from(FIRST), st.text(REST, max_size=62)
)
non_commune_kinds = st.sampled_from([k for k in GroupKind if k is not GroupKind.COMMUNE])


def _group(commune: str, kind: GroupKind, ident: str) -> Group:
    return Group(commune, kind, "" if kind is GroupKind.COMMUNE else ident)


# --- round trips --------------------------------------------------------------------


@settings(max_examples=200)
@given(commune=segments, kind=st.sampled_from(GroupKind), ident=segments)
def test_group_topic_round_trip(commune: str, kind: GroupKind, ident: str) -> None:
    group = _group(commune, kind, ident)
    topic = group.topic
    assert topic.startswith(f"loa/v1/{commune}/audio/")
    parsed = parse_topic(topic)
    assert parsed.group == group
    assert parsed.group.kind is kind
    assert parsed.commune == commune
    assert parsed.device is None
    assert parsed.which is None


@settings(max_examples=200)
@given(commune=segments, device=segments, which=st.sampled_from(DeviceTopic))
def test_device_topic_round_trip(commune: str, device: str, which: DeviceTopic) -> None:
    topic = device_topic(commune, device, which)
    assert topic == f"loa/v1/{commune}/dev/{device}/{which.value}"
    parsed = parse_topic(topic)
    assert parsed.commune == commune
    assert parsed.device == device
    assert parsed.which is which
    assert parsed.group is None


@pytest.mark.parametrize("kind", list(GroupKind))
def test_every_group_kind_round_trips(kind: GroupKind) -> None:
    group = _group("xa-an-binh", kind, "ap_1")
    expected = (
        "loa/v1/xa-an-binh/audio/all"
        if kind is GroupKind.COMMUNE
        else f"loa/v1/xa-an-binh/audio/{kind.value}/ap_1"
    )
    assert group.topic == expected
    assert parse_topic(expected).group == group


@pytest.mark.parametrize("which", list(DeviceTopic))
def test_every_device_topic_round_trips(which: DeviceTopic) -> None:
    topic = device_topic("c1", "spk-007", which)
    parsed = parse_topic(topic)
    assert (parsed.commune, parsed.device, parsed.which) == ("c1", "spk-007", which)


def test_device_filters() -> None:
    assert device_filter(DeviceTopic.PRESENCE) == "loa/v1/+/dev/+/presence"
    assert device_filter(DeviceTopic.TIME_REQ, "c1") == "loa/v1/c1/dev/+/time/req"
    with pytest.raises(ProtocolError, match="commune"):
        device_filter(DeviceTopic.PRESENCE, "#")
    inbox = device_inbox_filter("c1", "d1")
    assert inbox == [
        "loa/v1/c1/dev/d1/cmd",
        "loa/v1/c1/dev/d1/config",
        "loa/v1/c1/dev/d1/time/resp",
        "loa/v1/c1/dev/d1/fw",
    ]
    # a device never subscribes to what it publishes itself
    assert not {parse_topic(t).which for t in inbox} & DEVICE_PUBLISHES


# --- segment refusals ---------------------------------------------------------------

BAD_SEGMENTS = [
    pytest.param("a/b", id="slash"),
    pytest.param("+", id="plus"),
    pytest.param("a+", id="plus-inside"),
    pytest.param("#", id="hash"),
    pytest.param("ap#1", id="hash-inside"),
    pytest.param("Ap1", id="uppercase"),
    pytest.param("ap 1", id="space"),
    pytest.param("ap\x001", id="nul"),
    pytest.param("", id="empty"),
    pytest.param("a" * 64, id="64-chars"),
    pytest.param("ấp-1", id="vietnamese"),
    pytest.param("-ap", id="leading-dash"),
    pytest.param("_ap", id="leading-underscore"),
    pytest.param("ap.1", id="dot"),
]


@pytest.mark.parametrize("bad", BAD_SEGMENTS)
def test_validate_segment_refuses(bad: str) -> None:
    with pytest.raises(ProtocolError) as info:
        validate_segment(bad, "hamlet")
    message = info.value.message
    assert message.startswith(f"hamlet {bad!r} is not a valid id")
    assert "lowercase" in message


@pytest.mark.parametrize("bad", BAD_SEGMENTS)
def test_builders_refuse_bad_ids(bad: str) -> None:
    with pytest.raises(ProtocolError, match=r"^commune "):
        Group(bad, GroupKind.COMMUNE)
    with pytest.raises(ProtocolError, match=r"^zone "):
        Group("c1", GroupKind.ZONE, bad)
    with pytest.raises(ProtocolError, match=r"^device "):
        device_topic("c1", bad, DeviceTopic.CMD)
    with pytest.raises(ProtocolError, match=r"^commune "):
        device_topic(bad, "d1", DeviceTopic.CMD)


@pytest.mark.parametrize("good", ["a", "0", "a" * 63, "ap-1_b", "9-_"])
def test_validate_segment_accepts(good: str) -> None:
    assert validate_segment(good) == good


def test_validate_segment_refuses_non_strings() -> None:
    with pytest.raises(ProtocolError, match="not a valid id"):
        validate_segment(123)  # type: ignore[arg-type]


@settings(max_examples=200)
@given(st.text(max_size=70) | st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}\n?", fullmatch=True))
def test_validate_segment_accepts_exactly_the_documented_ids(value: str) -> None:
    documented = re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", value) is not None
    try:
        validate_segment(value)
    except ProtocolError:
        accepted = False
    else:
        accepted = True
    assert accepted == documented


@pytest.mark.parametrize("bad", ["abc\n", "spk-1\n"])
def test_trailing_newline_is_refused(bad: str) -> None:
    with pytest.raises(ProtocolError):
        validate_segment(bad, "device")
    with pytest.raises(ProtocolError):
        parse_topic(f"loa/v1/c1/dev/{bad}/presence")


def test_group_shape_rules() -> None:
    with pytest.raises(ProtocolError, match="whole-commune group has no id"):
        Group("c1", GroupKind.COMMUNE, "x")
    with pytest.raises(ProtocolError, match=r"^hamlet '' is not a valid id"):
        Group("c1", GroupKind.HAMLET)


# --- topic refusals -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("", "is not under loa/v1/"),
        ("loa", "is not under loa/v1/"),
        ("loa/v1/c1", "is not under loa/v1/"),
        ("loa/v2/c1/audio/all", "is not under loa/v1/"),
        ("LOA/v1/c1/audio/all", "is not under loa/v1/"),
        ("foo/v1/c1/audio/all", "is not under loa/v1/"),
        ("/loa/v1/c1/audio/all", "is not under loa/v1/"),
        ("loa/v1/c1/video/all", "unknown area 'video'"),
        ("loa/v1/c1//all", "unknown area ''"),
        ("loa/v1/c1/dev/d1", "unknown area 'dev'"),
        ("loa/v1/c1/dev/d1/firmware", "unknown device topic 'firmware'"),
        ("loa/v1/c1/dev/d1/PRESENCE", "unknown device topic 'PRESENCE'"),
        ("loa/v1/c1/dev/d1/time", "unknown device topic 'time'"),
        ("loa/v1/c1/dev/d1/time/req/x", "unknown device topic 'time/req/x'"),
        ("loa/v1/c1/dev/d1/presence/", "unknown device topic 'presence/'"),
        ("loa/v1/c1/audio", "unknown audio group"),
        ("loa/v1/c1/audio/hamlet", "unknown audio group"),
        ("loa/v1/c1/audio/hamlet/a/b", "unknown audio group"),
        ("loa/v1/c1/audio/all/x", "unknown audio group"),
        ("loa/v1/c1/audio/all/", "unknown audio group"),
        ("loa/v1/c1/audio/street/a", "unknown audio group"),
        ("loa/v1/c1/audio/ALL", "unknown audio group"),
        ("loa/v1/c1/audio/hamlet/", "hamlet '' is not a valid id"),
        ("loa/v1/c1/audio/zone/ấp-1", "zone 'ấp-1' is not a valid id"),
        ("loa/v1/c1/audio/device/A", "device 'A' is not a valid id"),
        ("loa/v1/C1/audio/all", "commune 'C1' is not a valid id"),
        ("loa/v1/+/dev/+/presence", "commune '+' is not a valid id"),
        ("loa/v1/c1/dev/#/presence", "device '#' is not a valid id"),
        ("loa/v1/c1/dev/+/presence", "device '+' is not a valid id"),
        ("loa/v1/ấp-1/audio/all", "commune 'ấp-1' is not a valid id"),
        ("loa/v1/x\x00/audio/all", "commune 'x\\x00' is not a valid id"),
    ],
)
def test_parse_topic_refuses(topic: str, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_topic(topic)
    assert reason in info.value.message


@settings(max_examples=150)
@given(
    commune=segments,
    kind=non_commune_kinds,
    ident=segments,
    extra=st.lists(segments, min_size=1, max_size=3),
)
def test_audio_topics_with_extra_levels_are_refused(
    commune: str, kind: GroupKind, ident: str, extra: list[str]
) -> None:
    topic = "/".join([Group(commune, kind, ident).topic, *extra])
    with pytest.raises(ProtocolError, match="unknown audio group"):
        parse_topic(topic)
