"""Remote text on screen: never markup, never terminal control codes.

Names from config, alarm reasons, metric labels and anything an agent sends are shown as typed:
`[bold]` stays the six characters it is, and an escape sequence shows as a visible `\\x1b[...` rather
than reaching the terminal. Everything a pane shows that did not come from our own code goes
through `safe()` (or `plain()` for a ready Text); toasts go through the app's `notify`, which does
the same. The escaping itself is `opsconsole.textsafe.visible`, shared with the command line.
"""

from __future__ import annotations

from rich.text import Text

from opsconsole.textsafe import visible


def safe(value: object) -> str:
    """Printable text on one line: controls and bidi overrides become visible escapes."""
    return visible(value)


def plain(value: object, style: str = "", wrap: bool = False) -> Text:
    """A Text that Rich will not parse as markup (a plain `str` given to a Static or an Option would
    be). Cells stay on one line; dialog text may wrap."""
    return Text(safe(value), style=style, no_wrap=not wrap, overflow="fold" if wrap else "ellipsis")
