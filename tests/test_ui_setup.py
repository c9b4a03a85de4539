"""The first day through the pages, in Debian's Chromium at 360 and 1280 px: from an empty
installation, log in, set up a province, a commune, three hamlets and six speakers from
a CSV file, see a hamlet with speakers refused for deletion, create an account limited
to a hamlet, issue a speaker's provisioning QR code, and sound an alert on one hamlet
that only its speakers play (ground truth from the simulator). Screenshots in
test-artifacts/ui/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from broadcaster.auth.accounts import Accounts
from broadcaster.auth.roles import EVERYWHERE, Area, Role
from broadcaster.store.store import Store
from firmware_sim.spec import DeviceSpec
from loa.clock import SystemClock
from tests.conftest import fleet_of, make_settings, serve
from tests.test_first_day import CSV
from tests.test_ui import ARGS, CHROMIUM, needs_chromium, shot

PASSWORD = "mật-khẩu-quản-trị-1"


@needs_chromium
@pytest.mark.parametrize("width", [360, 1280])
async def test_first_day_through_the_pages(tmp_path: Path, broker: Any, width: int) -> None:
    from playwright.async_api import async_playwright, expect

    settings = make_settings(tmp_path, broker)
    store = Store(Path(settings.db.path))
    Accounts(store, SystemClock(), settings.security).create(
        "admin", PASSWORD, [Role.ADMIN], Area(EVERYWHERE), "Quản trị viên"
    )
    store.close()
    csv_file = tmp_path / "danh-sach-loa.csv"
    csv_file.write_bytes(CSV.encode("utf-8"))
    async with serve(settings, seed=False) as r, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": 800})
            await page.goto(r.url + "/")
            await page.fill("#username", "admin")
            await page.fill("#password", PASSWORD)
            await page.click("#login-form button[type=submit]")
            await page.wait_for_url(r.url + "/setup")  # no commune yet: the set-up first
            await shot(page, f"setup-empty-{width}")

            await page.fill("#province-name", "Tỉnh Hậu Giang")
            await page.click("#province-form button[type=submit]")
            await page.wait_for_selector("#province-list input[value='Tỉnh Hậu Giang']")
            await page.wait_for_selector(
                "#commune-province option[value=hau-giang]", state="attached"
            )
            await page.fill("#commune-name", "Xã Vị Tân")
            await page.click("#commune-form button[type=submit]")
            await page.wait_for_selector("#setup-commune option[value=vi-tan]", state="attached")
            for name in ("Ấp 1", "Ấp 2A", "Ấp Đông Hòa"):
                await page.fill("#hamlet-name", name)
                await page.click("#hamlet-form button[type=submit]")
                await page.wait_for_selector(f"#hamlet-list input[value='{name}']")
            await page.set_input_files("#import-file", str(csv_file))
            await page.click("#import-form button[type=submit]")
            # (no wait_for_function with a string: the pages' CSP forbids eval)
            await expect(page.locator("#setup-devices tr")).to_have_count(6)
            assert "Đã nhập" in await page.inner_text("#setup-status")
            # a zone of one hamlet
            await page.fill("#zone-name", "Ven sông")
            await page.check("#zone-hamlets input[value=ap-2a]")
            await page.click("#zone-form button[type=submit]")
            await page.wait_for_selector("#zone-list input[value='Ven sông']")
            # a hamlet with speakers is refused for deletion, with the reason
            await page.click("#hamlet-list li[data-url$='/hamlets/ap-1'] button[data-act=delete]")
            await page.wait_for_selector("#setup-error:has-text('2 speakers')")
            assert "Không xoá được" in await page.inner_text("#setup-error")
            assert await page.locator("#hamlet-list input[value='Ấp 1']").count() == 1
            # an account limited to one hamlet
            await page.fill("#user-name", f"truong-ap-{width}")
            await page.fill("#user-password", "mật-khẩu-trưởng-ấp-1")
            await page.select_option("#user-role", "broadcaster")
            await page.check("#user-hamlets input[value=ap-2a]")
            await page.click("#user-form button[type=submit]")
            await page.wait_for_selector("#setup-status:has-text('Đã lưu')")
            users = (await r.client.get("/api/users")).json()["users"]
            limited = next(u for u in users if u["username"] == f"truong-ap-{width}")
            assert limited["area"]["hamlets"] == ["ap-2a"]
            unlabelled = await page.evaluate(
                """() => [...document.querySelectorAll('input:not([type=hidden]), select')]
                     .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                                  && !e.closest('label')).map(e => e.id || e.name)"""
            )
            assert unlabelled == []
            await shot(page, f"setup-done-{width}")

            # a speaker's page: its provisioning QR code, once
            await page.goto(r.url + "/devices/vt-3")
            await page.click("#provision")
            await page.wait_for_selector("#provision-qr:not([hidden])")
            assert (await page.get_attribute("#provision-qr", "src") or "").startswith(
                "data:image/svg+xml"
            )
            assert len(await page.inner_text("#provision-password")) >= 16
            await shot(page, f"device-provision-{width}")

            # the speakers come online; an alert on Ấp 2A plays only there
            rows = r.services.store.devices("vi-tan")
            specs = [DeviceSpec(id=d.id, commune="vi-tan", hamlet=d.hamlet_id) for d in rows]
            async with fleet_of(r, specs) as fleet:
                with anyio.fail_after(20):
                    while not all(d.online for d in r.services.store.devices("vi-tan")):
                        await anyio.sleep(0.1)
                await page.goto(r.url + "/emergency")
                await page.check("input[name=type][value=flood]")
                await page.check("#alert-form input[name=hamlet][value=ap-2a]")
                await page.click("#a-custom summary")  # a text of one's own, not the template
                await page.fill("#a-message", "Nước sông dâng cao, bà con ven sông chú ý.")
                await page.select_option("#a-repeat", "1")
                await page.click("#alert-create")
                await page.wait_for_selector("#alert-confirm:not([hidden])")
                await page.click("#alert-go")
                await page.wait_for_selector(
                    ".alert-card tr[data-hamlet=ap-2a] td.played:has-text('2/2')", timeout=30_000
                )
                await shot(page, f"setup-alert-{width}")
                played = {e["device"] for e in fleet.log.of("play")}
                assert played == {"vt-3", "vt-4"}
                await page.click(".alert-card button.stop")
                await page.click(".alert-card .really button.yes")
                await page.wait_for_selector(".alert-card .state:has-text('Đã dừng')")
            await page.close()
        finally:
            await browser.close()
