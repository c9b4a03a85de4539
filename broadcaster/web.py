"""A small Vietnamese-first status page (the full UI is built in its own issue)."""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from .services import Services

TEXT = {
    "vi": {
        "title": "Loa — Hệ thống truyền thanh thông minh",
        "hamlet": "Ấp / thôn",
        "speakers": "Cụm loa",
        "online": "Đang trực tuyến",
        "recent": "Bản tin gần đây",
        "status": "Trạng thái",
        "api": "Giao diện lập trình (API)",
        "mqtt": "Kết nối MQTT",
        "yes": "có",
        "no": "mất kết nối",
    },
    "en": {
        "title": "Loa — smart public-address system",
        "hamlet": "Hamlet",
        "speakers": "Speakers",
        "online": "Online",
        "recent": "Recent broadcasts",
        "status": "Status",
        "api": "API",
        "mqtt": "MQTT connection",
        "yes": "up",
        "no": "down",
    },
}


async def home(request: Request) -> HTMLResponse:
    s: Services = request.app.state.loa
    lang = "en" if request.query_params.get("lang") == "en" else "vi"
    t = TEXT[lang]
    parts = [
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(t['title'])}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:1rem;max-width:60rem}"
        "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;"
        "padding:.3rem;text-align:left}.off{color:#b00}</style></head><body>",
        f"<h1>{escape(t['title'])}</h1>",
        f"<p>{t['mqtt']}: <b>{t['yes'] if s.link.connected else t['no']}</b> · "
        f'<a href="?lang={"en" if lang == "vi" else "vi"}">'
        f"{'English' if lang == 'vi' else 'Tiếng Việt'}</a> · "
        f'<a href="/api/communes">{t["api"]}</a></p>',
    ]
    for c in s.store.communes():
        parts.append(
            f"<h2>{escape(c['name'])}</h2><table><tr>"
            f"<th>{t['hamlet']}</th><th>{t['speakers']}</th><th>{t['online']}</th></tr>"
        )
        for h in s.store.hamlets(c["id"]):
            cls = "" if h["online"] == h["devices"] else ' class="off"'
            parts.append(
                f"<tr><td>{escape(h['name'])}</td><td>{h['devices']}</td>"
                f"<td{cls}>{h['online']}</td></tr>"
            )
        parts.append(f"</table><h3>{t['recent']}</h3><ul>")
        for b in s.ledger.recent(c["id"], 10):
            parts.append(f"<li>{escape(b['title'])} — {t['status']}: {escape(b['status'])}</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return HTMLResponse("".join(parts))


routes = [Route("/", home)]
