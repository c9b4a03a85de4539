"""The inbound router: dispatch by topic; garbage dropped and counted, never raised."""

from __future__ import annotations

import logging

import pytest

from devices.router import Router
from devices.topics import DeviceTopic, Group, GroupKind, ParsedTopic, device_topic
from loa.errors import ProtocolError, SignatureError


class Recorder:
    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[ParsedTopic, bytes]] = []
        self.fail = fail

    async def __call__(self, parsed: ParsedTopic, payload: bytes) -> None:
        self.calls.append((parsed, payload))
        if self.fail is not None:
            raise self.fail


def _router_with_all_device_handlers() -> tuple[Router, dict[DeviceTopic, Recorder]]:
    router = Router()
    handlers = {which: Recorder() for which in DeviceTopic}
    for which, handler in handlers.items():
        router.on_device(which, handler)
    return router, handlers


@pytest.mark.parametrize("which", list(DeviceTopic))
async def test_routes_by_device_topic(which: DeviceTopic) -> None:
    router, handlers = _router_with_all_device_handlers()
    audio = Recorder()
    router.on_audio(audio)
    await router(device_topic("c1", "spk-1", which), b"payload")
    (parsed, payload), *rest = handlers[which].calls
    assert rest == []
    assert payload == b"payload"
    assert (parsed.commune, parsed.device, parsed.which, parsed.group) == (
        "c1",
        "spk-1",
        which,
        None,
    )
    others = [h for w, h in handlers.items() if w is not which]
    assert all(h.calls == [] for h in others)
    assert audio.calls == []
    assert not router.dropped


@pytest.mark.parametrize("kind", list(GroupKind))
async def test_routes_audio_groups(kind: GroupKind) -> None:
    router, handlers = _router_with_all_device_handlers()
    audio = Recorder()
    router.on_audio(audio)
    group = Group("c1", kind, "" if kind is GroupKind.COMMUNE else "ap-2")
    await router(group.topic, b"\x4c\x46frame")
    assert len(audio.calls) == 1
    parsed, payload = audio.calls[0]
    assert parsed.group == group
    assert parsed.device is None
    assert payload == b"\x4c\x46frame"
    assert all(h.calls == [] for h in handlers.values())


async def test_unhandled_topics_are_ignored_without_counting() -> None:
    router = Router()
    await router(device_topic("c1", "d1", DeviceTopic.TELEMETRY), b"{}")
    await router(Group("c1", GroupKind.COMMUNE).topic, b"frame")
    assert not router.dropped


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "not/loa",
        "loa/v2/c1/dev/d1/presence",
        "loa/v1/C1/dev/d1/presence",
        "loa/v1/c1/dev/d1/unknown",
        "loa/v1/c1/dev/d 1/presence",
        "loa/v1/c1/audio/street/x",
        "loa/v1/c1/weather/today",
        "loa/v1/ấp-1/audio/all",
    ],
)
async def test_bad_topics_are_dropped_and_counted(topic: str) -> None:
    router, handlers = _router_with_all_device_handlers()
    audio = Recorder()
    router.on_audio(audio)
    await router(topic, b"x")
    await router(topic, b"y")
    assert router.dropped == {"(bad topic)": 2}
    assert all(h.calls == [] for h in handlers.values())
    assert audio.calls == []


async def test_protocol_errors_from_handlers_are_counted_per_device(caplog) -> None:
    router = Router()
    router.on_device(DeviceTopic.TELEMETRY, Recorder(ProtocolError("Telemetry: volume: bad")))
    router.on_device(DeviceTopic.REPORT, Recorder(SignatureError("forged")))
    ok = Recorder()
    router.on_device(DeviceTopic.PRESENCE, ok)
    with caplog.at_level(logging.INFO, logger="devices.router"):
        await router(device_topic("c1", "d1", DeviceTopic.TELEMETRY), b"{}")
        await router(device_topic("c1", "d1", DeviceTopic.TELEMETRY), b"{}")
        await router(device_topic("c1", "d2", DeviceTopic.REPORT), b"{}")
        await router(device_topic("c1", "d1", DeviceTopic.PRESENCE), b"{}")
    assert router.dropped == {"d1": 2, "d2": 1}
    assert len(ok.calls) == 1
    assert any(
        "d1" in r.getMessage() and "Telemetry: volume: bad" in r.getMessage()
        for r in caplog.records
    )


async def test_protocol_errors_from_the_audio_handler_are_counted_per_group() -> None:
    router = Router()
    router.on_audio(Recorder(SignatureError("signed with unknown key id 00000000")))
    hamlet = Group("c1", GroupKind.HAMLET, "ap-1")
    await router(hamlet.topic, b"frame")
    await router(hamlet.topic, b"frame")
    await router(Group("c1", GroupKind.COMMUNE).topic, b"frame")
    assert router.dropped == {"loa/v1/c1/audio/hamlet/ap-1": 2, "loa/v1/c1/audio/all": 1}


async def test_other_errors_from_handlers_propagate() -> None:
    router = Router()
    router.on_device(DeviceTopic.ACK, Recorder(RuntimeError("bug in a handler")))
    with pytest.raises(RuntimeError, match="bug in a handler"):
        await router(device_topic("c1", "d1", DeviceTopic.ACK), b"{}")
    assert not router.dropped


async def test_the_last_registered_handler_wins() -> None:
    router = Router()
    first, second = Recorder(), Recorder()
    router.on_device(DeviceTopic.ACK, first)
    router.on_device(DeviceTopic.ACK, second)
    first_audio, second_audio = Recorder(), Recorder()
    router.on_audio(first_audio)
    router.on_audio(second_audio)
    await router(device_topic("c1", "d1", DeviceTopic.ACK), b"{}")
    await router(Group("c1", GroupKind.ZONE, "z").topic, b"f")
    assert (len(first.calls), len(second.calls)) == (0, 1)
    assert (len(first_audio.calls), len(second_audio.calls)) == (0, 1)
