"""What the emergency page relies on from the API: an idempotent create (one draft per
form key), a board that lists every targeted hamlet from the start (never 0 of 0), the
speaker count for the confirm dialog, and the red banner rendered by the server."""

from __future__ import annotations

from tests.conftest import Running
from tests.test_alerts import SHORT, act, targets
from tests.test_api import COMMUNE, assert_error


async def test_the_same_form_key_makes_one_draft(running: Running) -> None:
    url = f"/api/communes/{COMMUNE}/alerts"
    body = {**SHORT, "targets": targets("ap-3"), "client_key": "form-7f3a"}
    first = await running.client.post(url, json=body)
    again = await running.client.post(url, json=body)
    assert first.status_code == again.status_code == 201
    assert first.json()["alert"]["id"] == again.json()["alert"]["id"]
    other = await running.client.post(url, json={**body, "client_key": "form-8b21"})
    assert other.json()["alert"]["id"] != first.json()["alert"]["id"]
    listed = (await running.client.get(url)).json()["alerts"]
    assert len(listed) == 2
    bad = await running.client.post(url, json={**body, "client_key": "a key with spaces"})
    assert_error(bad, 400)


async def test_the_board_lists_every_targeted_hamlet_from_the_start(running: Running) -> None:
    url = f"/api/communes/{COMMUNE}/alerts"
    resp = await running.client.post(url, json={**SHORT, "targets": targets("ap-3", "ap-2a")})
    alert = resp.json()["alert"]
    assert alert["speaker_count"] == 6
    board = {h["hamlet_id"]: h for h in alert["hamlets"]}
    assert set(board) == {"ap-3", "ap-2a"}
    assert board["ap-3"]["name"] == "Ấp 3" and board["ap-2a"]["name"] == "Ấp 2A"
    assert all(
        h["speakers"] == 3 and h["played"] == 0 and h["pending"] == 3 for h in board.values()
    )
    confirmed = await act(running, alert["id"], "confirm")
    assert all(h["speakers"] == 3 for h in confirmed["hamlets"])  # never 0 of 0


async def test_the_banner_comes_from_the_server_on_every_page(running: Running) -> None:
    url = f"/api/communes/{COMMUNE}/alerts"
    alert = (await running.client.post(url, json={**SHORT, "targets": targets("ap-3")})).json()[
        "alert"
    ]
    page = (await running.client.get("/library")).text
    assert "banner-item" not in page  # a draft is not sounding
    await act(running, alert["id"], "confirm")
    for path in ("/", "/library", "/schedule", "/devices", "/reports", "/emergency"):
        html = (await running.client.get(path)).text
        assert f'data-alert="{alert["id"]}"' in html, path
        assert "ĐANG PHÁT CẢNH BÁO" in html and "Ấp 3" in html and "Lũ, ngập lụt" in html
    await act(running, alert["id"], "cancel")
    assert "banner-item" not in (await running.client.get("/")).text
