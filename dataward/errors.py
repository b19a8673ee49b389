"""The app layer's error vocabulary and its mapping to exit codes.

Exit codes (ARCHITECTURE.md): 0 success, 1 the data was judged (quarantined or
rejected), 2 bad input or usage; 3 marks an internal error (a bug), never bad input.
"""

from __future__ import annotations

EXIT_OK, EXIT_JUDGED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class DatawardError(Exception):
    exit_code = EXIT_BAD_INPUT


class BadInput(DatawardError):
    """Input that cannot be processed: one readable sentence, nothing written."""


def bad_input_types() -> tuple[type[BaseException], ...]:
    """Exception types from the lower layers that mean 'bad input' (exit 2)."""
    from lineage.errors import LineageInputError, NotFound

    types: list[type[BaseException]] = [BadInput, LineageInputError, NotFound]
    try:
        from screening import ScreeningInputError

        types.append(ScreeningInputError)
    except ImportError:  # pragma: no cover - screening is part of this distribution
        pass
    try:
        from checks.validation import SuiteNotFound, ValidationInputError

        types += [ValidationInputError, SuiteNotFound]
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def one_line(message: str, limit: int = 400) -> str:
    """``message`` fit for one line of a terminal: line breaks become spaces, control and
    other unprintable characters (raw bytes read from a file) become ``\\xNN`` escapes,
    and a long message is cut short with an ellipsis."""
    text = " ".join(str(message).split("\n"))
    out = []
    for ch in text:
        if ch == "\t" or ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}")
    text = "".join(out).strip()
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."
