"""Issue 16, finding 3 and the CSP of finding 6, in a real Chromium: a ``next`` with
script or another host goes nowhere after a normal login, and every page works under
``Content-Security-Policy: default-src 'self'`` without a single violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.test_ui import PASSWORD, needs_chromium, ui_env

PAGES = (
    "/",
    "/library",
    "/schedule",
    "/live",
    "/emergency",
    "/devices",
    "/devices/vt-ap-1-1",
    "/reports",
    "/setup",
)


async def _watch(page: Any) -> list[str]:
    """Console messages about the content security policy, and page errors."""
    seen: list[str] = []
    page.on(
        "console",
        lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("pageerror", lambda e: seen.append(f"error: {e} at {page.url}"))
    return seen


@needs_chromium
@pytest.mark.parametrize(
    "bad",
    [
        "javascript:window.__pwned=document.querySelector('meta[name=csrf-token]').content",
        "//evil.example/",
        "/\\evil.example/",
    ],
)
async def test_3_a_poisoned_next_lands_on_the_dashboard(
    tmp_path: Path, broker: Any, bad: str
) -> None:
    async with ui_env(tmp_path, broker) as (r, _fleet, browser):
        page = await browser.new_page(viewport={"width": 360, "height": 800})
        problems = await _watch(page)
        await page.goto(f"{r.url}/login?next={bad}")
        await page.fill("#username", "can-bo")
        await page.fill("#password", PASSWORD)
        await page.click("#login-form button[type=submit]")
        await page.wait_for_url(r.url + "/")
        assert await page.evaluate("window.__pwned === undefined")
        assert problems == [], problems


@needs_chromium
async def test_6_every_page_works_under_the_content_security_policy(
    tmp_path: Path, broker: Any
) -> None:
    async with ui_env(tmp_path, broker) as (r, _fleet, browser):
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        problems = await _watch(page)
        await page.goto(f"{r.url}/login?next=/schedule")
        await page.fill("#username", "can-bo")
        await page.fill("#password", PASSWORD)
        await page.click("#login-form button[type=submit]")
        await page.wait_for_url(r.url + "/schedule")
        for path in PAGES:
            resp = await page.goto(r.url + path + "?lang=en")
            assert resp is not None and resp.status == 200, path
            assert "default-src 'self'" in resp.headers["content-security-policy"]
            await page.wait_for_load_state("networkidle")
        await page.goto(r.url + "/")
        # the translated strings reach the script through the JSON block, not inline code
        await page.wait_for_selector("#sp-vt-ap-1-1.idle")
        strings = await page.evaluate(
            "() => JSON.parse(document.getElementById('loa-strings').textContent)['Đã đăng nhập']"
        )
        assert strings == "Logged in"
        # a speaker's provisioning QR code (a data: image) shows under the policy
        await page.goto(r.url + "/devices/vt-ap-1-1")
        await page.click("#provision")
        await page.wait_for_selector("#provision-qr:not([hidden])")
        await page.wait_for_function("() => document.getElementById('provision-qr').complete")
        width = await page.evaluate("() => document.getElementById('provision-qr').naturalWidth")
        assert width > 0
        assert problems == [], problems
