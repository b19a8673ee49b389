"""Render report documents: self-contained HTML (inline CSS, SVG charts as data URIs)
and a PDF of the same HTML through WeasyPrint."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from dataward.reports import svg


@lru_cache(maxsize=1)
def environment():
    from jinja2 import ChainableUndefined, Environment, PackageLoader, select_autoescape

    # ChainableUndefined: a stage that did not run renders as "-", never as an error
    env = Environment(loader=PackageLoader("dataward", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), undefined=ChainableUndefined)
    env.filters["num"] = _num
    env.filters["pct"] = lambda x: "-" if x is None else f"{float(x):.1%}"
    env.globals["image_uri"] = image_uri
    return env


def _num(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool) or isinstance(x, int):
        return str(x)
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.{max(digits - 1, 1)}e}"
    return f"{v:.{digits}g}"


def charts(doc: dict[str, Any]) -> dict[str, Any]:
    """SVG charts (as data URIs) drawn from the document's figures."""
    figs = doc.get("figures") or {}
    out: dict[str, Any] = {"screens": {}, "per_class": None, "projection": None}
    for s in figs.get("screens", []):
        h = s.get("histogram")
        if not h:
            continue
        out["screens"][s["name"]] = svg.data_uri(svg.histogram(
            h["edges"], h["counts"], h["flagged_counts"], threshold=h.get("threshold_x"),
            title=f"{s['name']}: score distribution", x_label=f"{s['name']} score",
            log_x=h["log10"]))
    pc = figs.get("per_class")
    if pc and pc.get("classes"):
        classes = pc["classes"]
        series = {"verdict (flagged)": [pc["verdict_flagged"].get(c, 0) for c in classes]}
        for name, counts in (pc.get("screens_flagged") or {}).items():
            series[name] = [counts.get(c, 0) for c in classes]
        out["per_class"] = svg.data_uri(svg.grouped_bars(classes, series, title="Flagged rows per class"))
    proj = figs.get("projection")
    if proj and proj.get("available"):
        out["projection"] = svg.data_uri(svg.scatter(
            [(p[0], p[1], p[2]) for p in proj["points"]],
            title=f"2-D projection ({proj['n_shown']} of {proj['n_rows']} rows)"))
    return out


def image_uri(image: dict[str, Any] | None) -> str | None:
    if not image:
        return None
    h, w, ch = image["height"], image["width"], image.get("channels", 1)
    px = image["pixels"]
    scale = max(2, 64 // max(h, w))
    if ch == 3:
        return svg.data_uri(svg.rgb_image([px[i:i + 3] for i in range(0, len(px), 3)], h, w, scale=scale))
    return svg.data_uri(svg.grey_image(px, h, w, scale=scale))


def render_html(doc: dict[str, Any]) -> str:
    return environment().get_template("report.html.j2").render(doc=doc, charts=charts(doc))


def render_pdf(html: str) -> bytes:
    """The PDF of ``html``; WeasyPrint fetches nothing (every resource is inline)."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    # only data: URIs: a report that would need the network or a local file fails loudly
    inline_only = URLFetcher(allowed_protocols=["data"], fail_on_errors=True)
    return HTML(string=html, url_fetcher=inline_only).write_pdf()
