"""JSON messages: every model round-trips; malformed input is always a ProtocolError."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.messages import (
    MAX_JSON_BYTES,
    MESSAGE_TYPES,
    Ack,
    CacheReport,
    Command,
    Counters,
    DeviceConfig,
    FirmwareOffer,
    FirmwareStatus,
    GroupRef,
    ItemOffer,
    Message,
    PlayItem,
    PlayReport,
    Presence,
    StreamEnd,
    StreamStart,
    Telemetry,
    TimeRequest,
    TimeResponse,
    dump,
    parse,
)
from loa.errors import ProtocolError

FIRST = "abcdefghijklmnopqrstuvwxyz0123456789"
ids = st.builds(lambda a, b: a + b, st.sampled_from(FIRST), st.text(FIRST + "-_", max_size=62))
uuids = st.uuids().map(str)
us = st.integers(0, 2**63 - 1)
counts = st.integers(0, 2**32 - 1)
codecs = st.sampled_from(["opus", "mp3"])
shas = st.binary(min_size=32, max_size=32).map(bytes.hex)

VIETNAMESE = (
    "aăâbcdđeêghiklmnoôơpqrstuưvxy"
    "AĂÂBCDĐEÊGHIKLMNOÔƠPQRSTUƯVXY"
    "áàảãạắằẳẵặấầẩẫậéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ"
    " ,.:-!?0123456789"
)
vietnamese_text = st.text(VIETNAMESE, max_size=200)
titles = st.one_of(
    vietnamese_text,
    st.text(max_size=200),
    st.sampled_from(
        [
            "Thông báo khẩn: bão số 3 đổ bộ",
            "Lịch tiêm chủng ấp Bình Thạnh",
            "Phòng chống dịch sốt xuất huyết",
            "Điều chỉnh giờ phát thanh",
        ]
    ),
)


def _opt(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.none() | strategy


STRATEGIES: dict[str, st.SearchStrategy[Message]] = {
    "StreamStart": st.builds(
        StreamStart,
        broadcast=uuids,
        codec=codecs,
        sample_rate=st.integers(8000, 48000),
        channels=st.integers(1, 2),
        frame_ms=st.integers(2, 120),
        pre_skip=st.integers(0, 65535),
        chunk_ms=st.integers(20, 10_000),
        chunks=st.integers(0, 1_000_000),
        duration_ms=st.integers(0, 2**62),
        title=titles,
        volume=_opt(st.integers(0, 100)),
    ),
    "ItemOffer": st.builds(
        ItemOffer,
        item=uuids,
        sha256=shas,
        size=st.integers(1, 64 * 1024 * 1024),
        slices=st.integers(1, 1_000_000),
        codec=st.just("opus"),
        sample_rate=st.integers(8000, 48000),
        channels=st.integers(1, 2),
        frame_ms=st.integers(2, 120),
        pre_skip=st.integers(0, 65535),
        chunks=st.integers(1, 1_000_000),
        duration_ms=st.integers(1, 2**62),
        title=titles,
    ),
    "PlayItem": st.builds(
        PlayItem,
        broadcast=uuids,
        item=uuids,
        sha256=shas,
        at_us=us,
        action=st.sampled_from(["play", "cancel"]),
        volume=_opt(st.integers(0, 100)),
        title=titles,
    ),
    "FirmwareOffer": st.builds(
        FirmwareOffer,
        rollout=uuids,
        version=st.text(min_size=1, max_size=64),
        sha256=shas,
        size=st.integers(1, 64 * 1024 * 1024),
        slices=st.integers(1, 1_000_000),
        key_id=st.binary(min_size=4, max_size=4).map(bytes.hex),
        manifest_sig=st.binary(min_size=64, max_size=64).map(bytes.hex),
    ),
    "FirmwareStatus": st.builds(
        FirmwareStatus,
        rollout=uuids,
        version=st.text(max_size=64),
        state=st.sampled_from(["installed", "refused"]),
        detail=st.text(max_size=200),
    ),
    "CacheReport": st.builds(
        CacheReport,
        item=uuids,
        state=st.sampled_from(["stored", "refused", "armed", "missing", "cancelled"]),
        broadcast=_opt(uuids),
        detail=st.text(max_size=200),
    ),
    "StreamEnd": st.builds(
        StreamEnd,
        chunks=counts,
        reason=st.sampled_from(["complete", "preempted", "cancelled", "stopped"]),
    ),
    "DeviceConfig": st.builds(
        DeviceConfig,
        device=ids,
        commune=ids,
        groups=st.lists(
            st.just(GroupRef(kind="all"))
            | st.builds(GroupRef, kind=st.sampled_from(["hamlet", "zone", "device"]), id=ids),
            max_size=64,
        ),
        volume=_opt(st.integers(0, 100)),
        issued_us=us,
        keys=_opt(st.lists(shas, max_size=4)),
    ),
    "Command": st.builds(
        Command,
        id=uuids,
        action=st.sampled_from(
            ["set_volume", "test_tone", "reboot", "resync_clock", "stop", "update_config"]
        ),
        args=st.dictionaries(
            st.text(max_size=20),
            st.integers(-(2**63), 2**63 - 1) | st.text(max_size=30) | st.booleans(),
            max_size=16,
        ),
        expires_us=us,
    ),
    "Presence": st.builds(
        Presence,
        state=st.sampled_from(["online", "offline"]),
        at_us=_opt(us),
        fw=st.text(max_size=64),
        codecs=st.lists(codecs, max_size=4),
        reason=vietnamese_text,
        session=_opt(st.binary(min_size=1, max_size=16).map(bytes.hex)),
    ),
    "Telemetry": st.builds(
        Telemetry,
        at_us=us,
        uptime_s=st.integers(0, 2**62),
        volume=st.integers(0, 100),
        rssi_dbm=_opt(st.integers(-150, 0)),
        temperature_c=_opt(st.floats(-50, 150) | st.integers(-50, 150)),
        supply_v=_opt(st.floats(0, 400)),
        amp_fault=st.booleans(),
        free_storage_kb=_opt(st.integers(0, 2**62)),
        fw=st.text(max_size=64),
        clock_offset_us=_opt(st.integers(-(2**63), 2**63 - 1)),
        counters=st.builds(Counters, refused=counts, late=counts, duplicate=counts, played=counts),
    ),
    "PlayReport": st.builds(
        PlayReport,
        stream=uuids,
        outcome=st.sampled_from(["played", "partial", "preempted", "missed", "refused"]),
        started_us=_opt(us),
        ended_us=_opt(us),
        frames_played=counts,
        frames_missing=counts,
        frames_late=counts,
        reason=st.text(max_size=200),
        source=st.sampled_from(["stream", "cache"]),
    ),
    "Ack": st.builds(Ack, id=uuids, ok=st.booleans(), detail=st.text(max_size=500)),
    "TimeRequest": st.builds(TimeRequest, id=counts, t1_us=us),
    "TimeResponse": st.builds(TimeResponse, id=counts, t1_us=us, t2_us=us, t3_us=us),
}


def test_a_strategy_for_every_message_type() -> None:
    assert set(STRATEGIES) == set(MESSAGE_TYPES)


@pytest.mark.parametrize("name", sorted(MESSAGE_TYPES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(name: str, data) -> None:
    model = MESSAGE_TYPES[name]
    msg = data.draw(STRATEGIES[name])
    assert type(msg) is model
    raw = dump(msg)
    doc = json.loads(raw)
    assert doc["v"] == 1
    assert None not in doc.values()  # None fields are omitted, not sent as null
    assert parse(model, raw) == msg
    assert parse(model, raw.decode()) == msg


@settings(max_examples=60)
@given(title=st.text(VIETNAMESE, min_size=1, max_size=200))
def test_vietnamese_titles_survive_as_utf8(title: str) -> None:
    msg = StreamStart(
        broadcast="0" * 8 + "-0000-0000-0000-" + "0" * 12,
        codec="opus",
        sample_rate=48000,
        channels=1,
        frame_ms=20,
        chunk_ms=500,
        chunks=1,
        duration_ms=1,
        title=title,
    )
    raw = dump(msg)
    assert title.encode() in raw  # plain UTF-8 on the wire, not \\u escapes
    assert parse(StreamStart, raw).title == title


def test_none_fields_are_omitted() -> None:
    raw = dump(Presence(state="offline"))
    assert json.loads(raw) == {"v": 1, "state": "offline", "fw": "", "codecs": [], "reason": ""}


# --- refusals -----------------------------------------------------------------------

TIME_REQ = {"v": 1, "id": 7, "t1_us": 1_767_225_600_000_000}
TELEMETRY = {"at_us": 1, "uptime_s": 5, "volume": 50}
START = {
    "broadcast": "12345678-90ab-cdef-1234-567890abcdef",
    "codec": "opus",
    "sample_rate": 48000,
    "channels": 1,
    "frame_ms": 20,
    "chunk_ms": 500,
    "chunks": 3,
    "duration_ms": 1500,
}


def _refused(model: type[Message], payload: bytes | str | dict) -> str:
    if isinstance(payload, dict):
        payload = json.dumps(payload, ensure_ascii=False).encode()
    with pytest.raises(ProtocolError) as info:
        parse(model, payload)
    message = info.value.message
    assert message.startswith(f"{model.__name__}: ")
    return message


def test_the_base_documents_are_valid() -> None:
    assert parse(TimeRequest, json.dumps(TIME_REQ)).id == 7
    assert parse(Telemetry, json.dumps(TELEMETRY)).volume == 50
    assert parse(StreamStart, json.dumps(START)).chunks == 3


@pytest.mark.parametrize("payload", [b"\xff\xfe{}", b'{"id": "\xc3"}', b"\xed\xa0\x80"])
def test_not_utf8(payload: bytes) -> None:
    assert "payload is not UTF-8" in _refused(TimeRequest, payload)


@pytest.mark.parametrize("payload", [b"", b"{", b"{nope}", b"{'id': 1}", b'{"id": 1,}', b"NaN]"])
def test_not_json(payload: bytes) -> None:
    assert "not JSON" in _refused(TimeRequest, payload)


@pytest.mark.parametrize("payload", [b"[]", b'[{"id": 1, "t1_us": 1}]', b"1", b'"x"', b"null"])
def test_not_an_object(payload: bytes) -> None:
    assert "expected a JSON object" in _refused(TimeRequest, payload)


def test_size_limit() -> None:
    base = json.dumps(TIME_REQ).encode()
    at_limit = base + b" " * (MAX_JSON_BYTES - len(base))
    assert parse(TimeRequest, at_limit).id == 7
    message = _refused(TimeRequest, at_limit + b" ")
    assert f"{MAX_JSON_BYTES + 1} bytes is over {MAX_JSON_BYTES}" in message
    # counted in UTF-8 bytes, not characters
    title = "ấ" * (MAX_JSON_BYTES // 3)
    assert "is over" in _refused(StreamStart, {**START, "title": title})


def test_unknown_field() -> None:
    message = _refused(TimeRequest, {**TIME_REQ, "t2_us": 5})
    assert "t2_us: Extra inputs are not permitted" in message
    nested = {**TELEMETRY, "counters": {"played": 1, "skipped": 2}}
    assert "counters.skipped: Extra inputs are not permitted" in _refused(Telemetry, nested)


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", "7"), ("id", True), ("id", 7.0), ("id", None), ("id", [7]), ("t1_us", "1")],
)
def test_wrong_type(field: str, value: object) -> None:
    message = _refused(TimeRequest, {**TIME_REQ, field: value})
    assert f"{field}: Input should be a valid integer" in message


@pytest.mark.parametrize(
    ("model", "doc", "field", "value"),
    [
        (Telemetry, TELEMETRY, "amp_fault", 1),
        (Telemetry, TELEMETRY, "amp_fault", "true"),
        (Telemetry, TELEMETRY, "fw", 12),
        (Telemetry, TELEMETRY, "temperature_c", "20.5"),
        (Telemetry, TELEMETRY, "volume", False),
        (StreamStart, START, "title", ["x"]),
        (StreamStart, START, "codec", 1),
    ],
)
def test_wrong_type_other_fields(
    model: type[Message], doc: dict, field: str, value: object
) -> None:
    assert f"{field}: " in _refused(model, {**doc, field: value})


@pytest.mark.parametrize("missing", ["id", "t1_us"])
def test_missing_required_field(missing: str) -> None:
    doc = {k: v for k, v in TIME_REQ.items() if k != missing}
    assert f"{missing}: Field required" in _refused(TimeRequest, doc)


def test_v_may_be_omitted() -> None:
    doc = {k: v for k, v in TIME_REQ.items() if k != "v"}
    assert parse(TimeRequest, json.dumps(doc)).v == 1


@pytest.mark.parametrize(("version", "shown"), [(2, "2"), (0, "0"), ("1", "'1'"), (None, "None")])
def test_other_protocol_versions(version: object, shown: str) -> None:
    message = _refused(TimeRequest, {**TIME_REQ, "v": version})
    assert f"protocol version {shown} unsupported" in message


@pytest.mark.parametrize("version", [True, 1.0])
def test_v_of_the_wrong_type_is_refused(version: object) -> None:
    _refused(TimeRequest, {**TIME_REQ, "v": version})


@pytest.mark.parametrize(
    ("model", "doc", "field", "value"),
    [
        (TimeRequest, TIME_REQ, "id", -1),
        (TimeRequest, TIME_REQ, "id", 2**32),
        (TimeRequest, TIME_REQ, "t1_us", 2**63),
        (Telemetry, TELEMETRY, "volume", 101),
        (Telemetry, TELEMETRY, "rssi_dbm", 1),
        (Telemetry, TELEMETRY, "rssi_dbm", -151),
        (Telemetry, TELEMETRY, "temperature_c", 150.5),
        (Telemetry, TELEMETRY, "supply_v", -0.1),
        (Telemetry, TELEMETRY, "fw", "x" * 65),
        (StreamStart, START, "sample_rate", 7999),
        (StreamStart, START, "sample_rate", 48001),
        (StreamStart, START, "channels", 3),
        (StreamStart, START, "frame_ms", 1),
        (StreamStart, START, "chunk_ms", 10_001),
        (StreamStart, START, "chunks", -1),
        (StreamStart, START, "duration_ms", -1),
        (StreamStart, START, "pre_skip", 65536),
        (StreamStart, START, "title", "ấ" * 201),
        (StreamStart, START, "codec", "aac"),
        (StreamStart, START, "broadcast", "12345678-90AB-CDEF-1234-567890ABCDEF"),
        (StreamStart, START, "broadcast", "1234567890abcdef1234567890abcdef"),
    ],
)
def test_value_out_of_range(model: type[Message], doc: dict, field: str, value: object) -> None:
    assert f"{field}: " in _refused(model, {**doc, field: value})


@pytest.mark.parametrize(
    ("model", "doc", "where"),
    [
        (Presence, {"state": "online", "codecs": ["opus"] * 5}, "codecs"),
        (Presence, {"state": "asleep"}, "state"),
        (
            DeviceConfig,
            {"device": "Loa 1", "commune": "c1", "groups": [], "issued_us": 0},
            "device",
        ),
        (
            DeviceConfig,
            {"device": "d1", "commune": "c1", "groups": [{"kind": "all"}] * 65, "issued_us": 0},
            "groups",
        ),
        (
            DeviceConfig,
            {"device": "d1", "commune": "c1", "groups": [{"kind": "street"}], "issued_us": 0},
            "groups.0.kind",
        ),
        (
            DeviceConfig,
            {"device": "d1", "commune": "c1", "groups": [{"kind": "zone", "id": "Z"}]},
            "groups.0.id",
        ),
        (
            Command,
            {
                "id": "12345678-90ab-cdef-1234-567890abcdef",
                "action": "stop",
                "args": {str(i): i for i in range(17)},
                "expires_us": 0,
            },
            "args",
        ),
        (
            Command,
            {
                "id": "12345678-90ab-cdef-1234-567890abcdef",
                "action": "format_disk",
                "expires_us": 0,
            },
            "action",
        ),
        (
            Command,
            {
                "id": "12345678-90ab-cdef-1234-567890abcdef",
                "action": "stop",
                "args": {"x": [1]},
                "expires_us": 0,
            },
            "args.x",
        ),
        (
            Ack,
            {"id": "12345678-90ab-cdef-1234-567890abcdef", "ok": True, "detail": "x" * 501},
            "detail",
        ),
        (StreamEnd, {"chunks": 1, "reason": "bored"}, "reason"),
    ],
)
def test_other_refusals(model: type[Message], doc: dict, where: str) -> None:
    assert f"{where}" in _refused(model, doc)


# --- garbage ------------------------------------------------------------------------

GARBAGE_MODELS = [Presence, Telemetry, PlayReport, TimeRequest]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=8,
)


def _field_soup(model: type[Message]) -> st.SearchStrategy[bytes]:
    """Objects with the model's own field names and arbitrary values: deep garbage."""
    names = [*model.model_fields, "v", "extra"]
    return st.dictionaries(st.sampled_from(names), json_values, max_size=len(names)).map(
        lambda d: json.dumps(d).encode()
    )


def _parse_or_protocol_error(model: type[Message], payload: bytes) -> None:
    try:
        result = parse(model, payload)
    except ProtocolError as exc:
        assert exc.message.startswith(model.__name__)
    else:
        assert type(result) is model
        assert parse(model, dump(result)) == result


@pytest.mark.parametrize("model", GARBAGE_MODELS, ids=lambda m: m.__name__)
@settings(max_examples=150, deadline=None)
@given(payload=st.binary(max_size=2048))
def test_arbitrary_bytes_only_raise_protocol_error(model: type[Message], payload: bytes) -> None:
    _parse_or_protocol_error(model, payload)


@pytest.mark.parametrize("model", GARBAGE_MODELS, ids=lambda m: m.__name__)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_arbitrary_json_only_raises_protocol_error(model: type[Message], data) -> None:
    payload = data.draw(
        st.one_of(json_values.map(lambda v: json.dumps(v).encode()), _field_soup(model))
    )
    _parse_or_protocol_error(model, payload)


@pytest.mark.parametrize("payload", [b"[" * 5000, b'{"a":' * 2000 + b"1" + b"}" * 2000])
def test_deeply_nested_json_is_a_protocol_error(payload: bytes) -> None:
    assert len(payload) <= MAX_JSON_BYTES
    assert "JSON nested too deeply" in _refused(Presence, payload)


def test_huge_integer_is_a_protocol_error() -> None:
    payload = b'{"v": 1, "id": ' + b"9" * 5000 + b', "t1_us": 1}'
    assert len(payload) <= MAX_JSON_BYTES
    _refused(TimeRequest, payload)


def test_lone_surrogates_are_refused() -> None:
    assert "fw: " in _refused(Presence, b'{"state": "online", "fw": "\\ud800"}')


@pytest.mark.parametrize(
    ("kind", "id_"), [("all", "ap-1"), ("hamlet", ""), ("zone", ""), ("device", "")]
)
def test_group_ref_id_must_match_its_kind(kind: str, id_: str) -> None:
    payload = {
        "device": "spk-1",
        "commune": "xa",
        "issued_us": 1,
        "groups": [{"kind": kind, "id": id_}],
    }
    with pytest.raises(ProtocolError, match="all' has no id"):
        parse(DeviceConfig, json.dumps(payload))
