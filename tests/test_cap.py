"""CAP 1.2: real-looking Vietnamese and English documents in, every Loa alert out, and
each malformed class refused with its message and nothing changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broadcaster.alerts import cap
from broadcaster.alerts.model import AlertType
from tests.conftest import Running, make_settings, serve
from tests.test_alerts import FLOOD, act, create, targets
from tests.test_api import COMMUNE, assert_error

HERE = Path(__file__).parent / "cap"
XML = {"content-type": "application/cap+xml"}


def sample(name: str) -> bytes:
    return (HERE / name).read_bytes()


async def post(r: Running, data: bytes, headers: dict[str, str] = XML) -> Any:
    return await r.client.post(f"/api/communes/{COMMUNE}/alerts/cap", content=data, headers=headers)


async def alerts_of(r: Running) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = (await r.client.get(f"/api/communes/{COMMUNE}/alerts")).json()[
        "alerts"
    ]
    return got


def test_parse_vietnamese_flood() -> None:
    doc = cap.parse(sample("flood-vi.xml"))
    assert (doc.status, doc.msg_type, doc.scope) == ("Actual", "Alert", "Public")
    info = doc.infos[0]
    assert cap.alert_type(info) is AlertType.FLOOD
    assert cap.risk_level(info) == 3
    assert [(a.desc, a.geocodes) for a in info.areas] == [("Ấp 1, Ấp 2", [])]


def test_parse_english_typhoon_maps_severity_to_level() -> None:
    info = cap.parse(sample("typhoon-en.xml")).infos[0]
    assert cap.alert_type(info) is AlertType.TYPHOON
    assert cap.risk_level(info) == 5  # Extreme


@pytest.mark.parametrize(
    ("event", "headline", "kind"),
    [
        ("Thông báo xả lũ hồ Trị An", "", AlertType.DAM_RELEASE),
        ("Cảnh báo lũ quét, sạt lở đất", "", AlertType.LANDSLIDE),
        ("Bão số 3 (Yagi)", "", AlertType.TYPHOON),
        ("Flash Flood Warning", "", AlertType.FLOOD),
        ("Thông báo", "Cảnh báo cháy rừng cấp V", AlertType.FIRE),
        ("Động đất mạnh 5,2 độ", "", AlertType.EARTHQUAKE),
        ("Thông báo dịch bệnh sốt xuất huyết", "", AlertType.EPIDEMIC),
        ("Thông báo cúp điện", "", AlertType.OTHER),
    ],
)
def test_hazard_type_from_words(event: str, headline: str, kind: AlertType) -> None:
    info = cap.parse(sample("flood-vi.xml")).infos[0]
    info.event, info.headline = event, headline
    assert cap.alert_type(info) is kind


async def test_import_holds_for_confirm_then_cancel_message_cancels(running: Running) -> None:
    resp = await post(running, sample("flood-vi.xml"))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["action"] == "held for confirm"
    alert = body["alert"]
    assert alert["status"] == "draft" and alert["type"] == "flood" and alert["risk_level"] == 3
    assert alert["targets"] == targets("ap-1", "ap-2")
    assert alert["source"] == "cap" and alert["cap_identifier"] == "VN-CT-PCTT-2026-1124-001"
    assert "Mực nước sông Hậu" in alert["message_vi"]
    await act(running, alert["id"], "confirm")
    cancel = await post(running, sample("flood-cancel.xml"))
    assert cancel.status_code == 201, cancel.text
    assert cancel.json()["alert"]["status"] == "cancelled"
    # the same document again is a duplicate
    again = await post(running, sample("flood-vi.xml"))
    assert "already imported" in assert_error(again, 409, "conflict")["error"]


async def test_english_typhoon_names_the_whole_commune(running: Running) -> None:
    """No speaker has a GPS position, so the polygon cannot be judged: the areaDesc
    decides. English only: kept as en-US, held for the Vietnamese message."""
    resp = await post(running, sample("typhoon-en.xml"))
    assert resp.status_code == 201, resp.text
    alert = resp.json()["alert"]
    assert alert["targets"] == [{"commune": COMMUNE}]
    assert alert["type"] == "typhoon" and alert["risk_level"] == 5
    assert alert["severity"] == "Extreme" and alert["urgency"] == "Expected"
    assert alert["language"] == "en-US" and alert["message_vi"] == ""
    assert "Typhoon No. 9" in alert["message_en"]


async def test_auto_trigger_policy(tmp_path: Path, broker: Any) -> None:
    settings = make_settings(tmp_path, broker, alerts={"cap_auto_trigger": True})
    async with serve(settings) as r:
        flood = (await post(r, sample("flood-vi.xml"))).json()  # Immediate + Severe
        typhoon = (await post(r, sample("typhoon-en.xml"))).json()  # Expected: held
    assert flood["action"] == "triggered" and flood["alert"]["status"] == "active"
    assert typhoon["action"].startswith("held")  # English only: never sounds on its own
    assert typhoon["alert"]["status"] == "draft"


def with_status(status: str, ident: str = "T-1") -> bytes:
    return (
        sample("flood-vi.xml")
        .replace(b"<status>Actual</status>", f"<status>{status}</status>".encode())
        .replace(b"VN-CT-PCTT-2026-1124-001", ident.encode())
    )


async def test_test_and_exercise_never_sound_on_public_speakers(running: Running) -> None:
    for status in ("Test", "Exercise"):
        resp = await post(running, with_status(status, f"T-{status}"))
        assert resp.status_code == 200, resp.text
        assert resp.json()["alert"] is None and "never sounds" in resp.json()["held"]
    system = await post(running, with_status("System", "T-system"))
    assert system.status_code == 200 and system.json()["alert"] is None
    assert await alerts_of(running) == []


async def test_test_alerts_go_to_the_test_zone_when_there_is_one(
    tmp_path: Path, broker: Any
) -> None:
    settings = make_settings(tmp_path, broker, alerts={"cap_test_zone": "cho-vi-tan"})
    async with serve(settings) as r:
        resp = await post(r, with_status("Exercise"))
    alert = resp.json()["alert"]
    assert alert["test"] is True
    assert alert["targets"] == [{"commune": COMMUNE, "zone": "cho-vi-tan"}]


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol3;</identifier></alert>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>"""


def replace(old: bytes, new: bytes) -> bytes:
    data = sample("flood-vi.xml")
    assert old in data
    return data.replace(old, new)


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"", 400, "not well-formed"),
        (b"<alert>unclosed", 400, "not well-formed"),
        (b"\xff\xfe garbage", 400, "not well-formed"),
        (BOMB, 400, "DTD or entities"),
        (XXE, 400, "DTD or entities"),
        (
            sample("flood-vi.xml").replace(b"cap:1.2", b"cap:1.1"),
            400,
            "root element must be",
        ),
        (replace(b"<identifier>VN-CT-PCTT-2026-1124-001</identifier>", b""), 400, "<identifier>"),
        (replace(b"VN-CT-PCTT-2026-1124-001", b"has space"), 400, "spaces"),
        (replace(b"<status>Actual</status>", b"<status>Real</status>"), 400, "<status>"),
        (replace(b"<msgType>Alert</msgType>", b"<msgType>Warn</msgType>"), 400, "<msgType>"),
        (replace(b"<scope>Public</scope>", b""), 400, "<scope>"),
        (replace(b"2026-11-24T06:30:00+07:00", b"24/11/2026 06:30"), 400, "<sent>"),
        (replace(b"2026-11-24T06:30:00+07:00", b"2026-02-30T06:30:00+07:00"), 400, "real date"),
        (replace(b"<urgency>Immediate</urgency>", b"<urgency>Now</urgency>"), 400, "<urgency>"),
        (replace(b"<severity>Severe</severity>", b""), 400, "<severity>"),
        (replace(b"<category>Met</category>", b"<category>Weather</category>"), 400, "category"),
        (replace(b"2099-11-24T18:00:00+07:00", b"2026-11-25T00:00:00+07:00"), 400, "expired"),
        (
            replace(b"2099-11-24T18:00:00+07:00", b"2020-01-01T00:00:00+07:00"),
            400,
            "is before its <sent>",
        ),
        (
            replace(b"<sent>2026-11-24T06:30:00+07:00", b"<sent>2099-11-24T06:30:00+07:00"),
            400,
            "in the future",
        ),
        (
            replace(
                "<areaDesc>Ấp 1, Ấp 2</areaDesc>".encode(), "<areaDesc>Hà Nội</areaDesc>".encode()
            ),
            400,
            "none of the CAP areas",
        ),
        (replace(b"<status>Actual</status>", b"<status>Draft</status>"), 400, "Draft"),
        (sample("flood-cancel.xml"), 400, "does not have"),
        (
            sample("flood-cancel.xml").replace(
                b"<references>bchpctt@cantho.gov.vn,VN-CT-PCTT-2026-1124-001,"
                b"2026-11-24T06:30:00+07:00</references>",
                b"",
            ),
            400,
            "<references>",
        ),
    ],
)
async def test_malformed_cap_is_refused_and_changes_nothing(
    running: Running, data: bytes, status: int, message: str
) -> None:
    resp = await post(running, data)
    body = assert_error(resp, status)
    assert message in body["error"], body
    assert await alerts_of(running) == []


async def test_oversized_and_non_xml_cap_are_refused(running: Running) -> None:
    huge = sample("flood-vi.xml").replace(b"</description>", b" " * 300_000 + b"</description>")
    assert_error(await post(running, huge), 413, "too_large")
    assert_error(await post(running, sample("flood-vi.xml"), {"content-type": "text/plain"}), 415)
    assert await alerts_of(running) == []


async def test_an_all_clear_exported_by_one_controller_clears_it_where_it_was_imported(
    running: Running,
) -> None:
    """Our all-clear is a CAP Update with responseType AllClear: another Loa that took
    the alert in ends it as an all-clear (the tone and text), not as an update."""
    alert = await create(running, {**FLOOD, "targets": targets("ap-3")})
    await act(running, alert["id"], "confirm")
    actual = (await running.client.get(f"/api/alerts/{alert['id']}/cap")).content
    resp = await post(running, actual)
    assert resp.status_code == 201, resp.text
    imported = resp.json()["alert"]
    await act(running, imported["id"], "confirm")
    await act(running, alert["id"], "all-clear")
    cleared = (await running.client.get(f"/api/alerts/{alert['id']}/cap")).content
    resp = await post(running, cleared)
    assert resp.status_code == 201, resp.text  # as for an imported Cancel
    assert resp.json()["action"] == "all clear"
    after = (await running.client.get(f"/api/alerts/{imported['id']}")).json()["alert"]
    assert after["status"] == "all_clear"
    assert [b["kind"] for b in after["broadcasts"]] == ["initial", "all_clear"]
    again = await post(running, cleared)  # the same message twice: refused, nothing changes
    assert again.status_code == 409


async def test_every_alert_exports_as_cap_that_imports_again(running: Running) -> None:
    alert = await create(running, {**FLOOD, "targets": targets("ap-1", "ap-2")})
    draft = cap.parse((await running.client.get(f"/api/alerts/{alert['id']}/cap")).content)
    assert draft.status == "Draft"  # not yet confirmed: never exported as Actual
    await act(running, alert["id"], "confirm")
    xml = (await running.client.get(f"/api/alerts/{alert['id']}/cap")).content
    doc = cap.parse(xml)  # valid by our own checks
    assert doc.status == "Actual" and doc.msg_type == "Alert"
    assert doc.identifier == f"loa-{alert['id']}" != draft.identifier
    vi, en = doc.infos
    assert vi.language == "vi-VN" and en.language == "en-US"
    assert cap.alert_type(vi) is AlertType.FLOOD and cap.risk_level(vi) == 3
    assert vi.description == alert["message_vi"]
    assert [(a.desc, a.geocodes) for a in vi.areas] == [
        ("Ấp 1, Ấp 2", [("loa:hamlet", "ap-1"), ("loa:hamlet", "ap-2")])
    ]
    # and another commune's controller (here: the same one) takes it in unchanged
    resp = await post(running, xml)
    assert resp.status_code == 201, resp.text
    again = resp.json()["alert"]
    assert again["targets"] == alert["targets"] and again["type"] == "flood"
    await act(running, alert["id"], "cancel")
    cancel = cap.parse((await running.client.get(f"/api/alerts/{alert['id']}/cap")).content)
    assert cancel.msg_type == "Cancel" and cancel.references[0][1] == f"loa-{alert['id']}"
    assert cancel.references[0][2] == doc.sent_text  # the <sent> it was exported with
    assert cancel.sent_text != doc.sent_text or cancel.identifier != doc.identifier
