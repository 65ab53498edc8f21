"""The footer: the keys that work here, as one line of text.

Textual's Footer builds a widget per key and rebuilds them all on every focus change (70-90 ms with
the Flags pane's 10,000 rows in the heap, and in Textual 8.2.8 the old key widgets are kept alive,
Textualize/textual#6666). This bar renders the same active bindings into one Text in well under a
millisecond. It also puts the kill switch first, so 80 columns never cut it off.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

FIRST = ("kill_switch",)
LAST = ("help", "quit")


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: 1; background: $panel; color: $foreground; }
    """

    _shown: tuple[object, ...] | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._changed)
        self.call_after_refresh(self._changed, self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _changed(self, screen: Any) -> None:
        if self.is_attached and screen is self.screen:
            line = render_keys(self.app, screen.active_bindings.values())
            # The signal fires on every focus change and binding refresh, mostly with the same keys:
            # an unchanged bar writes nothing to the terminal.
            key = (line.plain, tuple(line.spans))
            if key != self._shown:
                self._shown = key
                self.update(line)


def render_keys(app: Any, active: Any) -> Text:
    seen: set[str] = set()
    keys = []
    for _node, binding, enabled, _tooltip in active:
        if not binding.show or binding.action in seen:
            continue
        seen.add(binding.action)
        keys.append((binding, enabled))
    order = {a: i for i, a in enumerate(FIRST)}
    last = {a: i for i, a in enumerate(LAST)}
    keys.sort(key=lambda kb: 0 if kb[0].action in order else 2 if kb[0].action in last else 1)
    line = Text(no_wrap=True, overflow="ellipsis")
    for binding, enabled in keys:
        style = "" if enabled else "dim"
        line.append(f" {app.get_key_display(binding)} ", style=f"bold {style}".strip())
        line.append(f"{binding.description} ", style=style)
    return line
