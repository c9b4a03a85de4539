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

from broadcaster.auth.accounts import Accounts
from broadcaster.auth.roles import Area, Role
from broadcaster.places import demo_data
from broadcaster.store.store import Store
from broadcaster.ui.catalogue import msgids
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


def test_every_visible_string_has_an_english_translation() -> None:
    en = translator("en")
    missing = sorted(m for m in msgids() if not en.get(m))
    assert missing == []
    assert not set(en) - msgids()  # no stale entries either
    assert set(JS_STRINGS) <= msgids()  # what the scripts are handed is in the catalogue


LETTER = r"[^\W\d_]"  # any letter, Vietnamese included


def literal_template_text(text: str) -> list[str]:
    """User-facing text in a template that is not a catalogue call."""
    text = re.sub(r"\{#.*?#\}|\{\{.*?\}\}|\{%.*?%\}", " ", text, flags=re.S)
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S)
    found = re.findall(r'(?:aria-label|title|placeholder|alt)="([^"]*' + LETTER + r'[^"]*)"', text)
    found = [f for f in found if not re.fullmatch(r"[a-z0-9_-]+", f)]  # ids, codes
    text = re.sub(r"<[^>]*>", " ", text)
    text = re.sub(r"&\w+;", " ", text)
    return found + [w for w in text.split() if re.search(LETTER, w)]


def literal_js_text(js: str) -> list[str]:
    """User-facing text in the script that is not inside ``T("…")``."""
    js = re.sub(r"/\*.*?\*/", " ", js, flags=re.S)
    js = re.sub(r"(?m)^\s*//.*$|\s//\s.*$", " ", js)
    js = re.sub(r'\bT\("(?:[^"\\]|\\.)*"\)', "T()", js)
    found = re.findall(r"""["'`]([^"'`]*[À-ỹĐđ][^"'`]*)["'`]""", js)  # Vietnamese letters
    for literal in re.findall(r"`([^`]*)`", js):  # text between tags in HTML snippets
        bare = re.sub(r"\$\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}", "", literal)
        found += re.findall(r">([^<>]*[A-Za-zÀ-ỹ][^<>]*)<", bare)
    bare_js = re.sub(r"\$\{[^{}]*\}", "", js)
    found += re.findall(r"""textContent\s*[+]?=\s*["'`]([^"'`]*[A-Za-z][^"'`]*)""", bare_js)
    return [f for f in found if f.strip()]


def test_no_user_facing_text_outside_the_catalogue() -> None:
    """Every word a person reads comes through the catalogue (``_()`` in templates, ``T()``
    in the script), so English is complete and wording changes are made in one place."""
    for f in sorted((UI / "templates").glob("*.html")):
        assert literal_template_text(f.read_text(encoding="utf-8")) == [], f.name
    for js in sorted((UI / "static").glob("*.js")):
        assert literal_js_text(js.read_text(encoding="utf-8")) == [], js.name
    # the checks themselves catch what they are for
    assert literal_template_text("<p>Đang phát</p>") == ["Đang", "phát"]
    assert literal_template_text('<b aria-label="Bản đồ">{{ _("x") }}</b>') == ["Bản đồ"]
    assert literal_js_text('el.textContent = "Đã gửi";') != []
    assert literal_js_text("x.innerHTML = `<li>${a} OK</li>`;") != []
    assert literal_js_text('el.textContent = T("Đã gửi");') == []


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


#: Real, long Vietnamese names: a page must still fit a 360 px phone.
LONG_COMMUNE = "Xã Vị Tân Phước Long Thạnh Đông Nghĩa Hòa"
LONG_HAMLET = "Ấp Phước Long Thạnh Đông Nghĩa Hòa Bình Hưng Lợi Tân Phú Trung"
LONG_DEVICE = "Cụm loa ngã ba chợ Vị Tân cạnh nhà văn hóa ấp Phước Long Thạnh"
LONG_TITLE = (
    "Thông báo về việc tiêm chủng mở rộng cho trẻ em dưới năm tuổi tại trạm y tế xã "
    "Vị Tân trong tháng mười hai năm hai nghìn không trăm hai mươi sáu"
)


def lengthen_names(store: Store) -> None:
    """The demo commune with the longest names a commune might give."""
    with store.db.atomic():
        store.db.execute("UPDATE communes SET name=? WHERE id='vi-tan'", [LONG_COMMUNE])
        store.db.execute("UPDATE hamlets SET name=? WHERE id='ap-3'", [LONG_HAMLET])
        store.db.execute("UPDATE devices SET name=? WHERE id='vt-ap-1-1'", [LONG_DEVICE])


@asynccontextmanager
async def ui_env(
    tmp_path: Path, broker: Any, *, long_names: bool = False
) -> AsyncIterator[tuple[Running, Any, Any]]:
    """The app, six simulated speakers and a browser (a context manager, not a fixture:
    task groups must exit in the task that entered them)."""
    from playwright.async_api import async_playwright

    settings = make_settings(tmp_path, broker, fleet={"silent_s": 3, "check_s": 0.5})
    store = Store(Path(settings.db.path))
    demo_data.seed(store)
    if long_names:
        lengthen_names(store)
    Accounts(store, SystemClock(), settings.security).create(
        "can-bo", PASSWORD, [Role.ADMIN], Area("can-tho", "vi-tan"), "Cán bộ xã"
    )
    Accounts(store, SystemClock(), settings.security).create(
        "xem", PASSWORD, [Role.VIEWER], Area("can-tho", "vi-tan"), "Người xem"
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


async def login(browser: Any, r: Running, width: int, user: str = "can-bo") -> Any:
    context = await browser.new_context(viewport={"width": width, "height": 800}, locale="vi-VN")
    page = await context.new_page()
    page.on("dialog", lambda d: d.accept())  # confirmations: the user says yes
    await page.goto(r.url + "/")
    assert "/login" in page.url
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_url(r.url + "/")
    return page


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def fits(page: Any, name: str) -> None:
    """No sideways scroll; tap targets at least 44 px high; labels at least 12 px."""
    sizes = await page.evaluate(
        """() => ({sw: document.documentElement.scrollWidth, bw: document.body.scrollWidth,
                  iw: window.innerWidth})"""
    )
    wide = await page.evaluate(
        """() => [...document.querySelectorAll('body *')]
             .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
             .slice(0, 8).map(e => e.tagName + '#' + e.id + '.' + e.className
                              + ' ' + Math.round(e.getBoundingClientRect().right))"""
    )
    assert sizes["sw"] <= sizes["iw"] and sizes["bw"] <= sizes["iw"], (name, sizes, wide)
    small = await page.evaluate(
        """() => [...document.querySelectorAll(
                 'button, nav a, select, input:not([type=hidden]):not([type=checkbox])'
                 + ':not([type=radio])')]
             .filter(e => e.offsetParent !== null)
             .map(e => [e.id || e.name || e.textContent.trim().slice(0, 30),
                        e.getBoundingClientRect().height])
             .filter(([_, h]) => h < 43.5)"""
    )
    assert small == [], (name, small)
    tiny = await page.evaluate(
        """() => [...document.querySelectorAll(
                 'label, legend, th, td, p, li, a, button, h1, h2, h3, span')]
             .filter(e => e.offsetParent !== null && e.textContent.trim())
             .map(e => [e.textContent.trim().slice(0, 30),
                        parseFloat(getComputedStyle(e).fontSize)])
             .filter(([_, px]) => px < 12)"""
    )
    assert tiny == [], (name, tiny)
    tiny_svg = await page.evaluate(  # map labels and plot axes, as drawn on the screen
        """() => [...document.querySelectorAll('svg text')]
             .filter(e => e.getBoundingClientRect().height > 0)
             .map(e => [e.textContent.slice(0, 20), e.getBoundingClientRect().height])
             .filter(([_, h]) => h < 12)"""
    )
    assert tiny_svg == [], (name, tiny_svg)


async def visit(page: Any, url: str, name: str, width: int, ready: str = "main") -> None:
    await page.goto(url)
    await page.wait_for_selector(ready, state="attached")
    await page.wait_for_load_state("networkidle")
    await check(page, name, width)


async def check(page: Any, name: str, width: int) -> None:
    if width == 360:
        await fits(page, name)
    await shot(page, f"{name}-{width}")


@needs_chromium
@pytest.mark.parametrize("width", [360, 1280])
async def test_pages_work_at_phone_and_desktop_widths(
    tmp_path: Path, broker: Any, width: int
) -> None:
    async with ui_env(tmp_path, broker, long_names=True) as (r, fleet, browser):
        await pages_at(r, fleet, browser, tmp_path, width)


async def pages_at(r: Running, fleet: Any, browser: Any, tmp_path: Path, width: int) -> None:
    page = await login(browser, r, width)
    await page.wait_for_selector("#sp-vt-ap-1-1.idle")
    assert await page.locator("h1").inner_text() == LONG_COMMUNE
    await page.wait_for_selector("#link-text:has-text('Máy chủ và loa: đang kết nối')")
    await page.wait_for_selector("#on-air li:has-text('Không có gì đang phát')")
    assert re.fullmatch(r"\d\d:\d\d:\d\d", await page.inner_text("#as-of"))
    await visit(page, r.url + "/", "dashboard", width, "#sp-vt-ap-1-1.idle")
    if width == 360:  # the menu collapses, and opens on a tap
        assert not await page.is_visible("nav a[href='/library']")
        await page.click("#menu-toggle")
        await page.wait_for_selector("nav a[href='/library']", state="visible")
        await shot(page, "menu-open-360")

    # library: upload a file and see it listed, in green, saying what happened
    sample = tmp_path / "thong-bao.wav"
    sample.write_bytes(wav(1.0))
    await page.goto(r.url + "/library")
    await page.set_input_files("#upload-file", str(sample))
    await page.fill("#upload-title", f"{LONG_TITLE} {width}")
    await page.click("#upload-form button[type=submit]")
    await page.wait_for_selector(f"#media-list td:has-text('{LONG_TITLE} {width}')", timeout=30_000)
    assert await page.locator("#upload-progress").get_attribute("value") in ("100", "100.0")
    assert await page.get_attribute("#upload-error", "class") == "ok"
    assert "Đã tải lên" in await page.inner_text("#upload-error")
    colour = await page.eval_on_selector("#upload-error", "e => getComputedStyle(e).color")
    assert colour == "rgb(20, 82, 20)", colour  # green, not the error red
    # a refusal is shown next to the form, keeping what was typed
    await page.fill("#tts-title", "x" * 300)
    await page.fill("#tts-text", "Kính thưa bà con")
    await page.click("#tts-form button[type=submit]")
    await page.wait_for_selector("#tts-form .field-error:has-text('Quá dài')", timeout=60_000)
    assert "Hãy sửa các ô được đánh dấu" in await page.inner_text("#tts-error")
    assert await page.input_value("#tts-text") == "Kính thưa bà con"

    await check(page, "library", width)

    # Phát ngay from the library: a long item to Ấp 1 only; the confirm line says where
    # and how many speakers; the dashboard shows it on air with a stop button.
    longer = tmp_path / "ban-tin-dai.wav"
    longer.write_bytes(wav(25.0))
    await page.set_input_files("#upload-file", str(longer))
    await page.fill("#upload-title", f"Bản tin dài {width}")
    await page.click("#upload-form button[type=submit]")
    row = page.locator(f"#media-list tr:has-text('Bản tin dài {width}')")
    await row.wait_for(timeout=60_000)
    await row.locator("button[data-play]").click()
    await page.wait_for_selector("#play-panel:not([hidden])")
    await page.click("#play-go")  # nothing chosen: refused, nothing plays
    await page.wait_for_selector("#play-error:has-text('Chưa chọn nơi phát')")
    await page.check("#play-form input[name=hamlet][value=ap-1]")
    confirm = await page.inner_text("#play-confirm")
    assert f"Bản tin dài {width}" in confirm and "Ấp 1" in confirm and "3 loa" in confirm, confirm
    await check(page, "library-play-now", width)
    before = len(fleet.log.of("report"))
    await page.click("#play-go")
    await page.wait_for_selector("#play-stop:visible", timeout=15_000)
    await page.wait_for_selector("#play-state:has-text('Đang phát')")
    await page.goto(r.url + "/")
    item = page.locator("#on-air li", has_text=f"Bản tin dài {width}")
    await item.wait_for(timeout=10_000)
    await shot(page, f"dashboard-on-air-{width}")
    await item.locator("button.stop").click()
    await page.wait_for_selector("#on-air-result:has-text('Đã dừng phát')")
    await page.wait_for_selector("#on-air li:has-text('Không có gì đang phát')", timeout=15_000)
    with anyio.fail_after(30):
        while len(fleet.log.of("report")) < before + 3:
            await anyio.sleep(0.2)
    reports = fleet.log.of("report")[before:]
    assert {e["device"] for e in reports} == {"vt-ap-1-1", "vt-ap-1-2", "vt-ap-1-3"}
    if width == 360:  # typed text, spoken and played now on Ấp 2's speakers
        await typed_text_plays_now(page, r, fleet)

    # schedule: "Cả xã" then Ấp 1 + Ấp 2 → exactly those two are saved
    await page.goto(r.url + "/schedule")
    await page.wait_for_selector(
        f"#p-media option:has-text('{LONG_TITLE} {width}')", state="attached"
    )
    assert await page.inner_text("#conflicts") == ""  # nothing chosen, nothing claimed
    await page.fill("#p-title", f"{LONG_TITLE} – lịch {width}")
    await page.fill("#p-at", "23:58")
    await page.select_option("#p-media", label=f"{LONG_TITLE} {width}")
    await page.check("#programme-form input[name=hamlet][value='']")
    assert "Cả xã" in await page.inner_text("#programme-form .targets-summary")
    await page.check("#programme-form input[name=hamlet][value=ap-1]")
    # a target picked on the map: a speaker of Ấp 2 selects the hamlet
    await page.click(".pick-map circle[data-hamlet=ap-2] >> nth=0")
    assert await page.is_checked("#programme-form input[name=hamlet][value=ap-2]")
    assert not await page.is_checked("#programme-form input[name=hamlet][value='']")
    assert (
        await page.locator(".pick-map circle.picked").count()
        == await page.locator(
            ".pick-map circle[data-hamlet=ap-1], .pick-map circle[data-hamlet=ap-2]"
        ).count()
    )
    summary = await page.inner_text("#programme-form .targets-summary")
    assert "Ấp 1, Ấp 2" in summary and "6 loa" in summary, summary
    await page.wait_for_selector("#conflicts li:has-text('Không trùng lịch')")  # before saving
    await page.click("#programme-form button[type=submit]")
    await page.wait_for_selector("#programme-error.ok:has-text('gửi duyệt')", timeout=15_000)
    progs = (await r.client.get("/api/communes/vi-tan/programmes")).json()["programmes"]
    mine = [p for p in progs if p["title"] == f"{LONG_TITLE} – lịch {width}"]
    assert len(mine) == 1
    assert sorted(t.get("hamlet") for t in mine[0]["targets"]) == ["ap-1", "ap-2"]
    entry = page.locator(f".occ:has-text('{LONG_TITLE} – lịch {width}') >> nth=0")
    await entry.wait_for(timeout=15_000)
    assert "Chờ duyệt" in await entry.inner_text() and "Ấp 1, Ấp 2" in await entry.inner_text()
    # approve: a labelled button, a confirmation (accepted), a result
    pending = page.locator("#pending li", has_text=f"{LONG_TITLE} – lịch {width}")
    await pending.locator("button:has-text('Duyệt')").click()
    await page.wait_for_selector("#pending-result.ok:has-text('Đã duyệt')")
    await page.wait_for_selector(f".occ.status-approved:has-text('{LONG_TITLE} – lịch {width}')")
    # the same time again for Ấp 2: one line naming the clash
    await page.fill("#p-title", "Trùng")
    await page.uncheck("#programme-form input[name=hamlet][value=ap-1]")
    await page.dispatch_event("#p-at", "change")
    line = page.locator("#conflicts li", has_text="Trùng giờ với")
    await page.wait_for_selector("#conflicts li:has-text('lúc 23:58 (3 loa)')")
    assert await line.count() == 1
    await visit(page, r.url + "/schedule", "schedule", width, ".occ")

    for name in ("live", "emergency", "devices", "reports", "setup"):
        await visit(page, r.url + "/" + name, name, width)
        unlabelled = await page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                              && !e.closest('label')).map(e => e.id || e.name)"""
        )
        assert unlabelled == [], (name, unlabelled)

    # technician: names, hamlet names, status colour, last seen, signal; no faults said so
    await page.goto(r.url + "/devices")
    row = page.locator("#device-list tr[data-device=vt-ap-1-1]")
    await row.wait_for()
    text = await row.inner_text()
    assert LONG_DEVICE in text and "Ấp 1" in text and "Trực tuyến" in text, text
    assert "dBm" in text and ("vừa xong" in text or "giây" in text or "phút" in text), text
    await page.goto(r.url + "/devices/vt-ap-1-2")
    await page.wait_for_selector("#health polyline", timeout=20_000)
    axes = await page.eval_on_selector("#health", "e => e.textContent")
    assert "Nhiệt độ (°C)" in axes and "Tín hiệu (dBm)" in axes, axes
    await page.click("button[data-command=test_tone]")
    await page.wait_for_selector("#command-status.ok:has-text('Đã gửi lệnh')")
    await page.wait_for_selector("#command-list li:has-text('Kết quả: thành công')", timeout=20_000)
    assert "Loa đã nhận lúc" in await page.inner_text("#command-list li >> nth=0")
    await visit(page, r.url + "/devices/vt-ap-1-2", "device", width, "#health polyline")
    month = await page.goto(r.url + "/reports")
    assert month is not None
    assert re.fullmatch(r"\d{4}-\d\d", await page.input_value("#r-month"))
    await visit(page, r.url + "/login", "login", width)
    await page.close()


async def typed_text_plays_now(page: Any, r: Running, fleet: Any) -> None:
    await page.goto(r.url + "/library")
    await page.fill("#tts-text", "Kính thưa bà con, chiều nay có mưa lớn.")
    await page.fill("#tts-title", "Tin thời tiết")
    before = len(fleet.log.of("report"))
    await page.click("#tts-play")
    assert await page.is_disabled("#tts-save")  # busy while the text is spoken
    await page.wait_for_selector("#play-panel:not([hidden])", timeout=60_000)
    assert await page.inner_text("#play-what") == "Tin thời tiết"
    await page.check("#play-form input[name=hamlet][value=ap-2]")
    assert "Ấp 2 – 3 loa" in await page.inner_text("#play-confirm")
    await page.click("#play-go")
    await page.wait_for_selector("#play-state.ok:has-text('3/3 loa đã phát')", timeout=60_000)
    reports = fleet.log.of("report")[before:]
    assert {e["device"] for e in reports} == {"vt-ap-2-1", "vt-ap-2-2", "vt-ap-2-3"}
    assert all(e["frames_played"] > 0 for e in reports)


@needs_chromium
@pytest.mark.parametrize("width", [360, 1280])
async def test_a_lost_server_shows_stale_and_recovers(
    tmp_path: Path, broker: Any, width: int
) -> None:
    """The server stops mid-session: within 5 s the page says so and greys what it
    shows; an action says the network failed (not "fix the fields"); after a restart on
    the same address the page recovers by itself."""
    from playwright.async_api import async_playwright

    from broadcaster.bench.harness import ControllerThread

    settings = make_settings(tmp_path, broker)
    store = Store(Path(settings.db.path))
    demo_data.seed(store)
    Accounts(store, SystemClock(), settings.security).create(
        "can-bo", PASSWORD, [Role.ADMIN], Area("can-tho", "vi-tan"), "Cán bộ xã"
    )
    store.close()
    controllers: list[ControllerThread] = []

    def start(port: int = 0) -> str:
        """A controller on the same database (and, after the first, the same address)."""
        c = ControllerThread(settings)
        c.server.config.port = port
        controllers.append(c)
        return c.start()

    async def stop() -> None:
        await anyio.to_thread.run_sync(controllers[-1].stop)

    url = start()
    port = int(url.rsplit(":", 1)[1])
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = await browser.new_page(viewport={"width": width, "height": 800})
                await lose_and_recover(page, url, stop, lambda: start(port), width)
            finally:
                await browser.close()
    finally:
        for c in controllers:
            if c.thread.is_alive():
                await anyio.to_thread.run_sync(c.stop)


async def lose_and_recover(page: Any, url: str, stop: Any, restart: Any, width: int) -> None:
    await page.goto(url + "/login")
    await page.fill("#username", "can-bo")
    await page.fill("#password", "sai mật khẩu")
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#login-error:has-text('Sai tên đăng nhập hoặc mật khẩu.')")
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_url(url + "/")
    await page.wait_for_selector("#link-text:has-text('đang kết nối')")
    assert await page.is_hidden("#stale-banner")

    await stop()  # the server goes away mid-session
    stopped = anyio.current_time()
    await page.wait_for_selector("#stale-banner:visible", timeout=5_000)
    assert anyio.current_time() - stopped < 5.0
    banner = await page.inner_text("#stale-banner")
    assert re.search(r"Mất kết nối máy chủ – số liệu lúc \d\d:\d\d", banner), banner
    assert "stale" in (await page.get_attribute("body", "class") or "")
    greyed = await page.eval_on_selector(
        "#map", "e => getComputedStyle(e.closest('.live')).opacity"
    )
    assert float(greyed) < 1
    assert "mất kết nối" in await page.inner_text("#link-text")
    await shot(page, f"stale-{width}")

    await anyio.to_thread.run_sync(restart)  # back on the same address: recovers by itself
    await page.wait_for_selector("#stale-banner", state="hidden", timeout=20_000)
    await page.wait_for_selector("#link-text:has-text('đang kết nối')")
    assert "stale" not in (await page.get_attribute("body", "class") or "")
    await shot(page, f"recovered-{width}")

    # an action while the server is down says the network failed, not "fix the fields"
    await page.goto(url + "/library")
    await page.wait_for_selector("#media-list tr")
    await stop()
    await page.fill("#tts-text", "Kính thưa bà con")
    await page.click("#tts-form button[type=submit]")
    await page.wait_for_selector("#tts-error:has-text('Không kết nối được máy chủ')")
    assert "Hãy sửa" not in await page.inner_text("#tts-error")
    await page.wait_for_selector("#stale-banner:visible", timeout=5_000)
    await anyio.to_thread.run_sync(restart)
    await page.wait_for_selector("#stale-banner", state="hidden", timeout=20_000)


@needs_chromium
async def test_the_report_prints_on_a4_in_both_languages(tmp_path: Path, broker: Any) -> None:
    async with ui_env(tmp_path, broker, long_names=True) as (r, _fleet, browser):
        page = await login(browser, r, 360)
        for lang in ("vi", "en"):
            await page.goto(f"{r.url}/reports?lang={lang}")
            frame = page.frame_locator("#report-frame")
            await frame.locator("h1").wait_for()
            month = await page.input_value("#r-month")
            src = await page.get_attribute("#report-frame", "src")
            assert src is not None and f"month={month}" in src and f"lang={lang}" in src
            await visit(page, page.url, f"reports-{lang}", 360, "#report-frame")
            report = await page.context.new_page()
            await report.goto(r.url + src)
            await fits(report, f"report-{lang}")
            await shot(report, f"report-{lang}-360")
            await report.set_viewport_size({"width": 1280, "height": 900})
            await shot(report, f"report-{lang}-1280")
            await report.set_viewport_size({"width": 360, "height": 800})
            text = await report.inner_text("body")
            y, m = month.split("-")
            assert f"01/{m}/{y}" in text, text[:300]
            if lang == "vi":
                for words in (
                    "Tin tức",
                    "Thông báo",
                    "Tiếp sóng",
                    "Trực tiếp",
                    "Cảnh báo",
                    "Tổng",
                    "Người lập",
                    "Thủ trưởng đơn vị",
                    LONG_COMMUNE.upper(),
                ):
                    assert words in text, words
            else:
                for words in (
                    "News",
                    "Notices",
                    "Relays",
                    "Live",
                    "Alerts",
                    "Total",
                    "Prepared by",
                    "Head of unit",
                    "Reporting period",
                ):
                    assert words in text, words
                for vietnamese in ("Tin tức", "Người lập", "Giờ phát", "Kỳ báo cáo"):
                    assert vietnamese not in text, vietnamese
            await report.emulate_media(media="print")
            assert await report.is_hidden("button.print")
            await report.set_viewport_size({"width": 718, "height": 1000})  # A4 less margins
            await fits(report, f"report-print-{lang}")
            pdf = tmp_path / f"bao-cao-{lang}.pdf"
            await report.pdf(path=str(pdf), format="A4", print_background=True)
            SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(pdf, SHOTS / f"report-{lang}.pdf")
            boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.read_bytes())
            assert 1 <= len(boxes) <= 3, boxes  # one page per MediaBox, a short report
            for w, h in boxes:  # A4 is 595.3 × 841.9 points (Chromium rounds to its pixels)
                assert abs(float(w) - 595.3) < 2 and abs(float(h) - 841.9) < 2, (w, h)
            await report.close()
        await page.close()
        await a_viewer_sees_no_buttons_and_a_refusal_says_why(browser, r)


async def a_viewer_sees_no_buttons_and_a_refusal_says_why(browser: Any, r: Running) -> None:
    page = await login(browser, r, 360, user="xem")
    await page.goto(r.url + "/library")
    await page.wait_for_selector("#media-list tr")
    assert await page.locator("[data-play], #upload-form, #tts-form").count() == 0
    await page.goto(r.url + "/devices/vt-ap-1-1")
    assert await page.locator("[data-command]").count() == 0
    await page.goto(r.url + "/schedule")  # the week, read-only
    await page.wait_for_selector("#calendar .day")
    assert await page.locator("#programme-form, [data-approve]").count() == 0
    # a refusal from the server (a role without the right) reads as a permission problem
    said = await page.evaluate(
        """() => api("POST", "/api/broadcasts", {media_id: "00000000-0000-4000-8000-000000000000",
                   targets: [{commune: "vi-tan"}]}).then(() => "played", messageFor)"""
    )
    assert said == "Tài khoản của bạn không có quyền làm việc này.", said
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
    if width == 360:
        await page.click("#menu-toggle")  # the menu, collapsed on a phone
    body = await page.inner_text("body")
    for english in ("Dashboard", "Schedule", "Emergency", "Speaker map", "Hamlet", "Log out"):
        assert english in body, english
    for vietnamese in ("Bảng điều khiển", "Lịch phát", "Khẩn cấp", "Ấp / thôn", "Đăng xuất"):
        assert vietnamese not in body, vietnamese
    await shot(page, f"dashboard-en-{width}")
    for name in ("library", "schedule", "devices", "reports"):  # English throughout
        await page.goto(f"{r.url}/{name}")
        ready = "#report-frame" if name == "reports" else "#as-of:not(:has-text('—'))"
        await page.wait_for_selector(ready, state="attached")
        text = await page.inner_text("main")
        for vietnamese in ("Bản tin", "Nơi phát", "Trạng thái", "Tháng", "Trực tuyến"):
            assert vietnamese not in text, (name, vietnamese)
        await shot(page, f"{name}-en-{width}")
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
