"""A speaker can be taken out of the registry (stolen, broken, registered by mistake),
so a hamlet that got speakers by mistake can be deleted after them. Before there was
no way: the hamlet's refusal said "delete them first" and nothing could."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from broadcaster.auth.accounts import Accounts
from broadcaster.auth.roles import EVERYWHERE, Area, Role
from broadcaster.store.store import Store
from loa.clock import SystemClock
from tests.conftest import Running, make_settings, serve
from tests.test_places import add_user, empty, err, setup_commune
from tests.test_ui import ARGS, CHROMIUM, needs_chromium, shot
from tests.test_ui_setup import PASSWORD

__all__ = ["empty"]  # the fixture, used by name

GONE = "vt-moi-1"


async def test_a_mistaken_speaker_is_deleted_and_then_its_hamlet(empty: Running) -> None:
    await setup_commune(empty)
    c, s = empty.client, empty.services
    store = s.store
    assert (
        await c.post("/api/communes/vi-tan/hamlets", json={"name": "Ấp Mới"})
    ).status_code == 201
    for did, hamlet in ((GONE, "ap-moi"), ("vt-1", "ap-1")):
        r = await c.post("/api/communes/vi-tan/devices", json={"id": did, "hamlet": hamlet})
        assert r.status_code == 201, r.text
    assert (await c.post(f"/api/devices/{GONE}/credentials")).status_code == 201
    zone = {"name": "Chợ và bến đò", "devices": [GONE, "vt-1"]}
    assert (await c.post("/api/communes/vi-tan/zones", json=zone)).status_code == 201
    assert GONE in (s.broker_access.dir / "passwd").read_text()

    body = err(await c.delete("/api/communes/vi-tan/hamlets/ap-moi"), 409)
    assert body["errors"][0]["code"] == "not_empty"

    # a live programme naming it on its own: refused, nothing changes
    store.db.table("programmes").insert(
        {
            "id": "p-1",
            "commune_id": "vi-tan",
            "title": "Tin chợ phiên",
            "targets": json.dumps([{"commune": "vi-tan", "device": GONE}]),
            "status": "approved",
            "deleted_us": None,
        }
    )
    body = err(await c.delete(f"/api/devices/{GONE}"), 409)
    assert "Tin chợ phiên" in body["error"] and body["errors"][0]["code"] == "in_use"
    assert (await c.get(f"/api/devices/{GONE}")).status_code == 200
    store.db.execute("UPDATE programmes SET deleted_us=1 WHERE id='p-1'")

    resp = await c.delete(f"/api/devices/{GONE}")
    assert resp.status_code == 200, resp.text
    err(await c.get(f"/api/devices/{GONE}"), 404)
    err(await c.delete(f"/api/devices/{GONE}"), 404)  # twice: it is gone, said so
    assert GONE not in (s.broker_access.dir / "passwd").read_text()
    assert GONE not in (s.broker_access.dir / "acl").read_text()
    assert store.query(
        "SELECT count(*) AS n FROM device_credentials WHERE device_id=? AND revoked_us IS NULL",
        [GONE],
    ) == [{"n": 0}]
    zones = (await c.get("/api/communes/vi-tan/zones")).json()["zones"]
    assert [z["devices"] for z in zones] == [["vt-1"]]  # the other speaker stays in it
    audit = store.query("SELECT action FROM audit WHERE action='device.delete'")
    assert len(audit) == 1

    assert (await c.delete("/api/communes/vi-tan/hamlets/ap-moi")).status_code in (200, 204)


async def test_a_speaker_that_played_is_deleted_and_its_history_stays(empty: Running) -> None:
    await setup_commune(empty)
    c, store = empty.client, empty.services.store
    r = await c.post("/api/communes/vi-tan/devices", json={"id": GONE, "hamlet": "ap-1"})
    assert r.status_code == 201
    store.db.table("broadcasts").insert(
        {"id": "b-1", "stream_id": "s-1", "title": "Tin sáng", "status": "done", "targets": "[]"}
    )
    store.db.table("deliveries").insert(
        {
            "broadcast_id": "b-1",
            "device_id": GONE,
            "commune_id": "vi-tan",
            "hamlet_id": "ap-1",
            "outcome": "played",
        }
    )
    assert (await c.delete(f"/api/devices/{GONE}")).status_code == 200
    assert store.query("SELECT device_id, outcome FROM deliveries") == [
        {"device_id": GONE, "outcome": "played"}
    ]


async def test_an_account_of_one_hamlet_cannot_delete_another_hamlets_speaker(
    empty: Running,
) -> None:
    await setup_commune(empty)
    c, store = empty.client, empty.services.store
    for did, hamlet in (("vt-1", "ap-1"), ("vt-2", "ap-2a")):
        r = await c.post("/api/communes/vi-tan/devices", json={"id": did, "hamlet": hamlet})
        assert r.status_code == 201
    token = add_user(
        empty.services.settings, "ky-thuat", Area("hau-giang", "vi-tan", frozenset({"ap-1"}))
    )
    async with httpx.AsyncClient(
        base_url=empty.url, headers={"Authorization": f"Bearer {token}"}
    ) as h:
        err(await h.delete("/api/devices/vt-2"), 403)
        assert [d["id"] for d in store.query("SELECT id FROM devices ORDER BY id")] == [
            "vt-1",
            "vt-2",
        ]
        assert (await h.delete("/api/devices/vt-1")).status_code == 200
    err(await c.delete("/api/devices/vt-khong-co"), 404)
    assert "Loa hỏng" in err(await c.delete("/api/devices/Loa%20h%E1%BB%8Fng"), 404)["error"]


@needs_chromium
async def test_a_technician_deletes_a_speaker_from_its_page_on_a_phone(
    tmp_path: Path, broker: Any
) -> None:
    from playwright.async_api import async_playwright

    settings = make_settings(tmp_path, broker)
    store = Store(Path(settings.db.path))
    Accounts(store, SystemClock(), settings.security).create(
        "admin", PASSWORD, [Role.ADMIN], Area(EVERYWHERE), "Quản trị viên"
    )
    store.close()
    async with serve(settings, seed=False) as r, async_playwright() as pw:
        await setup_commune(r)
        resp = await r.client.post(
            "/api/communes/vi-tan/devices", json={"id": GONE, "hamlet": "ap-1"}
        )
        assert resp.status_code == 201
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 360, "height": 800})
            await page.goto(r.url + "/")
            await page.fill("#username", "admin")
            await page.fill("#password", PASSWORD)
            await page.click("#login-form button[type=submit]")
            await page.wait_for_url(r.url + "/")
            await page.goto(r.url + f"/devices/{GONE}")
            await page.click("#device-delete")
            await page.wait_for_selector(".really:has-text('Xoá loa này khỏi danh sách?')")
            await shot(page, "device-delete-360")
            assert (await r.client.get(f"/api/devices/{GONE}")).status_code == 200  # asked first
            await page.click(".really .yes")
            await page.wait_for_url(r.url + "/devices")
            assert (await r.client.get(f"/api/devices/{GONE}")).status_code == 404
        finally:
            await browser.close()
