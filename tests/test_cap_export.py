"""CAP export: every state of an alert is a CAP 1.2 message valid against the OASIS
schema (vendored in tests/cap/schema), drafts are Drafts, each Update and Cancel has its
own <sent> and references the message before it exactly as that was exported, and each
<info> carries the language of its text."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path

import xmlschema
from hypothesis import given
from hypothesis import strategies as st

from broadcaster.alerts import cap
from broadcaster.alerts.cap_export import messages
from tests.conftest import Running
from tests.test_alerts import FLOOD, SHORT, act, create, targets

HERE = Path(__file__).parent / "cap"
SCHEMA = xmlschema.XMLSchema(str(HERE / "schema" / "CAP-v1.2.xsd"))


async def exported(r: Running, alert_id: str) -> cap.CapAlert:
    xml = (await r.client.get(f"/api/alerts/{alert_id}/cap")).content
    SCHEMA.validate(xml.decode("utf-8"))  # raises with the reason when invalid
    return cap.parse(xml)


def test_the_vendored_schema_is_the_oasis_one_and_accepts_the_sample_documents() -> None:
    assert SCHEMA.target_namespace == "urn:oasis:names:tc:emergency:cap:1.2"
    for doc in sorted(HERE.glob("*.xml")):
        assert SCHEMA.is_valid(str(doc)), doc.name
    bad = (HERE / "flood-vi.xml").read_text().replace("+07:00</sent>", "Z</sent>")
    assert not SCHEMA.is_valid(bad)  # CAP 1.2 wants a numeric offset: the schema is strict


async def test_each_message_has_its_own_sent_and_references_the_one_before(
    running: Running,
) -> None:
    alert = await create(running, {**SHORT, "targets": targets("ap-1")})
    draft = await exported(running, alert["id"])
    assert (draft.status, draft.msg_type) == ("Draft", "Alert")
    await act(running, alert["id"], "confirm")
    actual = await exported(running, alert["id"])
    assert (actual.status, actual.msg_type) == ("Actual", "Alert")
    # a draft is a message of its own: the alert that sounded never shares its identifier
    assert draft.identifier == f"loa-{alert['id']}-draft"
    assert actual.identifier == f"loa-{alert['id']}" and actual.sent >= draft.sent
    await act(
        running, alert["id"], "update", json={**SHORT, "risk_level": 4, "targets": targets("ap-1")}
    )
    update = await exported(running, alert["id"])
    assert update.msg_type == "Update" and update.identifier == f"loa-{alert['id']}-u1"
    assert update.sent > actual.sent  # its own <sent>
    assert update.references == [(actual.sender, actual.identifier, actual.sent_text)]
    await act(running, alert["id"], "cancel", json={"reason": "nước đã rút"})
    cancel = await exported(running, alert["id"])
    assert cancel.msg_type == "Cancel" and cancel.sent > update.sent
    assert cancel.references == [(update.sender, update.identifier, update.sent_text)]
    assert cancel.infos[0].language == "vi-VN"


async def test_every_state_and_kind_of_alert_exports_valid_cap(running: Running) -> None:
    """Template (vi + en), custom Vietnamese, English-only CAP, all-clear, expired draft."""
    flood = await create(running, {**FLOOD, "targets": targets("ap-1", "ap-2")})
    doc = await exported(running, flood["id"])
    assert [i.language for i in doc.infos] == ["vi-VN", "en-US"]
    await act(running, flood["id"], "confirm")
    await act(running, flood["id"], "all-clear")
    end = await exported(running, flood["id"])
    # the danger is over: an Update whose response is AllClear, with the all-clear text
    assert end.msg_type == "Update" and end.references[0][1] == f"loa-{flood['id']}"
    raw = (await running.client.get(f"/api/alerts/{flood['id']}/cap")).text
    assert raw.count("<responseType>AllClear</responseType>") == len(end.infos) == 2
    assert "đã kết thúc" in end.infos[0].description
    custom = await create(running, {**SHORT, "targets": [{"commune": "vi-tan"}]})
    only_vi = await exported(running, custom["id"])
    assert [i.language for i in only_vi.infos] == ["vi-VN"]
    english = await running.client.post(
        "/api/communes/vi-tan/alerts/cap",
        content=(HERE / "en-nws-flood.xml").read_bytes(),
        headers={"content-type": "application/cap+xml"},
    )
    en_doc = await exported(running, english.json()["alert"]["id"])
    assert [i.language for i in en_doc.infos] == ["en-US"]  # never labelled Vietnamese
    assert "<br" not in en_doc.infos[0].description


@given(
    st.integers(min_value=1_700_000_000_000_000, max_value=1_800_000_000_000_000),
    st.lists(st.integers(min_value=0, max_value=5_000_000), max_size=5),
    st.booleans(),
)
def test_message_chain_sent_times_strictly_increase(
    created: int, gaps: list[int], ended: bool
) -> None:
    updates = []
    t = created
    for g in gaps:
        t += g
        updates.append(t)
    alert = {
        "id": "x",
        "created_us": created - 1,
        "confirmed_us": created,
        "status": "cancelled" if ended else "active",
        "ended_us": t + 1,
    }
    chain = messages(alert, updates)
    assert len(chain) == 1 + len(updates) + int(ended)
    sents = [datetime.fromisoformat(s) for _, s, _ in chain]
    assert all(a < b for a, b in itertools.pairwise(sents))
    assert len({i for i, _, _ in chain}) == len(chain)
