"""Pages: each is a template over the JSON API; data is fetched by ``static/loa.js``
with the session cookie and the CSRF token the page carries."""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..auth.guard import principal
from ..auth.roles import Perm
from ..services import Services
from .emergency import emergency_context
from .i18n import LANGUAGES, gettext_for, translator

HERE = Path(__file__).parent
env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    extensions=["jinja2.ext.i18n"],
)
#: Strings the JavaScript shows: every ``T("…")`` in ``static/loa.js`` (translated
#: server-side, handed over as JSON). A test fails on user-facing text outside ``T``.
JS_STRINGS = tuple(
    dict.fromkeys(
        m
        for js in sorted((HERE / "static").glob("*.js"))
        for m in re.findall(r'\bT\("((?:[^"\\]|\\.)*)"\)', js.read_text("utf-8"))
    )
)
#: Each language's own name (the switch shows the other one), never translated.
LANG_NAMES = {"vi": "Tiếng Việt", "en": "English"}


#: Pages whose targets can be picked on the map (a click toggles the speaker's hamlet).
PICK_ON_MAP = ("schedule.html", "emergency.html", "live.html", "library.html")


def lang_of(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get("lang") or "vi"
    return lang if lang in LANGUAGES else "vi"


def svc(request: Request) -> Services:
    s: Services = request.app.state.loa
    return s


def render(request: Request, name: str, **ctx: Any) -> HTMLResponse:
    lang = lang_of(request)
    gettext = gettext_for(lang)
    env.install_gettext_callables(gettext, lambda s, p, n: gettext(s if n == 1 else p))  # type: ignore[attr-defined]
    p = request.scope.get("state", {}).get("principal")
    s = svc(request)
    communes = _communes(request)
    commune = _commune(request)
    table = translator(lang)
    js = {k: table.get(k, k) for k in JS_STRINGS}
    html = env.get_template(name).render(
        request=request,
        lang=lang,
        other="en" if lang == "vi" else "vi",
        user=p,
        communes=communes,
        commune=commune,
        csrf=p.csrf if p is not None else "",
        js=js,
        path=request.url.path,
        mqtt=s.link.connected,
        perms=sorted(str(x) for x in p.perms) if p is not None else [],
        lang_names=LANG_NAMES,
        tz=(commune or {}).get("timezone") or s.settings.scheduler.timezone,
        can_setup=p is not None and Perm.PLACES in p.perms,
        banner=_banner(request),
        banner_names=_place_names(request, commune),
        **ctx,
    )
    resp = HTMLResponse(html)
    if request.query_params.get("lang") in LANGUAGES:
        resp.set_cookie("lang", lang, max_age=365 * 86400, samesite="strict", path="/")
    return resp


def _banner(request: Request) -> list[dict[str, Any]]:
    """Every alert sounding in the account's communes: the red bar on every page."""
    if request.scope.get("state", {}).get("principal") is None:
        return []
    s = svc(request)
    zone = ZoneInfo(s.settings.scheduler.timezone)
    out = s.alerts.active([c["id"] for c in _communes(request)])
    for a in out:
        since = datetime.fromtimestamp((a["since_us"] or 0) / 1e6, zone)
        a["since"] = since.strftime("%H:%M %d/%m")
    return out


def _place_names(request: Request, commune: dict[str, Any] | None) -> dict[str, str]:
    """Hamlet id → name (and the commune's own name under ""), for the banner's script."""
    if commune is None or request.scope.get("state", {}).get("principal") is None:
        return {}
    names = {h["id"]: h["name"] for h in svc(request).store.hamlets(commune["id"])}
    return {"": commune["name"], **names}


def layout(
    devices: list[Any],
    hamlets: list[dict[str, Any]],
    zones_of: dict[str, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """Speaker positions on a 1000 × 600 SVG: from GPS where known, else placed around
    their hamlet on a grid (no tile server: the map is drawn from our own data)."""
    gps = [(d["lat"], d["lon"]) for d in devices if d["lat"] is not None and d["lon"] is not None]
    order = {h["id"]: i for i, h in enumerate(hamlets)}
    cols = max(1, math.ceil(math.sqrt(len(hamlets) or 1) * 1.6))
    out = []
    if gps:
        lat0, lat1 = min(g[0] for g in gps), max(g[0] for g in gps)
        lon0, lon1 = min(g[1] for g in gps), max(g[1] for g in gps)
    for n, d in enumerate(devices):
        if gps and d["lat"] is not None and d["lon"] is not None:
            x = 50 + 900 * ((d["lon"] - lon0) / ((lon1 - lon0) or 1))
            y = 550 - 500 * ((d["lat"] - lat0) / ((lat1 - lat0) or 1))
        else:
            i = order.get(d["hamlet"], 0)
            cx = 100 + (i % cols) * (800 / max(1, cols - 1) if cols > 1 else 0)
            cy = 110 + (i // cols) * 190
            angle = (n % 6) * math.pi / 3
            x, y = cx + 45 * math.cos(angle), cy + 45 * math.sin(angle)
        out.append(
            {
                "id": d["id"],
                "name": d.get("name") or d["id"],
                "hamlet": d["hamlet"],
                "zones": zones_of.get(d["id"], []) if zones_of else [],
                "x": round(x),
                "y": round(y),
            }
        )
    return out


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path on this site, else ``/``. Refused: other
    schemes (``javascript:``), other hosts (``//evil.example``, ``/\\evil.example``),
    and anything with spaces or control characters browsers would strip."""
    if not value or len(value) > 2000 or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


async def login_page(request: Request) -> Response:
    return render(request, "login.html", next=safe_next(request.query_params.get("next")))


async def dashboard(request: Request) -> Response:
    s = svc(request)
    principal(request)
    commune = _commune(request)
    if commune is None:
        if principal(request).can(Perm.PLACES):  # an empty installation: set it up first
            return RedirectResponse("/setup", status_code=303)
        return render(request, "dashboard.html")
    hamlets = s.store.hamlets(commune["id"])
    devices = s.store.device_details(commune["id"])
    return render(
        request,
        "dashboard.html",
        hamlets=hamlets,
        points=layout(devices, hamlets),
        types=emergency_context()["types"],
    )


def _communes(request: Request) -> list[dict[str, Any]]:
    """The communes inside the logged-in account's area (all, before logging in)."""
    p = request.scope.get("state", {}).get("principal")
    communes = svc(request).store.communes()
    if p is None:
        return communes
    if p.area.commune:
        return [c for c in communes if c["id"] == p.area.commune]
    return [c for c in communes if p.area.covers_commune(c["id"], c["province_id"])]


def _commune(request: Request) -> dict[str, Any] | None:
    """The commune a page shows: ``?commune=`` if it is in the area, else the first."""
    communes = _communes(request)
    wanted = request.query_params.get("commune")
    return next((c for c in communes if c["id"] == wanted), communes[0] if communes else None)


def _simple(name: str, template: str) -> Route:
    async def page(request: Request) -> Response:
        principal(request)
        ctx: dict[str, Any] = {}
        if template == "emergency.html":
            ctx.update(emergency_context())
        commune = _commune(request)
        if commune is not None:
            ctx["hamlets"] = svc(request).store.hamlets(commune["id"])
            if template in PICK_ON_MAP:
                store = svc(request).store
                devices = store.device_details(commune["id"])
                ctx["zones"] = store.query(
                    "SELECT id, name FROM zones WHERE commune_id=? ORDER BY name", [commune["id"]]
                )
                zones_of: dict[str, list[str]] = {}
                for r in store.query(
                    "SELECT device_id, zone_id FROM zone_members WHERE commune_id=?",
                    [commune["id"]],
                ):
                    zones_of.setdefault(r["device_id"], []).append(r["zone_id"])
                ctx["points"] = layout(devices, ctx["hamlets"], zones_of)
                # an account limited to some hamlets is offered only those
                mine = principal(request).area.hamlets
                ctx["pick_hamlets"] = [h for h in ctx["hamlets"] if not mine or h["id"] in mine]
                ctx["pick_whole"] = not mine
                if mine:
                    ctx["zones"] = []
                ctx["place_names"] = {
                    **{z["id"]: z["name"] for z in ctx["zones"]},
                    **{h["id"]: h["name"] for h in ctx["hamlets"]},
                }
        return render(request, template, **ctx)

    return Route(name, page)


async def device_page(request: Request) -> Response:
    principal(request)
    return render(request, "device.html", device_id=request.path_params["device"])


async def reports_page(request: Request) -> Response:
    """The report opens on the current month (in the commune's time zone), chosen."""
    principal(request)
    commune = _commune(request)
    zone = ZoneInfo((commune or {}).get("timezone") or svc(request).settings.scheduler.timezone)
    today = datetime.fromtimestamp(svc(request).clock.now_us() / 1e6, zone).date()
    return render(request, "reports.html", month=f"{today.year:04d}-{today.month:02d}")


routes = [
    Route("/login", login_page),
    Route("/", dashboard),
    _simple("/library", "library.html"),
    _simple("/schedule", "schedule.html"),
    _simple("/live", "live.html"),
    _simple("/emergency", "emergency.html"),
    _simple("/devices", "devices.html"),
    Route("/devices/{device}", device_page),
    Route("/reports", reports_page),
    _simple("/setup", "setup.html"),
    Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
]
