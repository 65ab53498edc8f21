"""Remote text on screen: never markup, never terminal control codes.

Names from config, alarm reasons, metric labels and anything an agent sends are shown as typed:
`[bold]` stays the six characters it is, and an escape sequence shows as a visible `\\x1b[...` rather
than reaching the terminal. Everything a pane shows that did not come from our own code goes
through `safe()` (or `plain()` for a ready Text).
"""

from __future__ import annotations

import re

from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(value: object) -> str:
    """Printable text: control characters become visible escapes; newlines and tabs become spaces."""
    text = str(value).replace("\n", " ").replace("\t", " ")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def plain(value: object, style: str = "", wrap: bool = False) -> Text:
    """A Text that Rich will not parse as markup (a plain `str` given to a Static or an Option would
    be). Cells stay on one line; dialog text may wrap."""
    return Text(safe(value), style=style, no_wrap=not wrap, overflow="fold" if wrap else "ellipsis")
