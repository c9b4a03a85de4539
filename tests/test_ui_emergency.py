"""The emergency page on a phone (360 px, Debian's chromium): a flood alert, level 3, for
Ấp 3, created from the dashboard in at most five taps plus typing, confirmed with a
dialog that says what and where; the red banner then shows on every page, survives a
reload, and stops the alert — which the simulated speakers of Ấp 3 played."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from broadcaster.auth.accounts import Accounts
from broadcaster.auth.roles import Area, Role
from broadcaster.places import demo_data
from broadcaster.store.store import Store
from loa.clock import SystemClock
from tests.conftest import Running, fleet_of, make_settings, serve
from tests.test_e2e import wait_online
from tests.test_ui import ARGS, CHROMIUM, PASSWORD, login, needs_chromium, shot


@asynccontextmanager
async def env(tmp_path: Path, broker: Any) -> AsyncIterator[tuple[Running, Any, Any]]:
    from playwright.async_api import async_playwright

    settings = make_settings(tmp_path, broker)
    store = Store(Path(settings.db.path))
    demo_data.seed(store)
    Accounts(store, SystemClock(), settings.security).create(
        "can-bo", PASSWORD, [Role.ADMIN], Area("can-tho", "vi-tan"), "Cán bộ xã"
    )
    store.close()
    specs = [s for s in demo_data.fleet_specs() if s.hamlet in ("ap-3", "ap-4")]
    async with serve(settings, seed=False) as r, fleet_of(r, specs) as fleet:
        await wait_online(r, len(specs))
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                yield r, fleet, browser
            finally:
                await browser.close()


async def alerts(r: Running) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = (await r.client.get("/api/communes/vi-tan/alerts")).json()["alerts"]
    return got


@needs_chromium
async def test_flood_level_3_for_ap_3_from_the_dashboard_on_a_phone(
    tmp_path: Path, broker: Any
) -> None:
    async with env(tmp_path, broker) as (r, fleet, browser):
        page = await login(browser, r, 360)
        taps = 0

        async def tap(selector: str) -> None:
            nonlocal taps
            taps += 1
            await page.click(selector)

        await tap(".quick-alert a[data-type=flood]")  # 1: from the dashboard
        await page.wait_for_url(r.url + "/emergency?type=flood")
        assert await page.is_checked("input[name=type][value=flood]")
        assert await page.is_checked("input[name=risk_level][value='3']")
        # nothing chosen is refused, never read as the whole commune
        await page.click("#alert-create")
        await page.wait_for_selector("#target-error:has-text('Chọn nơi phát')")
        assert await alerts(r) == []
        await tap("#alert-form input[name=hamlet][value=ap-3]")  # 2
        await page.fill("#f-river", "Xà No")
        await page.fill("#f-water_level", "2,35")
        preview = await page.inner_text("#a-preview")
        assert "lũ trên sông Xà No" in preview and "2,35 mét" in preview
        assert "Ấp 3" in preview and "cấp 3" in preview  # the place follows the hamlet
        # a double tap makes one draft (the form's key), the button is busy meanwhile
        await page.evaluate(
            "() => { const f = document.querySelector('#alert-form');"
            " f.requestSubmit(); f.requestSubmit(); }"
        )
        taps += 1  # 3
        await page.wait_for_selector("#alert-confirm:not([hidden])", timeout=30_000)
        assert len(await alerts(r)) == 1
        summary = await page.inner_text("#alert-summary")
        assert "Lũ, ngập lụt" in summary and "Ấp 3" in summary and "3 loa" in summary
        assert "da cam" in summary
        await shot(page, "emergency-confirm-360")
        await tap("#alert-go")  # 4
        assert taps <= 5
        await page.wait_for_selector(".alert-card .state:has-text('Đang phát')", timeout=15_000)
        played = await page.inner_text(".alert-card tr[data-hamlet=ap-3] td.played")
        assert played.endswith("/3")  # never 0/0 while it sounds
        with anyio.fail_after(30):  # the speakers of Ấp 3 are sounding it
            while {e["device"] for e in fleet.log.of("play")} != set(demo_data.device_ids("ap-3")):
                await anyio.sleep(0.2)
        # the banner, from the server, on every page and after a reload
        for path in ("/", "/library", "/schedule", "/live", "/devices", "/reports", "/emergency"):
            await page.goto(r.url + path)
            item = page.locator("#alert-banner .banner-item")
            assert await item.count() == 1, path
            text = await item.inner_text()
            assert "ĐANG PHÁT CẢNH BÁO" in text and "Ấp 3" in text and "Lũ" in text, path
        await page.reload()
        await page.wait_for_selector("#alert-banner .banner-item")
        await shot(page, "emergency-banner-360")
        # another browser (a new context: no shared state) sees it too
        other = await login(browser, r, 360)
        assert await other.locator("#alert-banner .banner-item").count() == 1
        await other.close()
        # stop from the banner: asked once more, then stopped everywhere
        await page.click("#alert-banner .banner-stop")
        await page.click("#alert-banner .really button.yes")
        await page.wait_for_selector("#alert-banner", state="hidden", timeout=10_000)
        await page.wait_for_selector(".alert-card .state:has-text('Đã dừng')", timeout=10_000)
        (alert,) = await alerts(r)
        assert alert["status"] == "cancelled" and alert["risk_level"] == 3
        assert alert["targets"] == [{"commune": "vi-tan", "hamlet": "ap-3"}]
        await page.reload()
        assert await page.locator("#alert-banner .banner-item").count() == 0
        await page.close()
    heard = {e["device"] for e in fleet.log.of("play")}
    assert heard == set(demo_data.device_ids("ap-3"))  # Ấp 4 heard nothing


@needs_chromium
async def test_whole_commune_and_hamlets_exclude_each_other_and_english_works(
    tmp_path: Path, broker: Any
) -> None:
    async with env(tmp_path, broker) as (r, _fleet, browser):
        page = await login(browser, r, 360)
        await page.goto(r.url + "/emergency?lang=en")
        assert "Emergency alert" in await page.inner_text("h1")
        await page.check("#alert-form input[name=hamlet][value=ap-3]")
        await page.check("#alert-form input[name=hamlet][value='']")
        assert not await page.is_checked("#alert-form input[name=hamlet][value=ap-3]")
        await page.check("#alert-form input[name=hamlet][value=ap-4]")
        assert not await page.is_checked("#alert-form input[name=hamlet][value='']")
        # a missing template field is shown next to the field, in the page's language
        await page.check("input[name=type][value=dam_release]")
        await page.click("#alert-create")
        await page.wait_for_selector("#alert-form .field-error", timeout=30_000)
        assert await alerts(r) == []
        with anyio.fail_after(5):
            while "Release flow" not in await page.inner_text("#alert-form"):
                await anyio.sleep(0.1)
        await page.close()
