"""Render report documents: self-contained HTML (inline CSS, SVG charts as data URIs)
and a PDF of the same HTML through WeasyPrint."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from dataward.reports import svg
from dataward.reports.formatting import num, pct


@lru_cache(maxsize=1)
def environment():
    from jinja2 import ChainableUndefined, Environment, PackageLoader, select_autoescape

    # ChainableUndefined: a stage that did not run renders as "-", never as an error
    env = Environment(loader=PackageLoader("dataward", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), undefined=ChainableUndefined)
    env.filters["num"] = num
    env.filters["pct"] = lambda x: pct(x, 1)
    env.globals["image_uri"] = image_uri
    return env


def charts(doc: dict[str, Any]) -> dict[str, Any]:
    """SVG charts (as data URIs) drawn from the document's figures."""
    figs = doc.get("figures") or {}
    out: dict[str, Any] = {"screens": {}, "per_class": None, "projection": None}
    out.update(check_charts(doc))
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


def check_charts(doc: dict[str, Any]) -> dict[str, str | None]:
    """Charts of the canary, leakage, diff and personal-data sections (data URIs or None)."""
    out: dict[str, str | None] = {"canary": None, "leakage": None, "diff_labels": None,
                                  "diff_drift": None, "pii": None}
    can = doc.get("canary") or {}
    if can.get("status") == "done":
        labels = ["verdict (flagged)"] + [f"{s['name']} @ {s['budget']}" if s.get("budget") is not None
                                          else s["name"] for s in can["screens"]]
        values = [can.get("recall")] + [s.get("recall_at_budget") for s in can["screens"]]
        colors = [svg.FLAGGED if can.get("met_floor") is False else svg.CLEAN] + [svg.MUTED] * len(can["screens"])
        floor = can.get("min_recall")
        out["canary"] = svg.data_uri(svg.hbars(
            labels, values, percent=True, colors=colors, title="Canaries caught (recall)",
            markers=[(floor, f"policy floor {pct(floor)}")] if floor is not None else []))
    leak = doc.get("leakage") or {}
    if leak.get("status") == "done":
        near = not leak["near"].get("not_run")  # not searched in a table too large to hold
        labels = ["exact duplicates", "conflicting labels"] + (["near duplicates"] if near else [])
        values = [leak["exact"].get("n_rows") or 0, leak["conflicting_labels"].get("n_rows") or 0]
        values += [leak["near"].get("n_rows") or 0] if near else []
        for e in leak.get("evaluation") or []:
            short = e["name"].rsplit("/", 1)[-1]
            labels += [f"{short}: exact copies"] + ([f"{short}: near copies"] if near else [])
            values += [e.get("exact_eval_rows")] + ([e.get("near_eval_rows")] if near else [])
        out["leakage"] = svg.data_uri(svg.hbars(labels, values, title="Duplicate and leaked rows"))
    diff = doc.get("diff") or {}
    if diff.get("status") == "done":
        lab = diff.get("labels") or {}
        classes = lab.get("classes") or []
        if classes:
            out["diff_labels"] = svg.data_uri(svg.grouped_bars(
                classes, {diff["a"]: [int((lab.get("counts_a") or {}).get(c, 0)) for c in classes],
                          diff["b"]: [int((lab.get("counts_b") or {}).get(c, 0)) for c in classes]},
                title="Rows per class: previous approved vs this version"))
        top = (diff.get("drift") or {}).get("top_columns") or []
        if top:
            band = {"major": svg.FLAGGED, "moderate": svg.THRESHOLD}
            out["diff_drift"] = svg.data_uri(svg.hbars(
                [t["column"] for t in top], [t.get("psi") for t in top], title="Feature drift (PSI), largest first",
                colors=[band.get(t["band"], svg.CLEAN) for t in top],
                max_value=max(max(t.get("psi") or 0 for t in top), 0.3),
                markers=[(0.1, "0.1"), (0.25, "0.25")]))
    bal = (doc.get("data_card") or {}).get("class_balance") or {}
    out["class_balance"] = None
    if bal.get("status") == "done" and bal.get("classes"):
        out["class_balance"] = svg.data_uri(svg.grouped_bars(
            bal["classes"], {name: [round(100 * shares.get(c, 0), 1) for c in bal["classes"]]
                             for name, shares in bal["shares"].items()},
            title="Share of rows per class (%)"))
    pii = doc.get("pii") or {}
    if pii.get("status") == "done" and pii.get("tags"):
        tags = pii["tags"][:20]
        out["pii"] = svg.data_uri(svg.hbars(
            [f"{t['column']}: {t['tag']}" for t in tags], [t.get("fraction") for t in tags], percent=True,
            colors=[svg.FLAGGED if t.get("acted_on") else svg.THRESHOLD for t in tags],
            title="Share of sampled values holding personal data"))
    return out


def image_uri(image: dict[str, Any] | None) -> str | None:
    """A row's image as an embedded PNG thumbnail (``data:image/png;base64,...``).

    Pixels of any range are scaled to 0-255 per image; small images are enlarged with
    nearest-neighbour so a reviewer sees the pixels (one PNG, not one SVG element each).
    """
    import base64
    import io

    import numpy as np
    from PIL import Image

    if not image:
        return None
    h, w, ch = int(image["height"]), int(image["width"]), int(image.get("channels", 1))
    px = np.asarray(image["pixels"], dtype=np.float64)
    if px.size != h * w * ch or not np.isfinite(px).all():
        return None
    lo, hi = float(px.min()), float(px.max())
    if lo >= 0 and hi <= 255 and hi > 1:
        scaled = px
    else:
        scaled = (px - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(px)
    arr = scaled.round().clip(0, 255).astype(np.uint8).reshape((h, w, ch) if ch == 3 else (h, w))
    img = Image.fromarray(arr, mode="RGB" if ch == 3 else "L")
    scale = max(1, 64 // max(h, w))
    if scale > 1:
        img = img.resize((w * scale, h * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_html(doc: dict[str, Any]) -> str:
    return environment().get_template("report.html.j2").render(doc=doc, charts=charts(doc))


#: The fonts shipped with the package (DejaVu, Bitstream Vera licence: fonts/LICENSE.txt),
#: as (family, weight, file). The PDF is laid out with these and nothing from the host, so it
#: is the same on every host, and a host without any font gets a report instead of a crash.
FONT_FILES = (("Dataward Sans", 400, "DejaVuSans.ttf"), ("Dataward Sans", 700, "DejaVuSans-Bold.ttf"),
              ("Dataward Mono", 400, "DejaVuSansMono.ttf"), ("Dataward Mono", 700, "DejaVuSansMono.ttf"))


@lru_cache(maxsize=1)
def font_face_css() -> str:
    """``@font-face`` rules for the bundled fonts, as data: URIs (the PDF fetches nothing)."""
    import base64
    from importlib.resources import files

    folder = files("dataward") / "templates" / "fonts"
    rules = []
    for family, weight, name in FONT_FILES:
        data = base64.b64encode((folder / name).read_bytes()).decode("ascii")
        rules.append(f'@font-face {{ font-family: "{family}"; font-weight: {weight}; font-style: normal; '
                     f'src: url(data:font/ttf;base64,{data}) format("truetype"); }}')
    return "\n".join(rules)


def render_pdf(html: str) -> bytes:
    """The PDF of ``html``, laid out with the bundled fonts; WeasyPrint fetches nothing
    (every resource is inline)."""
    from weasyprint import CSS, HTML
    from weasyprint.text.fonts import FontConfiguration
    from weasyprint.urls import URLFetcher

    # only data: URIs: a report that would need the network or a local file fails loudly
    inline_only = URLFetcher(allowed_protocols=["data"], fail_on_errors=True)
    fonts = FontConfiguration()
    bundled = CSS(string=font_face_css(), font_config=fonts, url_fetcher=inline_only)
    return HTML(string=html, url_fetcher=inline_only).write_pdf(stylesheets=[bundled], font_config=fonts)
