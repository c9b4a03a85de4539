"""The web UI in a real headless Chromium (Debian's, driven by Playwright; no browser is
downloaded): log in, upload and see the item, create a programme and see it in the
calendar, trigger and cancel an alert and watch the hamlet board fill from simulated
speakers, see a speaker go offline on the map — at 360 px and 1280 px, with
screenshots in test-artifacts/ui/. Plus: the English catalogue is complete, inputs are
labelled, controls are reachable by keyboard, and the emergency colours contrast."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from broadcaster import demo_data
from broadcaster.auth.accounts import Accounts
from broadcaster.auth.roles import Area, Role
from broadcaster.store import Store
from broadcaster.ui.i18n import translator
from broadcaster.ui.pages import JS_STRINGS
from devices.topics import DeviceTopic
from loa.clock import SystemClock
from tests.conftest import Running, fleet_of, make_settings, serve, wav
from tests.test_e2e import wait_online

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ROOT = Path(__file__).parent.parent
SHOTS = ROOT / "test-artifacts" / "ui"
UI = ROOT / "broadcaster" / "ui"
PASSWORD = "mật-khẩu-giao-diện-1"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


def msgids() -> set[str]:
    found: set[str] = set(JS_STRINGS)
    for f in (UI / "templates").glob("*.html"):
        text = f.read_text(encoding="utf-8")
        found |= set(re.findall(r'_\("([^"]+)"\)', text))
        found |= set(re.findall(r"_\('([^']+)'\)", text))
    return found


def test_every_visible_string_has_an_english_translation() -> None:
    en = translator("en")
    missing = sorted(m for m in msgids() if not en.get(m))
    assert missing == []
    assert not set(en) - msgids()  # no stale entries either


def luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_emergency_colours_have_enough_contrast() -> None:
    css = (UI / "static" / "loa.css").read_text()
    assert "#a30000" in css
    assert contrast("#a30000", "#ffffff") >= 7.0  # white on the emergency red (AAA)
    assert contrast("#a30000", "#ffffff") >= 4.5
    assert contrast("#111111", "#ffffff") >= 7.0
    assert contrast("#0b3d63", "#ffffff") >= 7.0  # header and buttons


@asynccontextmanager
async def ui_env(tmp_path: Path, broker: Any) -> AsyncIterator[tuple[Running, Any, Any]]:
    """The app, six simulated speakers and a browser (a context manager, not a fixture:
    task groups must exit in the task that entered them)."""
    from playwright.async_api import async_playwright

    settings = make_settings(tmp_path, broker, fleet={"silent_s": 3, "check_s": 0.5})
    store = Store(Path(settings.db.path))
    demo_data.seed(store)
    Accounts(store, SystemClock(), settings.security).create(
        "can-bo", PASSWORD, [Role.ADMIN], Area("can-tho", "vi-tan"), "Cán bộ xã"
    )
    store.close()
    specs = [s for s in demo_data.fleet_specs() if s.hamlet in ("ap-1", "ap-2")]
    async with serve(settings, seed=False) as r, fleet_of(r, specs) as fleet:
        await wait_online(r, 6)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                yield r, fleet, browser
            finally:
                await browser.close()


async def login(browser: Any, r: Running, width: int) -> Any:
    page = await browser.new_page(viewport={"width": width, "height": 800})
    await page.goto(r.url + "/")
    assert "/login" in page.url
    await page.fill("#username", "can-bo")
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_url(r.url + "/")
    return page


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@needs_chromium
@pytest.mark.parametrize("width", [360, 1280])
async def test_pages_work_at_phone_and_desktop_widths(
    tmp_path: Path, broker: Any, width: int
) -> None:
    async with ui_env(tmp_path, broker) as (r, _fleet, browser):
        await pages_at(r, browser, tmp_path, width)


async def pages_at(r: Running, browser: Any, tmp_path: Path, width: int) -> None:
    page = await login(browser, r, width)
    await page.wait_for_selector("#sp-vt-ap-1-1.idle")
    assert await page.locator("h1").inner_text() == "Xã Vị Tân"
    await shot(page, f"dashboard-{width}")

    # library: upload a file and see it listed
    sample = tmp_path / "thong-bao.wav"
    sample.write_bytes(wav(1.0))
    await page.goto(r.url + "/library")
    await page.set_input_files("#upload-file", str(sample))
    await page.fill("#upload-title", f"Thông báo tiêm chủng {width}")
    await page.click("#upload-form button[type=submit]")
    await page.wait_for_selector(f"text=Thông báo tiêm chủng {width}", timeout=30_000)
    assert await page.locator("#upload-progress").get_attribute("value") in ("100", "100.0")
    await shot(page, f"library-{width}")

    # a refusal is shown next to the form, keeping what was typed
    await page.fill("#tts-title", "x" * 300)
    await page.fill("#tts-text", "Kính thưa bà con")
    await page.click("#tts-form button[type=submit]")
    # in Vietnamese, next to the field
    await page.wait_for_selector("#tts-form .field-error:has-text('Quá dài')")
    assert "Hãy sửa" in await page.inner_text("#tts-error")
    assert await page.input_value("#tts-text") == "Kính thưa bà con"

    # schedule: create a programme and see it in the week calendar
    await page.goto(r.url + "/schedule")
    await page.wait_for_selector(
        f"#p-media option:has-text('Thông báo tiêm chủng {width}')", state="attached"
    )
    await page.fill("#p-title", f"Bản tin sáng {width}")
    await page.fill("#p-at", "23:58")
    # a target picked on the map: a speaker of Ấp 2 selects the hamlet
    await page.click(".pick-map circle[data-hamlet=ap-2] >> nth=0")
    assert await page.is_checked("#programme-form input[name=hamlet][value=ap-2]")
    assert not await page.is_checked("#programme-form input[name=hamlet][value='']")
    await page.dispatch_event("#p-at", "change")
    await page.wait_for_selector("#conflicts li:has-text('Không trùng lịch')")  # before saving
    await page.click("#programme-form button[type=submit]")
    await page.wait_for_selector(f".occ:has-text('Bản tin sáng {width}')", timeout=15_000)
    await shot(page, f"schedule-{width}")

    for name in ("live", "emergency", "devices", "reports"):
        await page.goto(r.url + "/" + name)
        await page.wait_for_load_state("networkidle")
        unlabelled = await page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                              && !e.closest('label')).map(e => e.id || e.name)"""
        )
        assert unlabelled == [], (name, unlabelled)
        await shot(page, f"{name}-{width}")
    await page.close()


@needs_chromium
@pytest.mark.parametrize("width", [360, 1280])
async def test_an_alert_from_the_browser_updates_the_hamlet_board(
    tmp_path: Path, broker: Any, width: int
) -> None:
    async with ui_env(tmp_path, broker) as (r, _fleet, browser):
        await alert_board(r, browser, width)


async def alert_board(r: Running, browser: Any, width: int) -> None:
    page = await login(browser, r, width)
    await page.goto(r.url + "/emergency")
    # keyboard: the big button is reachable with Tab alone
    for _ in range(120):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement && document.activeElement.id") == (
            "alert-create"
        ):
            break
    else:
        raise AssertionError("the create-alert button cannot be reached by keyboard")
    await page.check("input[name=type][value=flood]")
    await page.check("#alert-form input[name=hamlet][value=ap-1]")
    await page.check("#alert-form input[name=hamlet][value=ap-2]")
    await page.fill("#f-river", "Hậu")
    await page.fill("#f-water_level", "2,15")
    await page.select_option("#a-repeat", "1")
    await page.click("#alert-create")
    await page.wait_for_selector("#alert-confirm:not([hidden])", timeout=30_000)
    await page.click("#alert-go")
    card = ".alert-card"
    await page.wait_for_selector(
        f"{card} tr[data-hamlet=ap-1] td.played:has-text('3/3')", timeout=30_000
    )
    await page.wait_for_selector(
        f"{card} tr[data-hamlet=ap-2] td.played:has-text('3/3')", timeout=30_000
    )
    await shot(page, f"alert-board-{width}")
    await page.click(f"{card} button.stop")
    await page.click(f"{card} .really button.yes")
    await page.wait_for_selector(f"{card} .state:has-text('Đã dừng')", timeout=10_000)
    await page.close()


@needs_chromium
@pytest.mark.parametrize("width", [360, 1280])
async def test_a_speaker_going_offline_shows_on_the_map_and_english_is_complete(
    tmp_path: Path, broker: Any, width: int
) -> None:
    async with ui_env(tmp_path, broker) as (r, fleet, browser):
        await offline_and_english(r, fleet, browser, width)


async def offline_and_english(r: Running, fleet: Any, browser: Any, width: int) -> None:
    page = await login(browser, r, width)
    await page.wait_for_selector("#sp-vt-ap-2-3.idle")
    speaker = fleet.speakers["vt-ap-2-3"]
    await speaker.link.publish(  # what its last will says when it dies
        speaker._topic(DeviceTopic.PRESENCE),
        b'{"v":1,"state":"offline","reason":"connection lost"}',
        retain=True,
    )
    await page.wait_for_selector("#sp-vt-ap-2-3.offline", timeout=10_000)
    await page.wait_for_selector("#hamlets tr[data-hamlet=ap-2] td.online:has-text('2')")
    await shot(page, f"dashboard-offline-{width}")
    await page.goto(r.url + "/?lang=en")
    body = await page.inner_text("body")
    for english in ("Dashboard", "Schedule", "Emergency", "Speaker map", "Hamlet", "Log out"):
        assert english in body, english
    for vietnamese in ("Bảng điều khiển", "Lịch phát", "Khẩn cấp", "Ấp / thôn", "Đăng xuất"):
        assert vietnamese not in body, vietnamese
    await page.goto(r.url + "/emergency")  # the language is remembered
    assert "Emergency alert" in await page.inner_text("h1")
    await page.close()


@needs_chromium
async def test_push_to_talk_goes_on_air_from_the_browser_microphone(
    tmp_path: Path, broker: Any
) -> None:
    """Chromium's fake microphone (a tone) → MediaRecorder → WebSocket → the speakers of
    the chosen hamlet, with the on-air indicator and the level meter moving."""
    async with ui_env(tmp_path, broker) as (r, fleet, browser):
        page = await login(browser, r, 360)
        await page.goto(r.url + "/live")
        await page.check("#live-form input[name=hamlet][value=ap-1]")
        await page.click("#ptt")
        await page.wait_for_selector("#on-air-indicator.on-air", timeout=15_000)
        with anyio.fail_after(15):
            while float(await page.eval_on_selector("#level", "e => e.value")) <= 0:
                await anyio.sleep(0.2)
        await anyio.sleep(3.0)
        await shot(page, "live-on-air")
        await page.click("#ptt")
        await page.wait_for_selector("#on-air-indicator.off-air")
        with anyio.fail_after(20):
            while len(fleet.log.of("report")) < 3:
                await anyio.sleep(0.2)
        reports = fleet.log.of("report")
        await page.close()
    assert {e["device"] for e in reports} == {"vt-ap-1-1", "vt-ap-1-2", "vt-ap-1-3"}
    assert all(e["frames_played"] > 0 for e in reports)
