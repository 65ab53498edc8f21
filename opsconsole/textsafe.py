"""Text from outside the program on a terminal: shown as typed, never obeyed.

Plan files, checklist items, reasons, flag names, metric labels and error messages can carry
escape sequences (OSC 52 writes the clipboard, OSC 0 the window title, CSI 2J clears the screen,
OSC 8 makes hyperlinks) or bidirectional overrides that make a line read differently from what it
says. `visible()` is the one place that makes such text safe to print: every control character,
DEL, C1 control and bidi control becomes a visible escape (`\\x1b`, `\\u202e`), so the terminal only
ever receives printable characters. It knows nothing of Rich markup: the console's sinks take the
result as plain text (never as markup); a plain terminal never interprets `[bold]` anyway.

No Textual or Rich import: the engine, the CLI and the console share it.
"""

from __future__ import annotations

import re
from typing import Any, TextIO

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# Line and paragraph separators and lone surrogates: invisible, or unprintable to a UTF-8 stream.
_OTHER = "\u2028\u2029\ud800-\udfff"
_UNSAFE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_BIDI}{_OTHER}]")
_UNSAFE_KEEP_LINES = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_BIDI}{_OTHER}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": " "}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(value: object, *, lines: bool = False, limit: int | None = None) -> str:
    """`value` as text a terminal shows but never acts on.

    One line by default (a newline shows as `\\n`, so it cannot forge the next row of a listing;
    a tab becomes a space). `lines=True` keeps newlines and tabs, for text that is ours to lay out
    over several lines. `limit` cuts a long text (a toast need not carry 100 kB) and says so."""
    text = value if isinstance(value, str) else str(value)
    cut = ""
    if limit is not None and len(text) > limit:
        cut = f"… ({len(text) - limit} more characters)"
        text = text[:limit]
    pattern = _UNSAFE_KEEP_LINES if lines else _UNSAFE
    return pattern.sub(_escape, text) + cut


class VisibleStream:
    """A text stream that passes everything written through `visible(..., lines=True)`: the
    command line's last line of defence, so no print of data reaches the terminal raw. JSON from
    `json.dumps` (ASCII, escaped) goes through unchanged."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(visible(text, lines=True))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding ...
        return getattr(self.inner, name)
