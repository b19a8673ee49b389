"""Small, dependency-free SVG charts for reports (no matplotlib on these machines).

Every function returns a complete ``<svg>`` document as a string; callers embed it as a
``data:image/svg+xml;base64,...`` URI so a report stays one self-contained file that
renders the same in a browser and in WeasyPrint.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from html import escape

from dataward.reports.formatting import pct, tick

FONT = "font-family='Dataward Sans, DejaVu Sans, Helvetica, Arial, sans-serif'"
INK, GRID, MUTED = "#1f2933", "#d9dee3", "#7b8794"
CLEAN, FLAGGED, THRESHOLD = "#5b7db1", "#c0392b", "#e67e22"


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' role='img' aria-label='{escape(title, quote=True)}'>"
            f"<title>{escape(title)}</title><rect width='100%' height='100%' fill='white'/>"
            + "".join(body) + "</svg>")


def histogram(edges: Sequence[float], counts: Sequence[int], flagged_counts: Sequence[int] | None = None,
              *, threshold: float | None = None, title: str = "", x_label: str = "score",
              log_x: bool = False, width: int = 420, height: int = 220) -> str:
    """Bars of ``counts`` per bin (``len(edges) == len(counts) + 1``), flagged part in red.

    ``log_x``: the edges are already log10 values; tick labels show 10^x.
    ``threshold`` (in the same units as the edges) is drawn as a dashed line.
    """
    left, right, top, bottom = 46, 12, 26, 38
    pw, ph = width - left - right, height - top - bottom
    lo, hi = float(edges[0]), float(edges[-1])
    span = (hi - lo) or 1.0
    ymax = max(max(counts, default=0), 1)
    ylog = ymax > 50 * max(sorted(counts)[len(counts) // 2] if counts else 1, 1)

    def sx(v: float) -> float:
        return left + (v - lo) / span * pw

    def sy(c: float) -> float:
        if ylog:
            return top + ph - (math.log10(1 + c) / math.log10(1 + ymax)) * ph
        return top + ph - c / ymax * ph

    body = [f"<text x='{left}' y='16' {FONT} font-size='12' font-weight='bold' fill='{INK}'>{escape(title)}</text>"]
    for frac in (0, 0.5, 1):
        c = ymax * frac if not ylog else (10 ** (math.log10(1 + ymax) * frac) - 1)
        y = sy(c)
        body.append(f"<line x1='{left}' x2='{left + pw}' y1='{y:.1f}' y2='{y:.1f}' stroke='{GRID}'/>")
        body.append(f"<text x='{left - 4}' y='{y + 3:.1f}' {FONT} font-size='9' fill='{MUTED}' "
                    f"text-anchor='end'>{int(round(c))}</text>")
    for i, c in enumerate(counts):
        x0, x1 = sx(edges[i]), sx(edges[i + 1])
        w = max(x1 - x0 - 0.6, 0.6)
        if c:
            body.append(f"<rect x='{x0:.1f}' y='{sy(c):.1f}' width='{w:.1f}' "
                        f"height='{sy(0) - sy(c):.1f}' fill='{CLEAN}'/>")
        f = flagged_counts[i] if flagged_counts else 0
        if f:
            body.append(f"<rect x='{x0:.1f}' y='{sy(f):.1f}' width='{w:.1f}' "
                        f"height='{sy(0) - sy(f):.1f}' fill='{FLAGGED}'/>")
    body.append(f"<line x1='{left}' x2='{left + pw}' y1='{top + ph}' y2='{top + ph}' stroke='{INK}'/>")
    for frac in (0, 0.25, 0.5, 0.75, 1):
        v = lo + span * frac
        label = tick(10 ** v) if log_x else tick(v)
        body.append(f"<text x='{sx(v):.1f}' y='{top + ph + 13}' {FONT} font-size='9' fill='{MUTED}' "
                    f"text-anchor='middle'>{label}</text>")
    body.append(f"<text x='{left + pw / 2:.1f}' y='{height - 6}' {FONT} font-size='10' fill='{INK}' "
                f"text-anchor='middle'>{escape(x_label)}{' (log scale)' if log_x else ''}"
                f"{' - counts on a log scale' if ylog else ''}</text>")
    if threshold is not None and lo <= threshold <= hi:
        x = sx(threshold)
        body.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{top - 4}' y2='{top + ph}' stroke='{THRESHOLD}' "
                    f"stroke-width='2' stroke-dasharray='5,3'/>")
        anchor = "end" if x > left + pw * 0.7 else "start"
        dx = -4 if anchor == "end" else 4
        body.append(f"<text x='{x + dx:.1f}' y='{top + 8}' {FONT} font-size='9' fill='{THRESHOLD}' "
                    f"text-anchor='{anchor}'>threshold</text>")
    return _svg(width, height, body, title or "histogram")


def grouped_bars(categories: Sequence[str], series: dict[str, Sequence[int]], *, title: str = "",
                 width: int = 640, height: int = 230) -> str:
    """One group of bars per category, one bar per series (a legend names the series)."""
    palette = ["#5b7db1", "#e67e22", "#16a085", "#8e44ad", "#c0392b", "#7f8c8d"]
    left, right, top, bottom = 40, 10, 42, 28
    pw, ph = width - left - right, height - top - bottom
    names = list(series)
    ymax = max([max(v, default=0) for v in series.values()] + [1])
    n = max(len(categories), 1)
    gw = pw / n
    bw = max(gw * 0.8 / max(len(names), 1), 1.0)
    body = [f"<text x='{left}' y='14' {FONT} font-size='12' font-weight='bold' fill='{INK}'>{escape(title)}</text>"]
    lx = left
    for k, name in enumerate(names):
        color = palette[k % len(palette)]
        body.append(f"<rect x='{lx}' y='22' width='10' height='10' fill='{color}'/>")
        body.append(f"<text x='{lx + 13}' y='31' {FONT} font-size='10' fill='{INK}'>{escape(name)}</text>")
        lx += 20 + 6.2 * len(name)
    for frac in (0, 0.5, 1):
        y = top + ph - frac * ph
        body.append(f"<line x1='{left}' x2='{left + pw}' y1='{y:.1f}' y2='{y:.1f}' stroke='{GRID}'/>")
        body.append(f"<text x='{left - 4}' y='{y + 3:.1f}' {FONT} font-size='9' fill='{MUTED}' "
                    f"text-anchor='end'>{int(round(ymax * frac))}</text>")
    for i, cat in enumerate(categories):
        gx = left + i * gw + gw * 0.1
        for k, name in enumerate(names):
            v = series[name][i]
            h = v / ymax * ph
            if v:
                body.append(f"<rect x='{gx + k * bw:.1f}' y='{top + ph - h:.1f}' width='{bw - 0.5:.1f}' "
                            f"height='{h:.1f}' fill='{palette[k % len(palette)]}'/>")
        body.append(f"<text x='{left + i * gw + gw / 2:.1f}' y='{top + ph + 13}' {FONT} font-size='10' "
                    f"fill='{INK}' text-anchor='middle'>{escape(str(cat))}</text>")
    body.append(f"<line x1='{left}' x2='{left + pw}' y1='{top + ph}' y2='{top + ph}' stroke='{INK}'/>")
    return _svg(width, height, body, title or "bar chart")


def scatter(points: Sequence[tuple[float, float, bool]], *, title: str = "", width: int = 460,
            height: int = 360) -> str:
    """2-D points, flagged ones in red and drawn last (on top)."""
    pad, top = 14, 30
    pw, ph = width - 2 * pad, height - top - pad - 16
    body = [f"<text x='{pad}' y='16' {FONT} font-size='12' font-weight='bold' fill='{INK}'>{escape(title)}</text>"]
    if points:
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        sxp, syp = (x1 - x0) or 1.0, (y1 - y0) or 1.0
        body.append(f"<rect x='{pad}' y='{top}' width='{pw}' height='{ph}' fill='none' stroke='{GRID}'/>")
        for flagged_pass in (False, True):
            color, r = (FLAGGED, 2.6) if flagged_pass else (CLEAN, 1.8)
            opacity = "0.9" if flagged_pass else "0.45"
            for x, y, f in points:
                if bool(f) == flagged_pass:
                    cx = pad + 4 + (x - x0) / sxp * (pw - 8)
                    cy = top + ph - 4 - (y - y0) / syp * (ph - 8)
                    body.append(f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='{r}' fill='{color}' "
                                f"fill-opacity='{opacity}'/>")
    ly = height - 8
    body.append(f"<circle cx='{pad + 5}' cy='{ly - 3}' r='3' fill='{CLEAN}'/>"
                f"<text x='{pad + 12}' y='{ly}' {FONT} font-size='10' fill='{INK}'>not flagged</text>"
                f"<circle cx='{pad + 95}' cy='{ly - 3}' r='3' fill='{FLAGGED}'/>"
                f"<text x='{pad + 102}' y='{ly}' {FONT} font-size='10' fill='{INK}'>flagged</text>")
    return _svg(width, height, body, title or "projection")


def hbars(labels: Sequence[str], values: Sequence[float | None], *, title: str = "",
          max_value: float | None = None, percent: bool = False,
          markers: Sequence[tuple[float, str]] = (), colors: Sequence[str] | None = None,
          width: int = 460, bar_height: int = 18) -> str:
    """One horizontal bar per label (a missing value draws no bar and reads "n/a").

    ``percent``: values are fractions in 0..1, labelled as percentages, axis 0..100%.
    ``markers``: ``(value, name)`` dashed vertical lines (a policy floor, a PSI band).
    ``colors``: one colour per bar (default: all blue).
    """
    left = max(60, min(200, 7 * max((len(str(x)) for x in labels), default=4) + 10))
    right, top, bottom = 46, 36, 22
    n = max(len(labels), 1)
    height = top + bottom + n * (bar_height + 6)
    pw = width - left - right
    finite = [float(v) for v in values if v is not None]
    vmax = max_value if max_value is not None else (1.0 if percent else max(finite + [1.0]))
    vmax = max(vmax, max([m for m, _ in markers] + [0.0]), 1e-12)

    def sx(v: float) -> float:
        return left + max(min(v / vmax, 1.0), 0.0) * pw

    body = [f"<text x='4' y='16' {FONT} font-size='12' font-weight='bold' fill='{INK}'>{escape(title)}</text>"]
    for frac in (0, 0.5, 1):
        x = left + frac * pw
        label = pct(frac * vmax) if percent else tick(frac * vmax)
        body.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{top - 2}' y2='{height - bottom}' stroke='{GRID}'/>")
        body.append(f"<text x='{x:.1f}' y='{height - 8}' {FONT} font-size='9' fill='{MUTED}' "
                    f"text-anchor='middle'>{label}</text>")
    for i, (name, v) in enumerate(zip(labels, values)):
        y = top + i * (bar_height + 6)
        body.append(f"<text x='{left - 6}' y='{y + bar_height * 0.7:.1f}' {FONT} font-size='10' fill='{INK}' "
                    f"text-anchor='end'>{escape(str(name))}</text>")
        if v is None:
            body.append(f"<text x='{left + 4}' y='{y + bar_height * 0.7:.1f}' {FONT} font-size='10' "
                        f"fill='{MUTED}'>n/a</text>")
            continue
        color = (colors[i] if colors and i < len(colors) else None) or CLEAN
        w = sx(float(v)) - left
        if w > 0:
            body.append(f"<rect x='{left}' y='{y}' width='{w:.1f}' height='{bar_height}' fill='{color}'/>")
        text = pct(v) if percent else tick(float(v))
        body.append(f"<text x='{left + w + 4:.1f}' y='{y + bar_height * 0.7:.1f}' {FONT} font-size='10' "
                    f"fill='{INK}'>{text}</text>")
    for value, name in markers:
        x = sx(value)
        body.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{top - 6}' y2='{height - bottom}' stroke='{THRESHOLD}' "
                    f"stroke-width='2' stroke-dasharray='5,3'/>")
        body.append(f"<text x='{x - 3:.1f}' y='{top - 9}' {FONT} font-size='9' fill='{THRESHOLD}' "
                    f"text-anchor='end'>{escape(name)}</text>")
    return _svg(width, height, body, title or "bar chart")
