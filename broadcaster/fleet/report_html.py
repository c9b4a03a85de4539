"""The monthly report as a page to print, sign and send: in the reader's language
(Vietnamese first), dates dd/mm/yyyy, a commune header, the period, a chart with
non-negative axes and a signature block; laid out for A4."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..ui.i18n import LANGUAGES, gettext_for
from .report import KIND_ORDER

TEMPLATES = Path(__file__).parent.parent / "ui" / "templates"
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
#: Kind of broadcast → its Vietnamese name (the msgid; English from the catalogue).
KIND_NAMES = {
    "news": "Tin tức",
    "notice": "Thông báo",
    "relay": "Tiếp sóng",
    "live": "Trực tiếp",
    "alert": "Cảnh báo",
}
COLOURS = {
    "news": "#1456c8",
    "notice": "#6a3d9a",
    "relay": "#b07d00",
    "live": "#1f7a1f",
    "alert": "#a30000",
}


def number(lang: str) -> Callable[[float, int], str]:
    """1234.5 → "1.234,5" in Vietnamese, "1,234.5" in English."""

    def fmt(x: float, digits: int = 2) -> str:
        text = f"{x:,.{digits}f}"
        return text.replace(",", " ").replace(".", ",").replace(" ", ".") if lang == "vi" else text

    return fmt


def dmy(d: date) -> str:
    return f"{d.day:02d}/{d.month:02d}/{d.year}"


def _plot(report: dict[str, Any], _: Callable[[str], str], fmt: Callable[[float, int], str]) -> str:
    """Hours on air per hamlet (stacked by kind) and uptime per hamlet, as a PNG data URL;
    both axes start at zero."""
    fig = Figure(figsize=(7.2, 6.4), dpi=110)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(2, 1)
    names = [h["name"] if len(h["name"]) <= 14 else h["name"][:13] + "…" for h in report["hamlets"]]
    x = list(range(len(names)))
    bottom = [0.0] * len(names)
    for kind in KIND_ORDER:
        values = [max(0.0, h["hours"][kind]) for h in report["hamlets"]]
        ax1.bar(x, values, bottom=bottom, label=_(KIND_NAMES[kind]), color=COLOURS[kind])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax1.set_ylim(0, max([*bottom, 0.0]) * 1.15 or 1.0)
    ax1.set_ylabel(_("Giờ phát"))
    ax1.set_title(_("Giờ phát theo ấp"))
    ax1.legend(fontsize=7, ncols=5, loc="upper center", bbox_to_anchor=(0.5, -0.28))
    ax1.yaxis.set_major_formatter(lambda v, _pos: fmt(v, 1))
    ups = [((h["uptime"] or {}).get("uptime") or 0) * 100 for h in report["hamlets"]]
    ax2.bar(x, ups, color="#1f7a1f")
    ax2.set_ylim(0, 100)
    ax2.set_ylabel(_("Thời gian hoạt động (%)"))
    ax2.set_title(_("Thời gian hoạt động theo ấp"))
    for ax in (ax1, ax2):
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def as_html(report: dict[str, Any], first: date, last: date, lang: str = "vi") -> str:
    lang = lang if lang in LANGUAGES else "vi"
    _ = gettext_for(lang)
    fmt = number(lang)
    a = report["alerts"]
    up = report["uptime"]["uptime"]
    totals = {k: sum(h["hours"][k] for h in report["hamlets"]) for k in KIND_ORDER}
    return _env.get_template("report.html").render(
        _=_,
        lang=lang,
        r=report,
        n=fmt,
        kinds=[(k, _(KIND_NAMES[k])) for k in KIND_ORDER],
        totals=totals,
        total=sum(totals.values()),
        first=dmy(first),
        last=dmy(last),
        month=f"{first.month:02d}/{first.year}",
        today=last,
        rate=None if a["delivery_rate"] is None else fmt(a["delivery_rate"] * 100, 1) + " %",
        uptime=None if up is None else fmt(up * 100, 1) + " %",
        chart=_plot(report, _, fmt),
    )
