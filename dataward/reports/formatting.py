"""How the reports write numbers: one place, so the HTML, the charts and the sentences agree."""

from __future__ import annotations

from typing import Any


def pct(x: Any, digits: int = 0) -> str:
    """A fraction as a percentage (0.953 -> "95%", with ``digits=1`` "95.3%"); "-" for None."""
    return "-" if x is None else f"{float(x):.{digits}%}"


def num(x: Any, digits: int = 3) -> str:
    """A figure in a table: integers as they are, others to ``digits`` significant digits,
    very large or small ones in scientific notation; "-" for None, text unchanged."""
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


def tick(x: float) -> str:
    """A chart's axis label: short (three significant digits, one in scientific notation)."""
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1e4 or a < 1e-2:
        return f"{x:.1e}"
    return f"{x:.3g}"
