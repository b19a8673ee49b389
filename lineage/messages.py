"""Text from a file, made safe to put in a one-line error message.

A column name, a file name or a parser's complaint can carry bytes from the file itself:
control characters, a NUL, a newline (which would split the one-line refusal), a
right-to-left override, undecodable bytes, or a megabyte of one cell. :func:`printable`
escapes everything that is not printable and cuts long values short.
"""

from __future__ import annotations

LIMIT = 120


def printable(value: object, limit: int = LIMIT) -> str:
    """``value`` as text with non-printable characters escaped, at most ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    out: list[str] = []
    length = 0
    for ch in text:
        if ch.isprintable():
            piece = ch
        else:
            code = ord(ch)
            piece = f"\\x{code:02x}" if code < 0x100 else (
                f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        if length + len(piece) > limit:
            out.append("...")
            break
        out.append(piece)
        length += len(piece)
    return "".join(out)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, made printable and cut short."""
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return printable(lines[0].strip(), limit) if lines else type(exc).__name__


def names(values, *, most: int = 8) -> str:
    """A short, printable, comma-separated list of (column or file) names."""
    values = list(values)
    shown = ", ".join(printable(v, 40) for v in values[:most])
    return shown + (f", ... ({len(values)} in all)" if len(values) > most else "")
