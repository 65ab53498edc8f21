"""A table of keyed rows drawn on demand: the cost of a repaint is the rows on screen, not the rows held.

Textual's DataTable measures every cell of every row it holds, which costs about 1.7 s to (re)fill
10,000 rows; this one keeps only the ordered keys and asks its owner for a row's cells when that row is
drawn. Used by the Flags pane (10,000 flags must filter as you type).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

Column = tuple[str, str, int]
"""(key, label, width in cells)."""
Cell = tuple[str, str]
"""(text, style name): the style name is a KeyedTable component class suffix, or ""."""


def _fit(text: str, width: int) -> str:
    """Exactly `width` cells: padded, or cut with an ellipsis."""
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return text + " " * (width - cell_len(text))
    return set_cell_size(text, width - 1) + "…"


class KeyedTable(ScrollView, can_focus=True):
    """Rows keyed by name, drawn on demand: cost per repaint is the rows on screen, not the rows held.

    The owner supplies `layout(width) -> columns`, `cells(key) -> {column: (text, style)}` and
    `highlighted(key)`, called when the row under the cursor changes; the table keeps only the ordered
    keys in view and the cursor. A "mark" cell, if given, is drawn in the one-cell margin before the
    first column.
    """

    COMPONENT_CLASSES = {
        "keyed-table--header",
        "keyed-table--cursor",
        "keyed-table--high",
        "keyed-table--medium",
        "keyed-table--muted",
        "keyed-table--on",
        "keyed-table--off",
        "keyed-table--override",
        "keyed-table--kill",
        "keyed-table--warn",
        "keyed-table--stale",
    }
    DEFAULT_CSS = """
    KeyedTable {
        height: 1fr;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
        background: $surface;
        & > .keyed-table--header { text-style: bold; background: $panel; }
        & > .keyed-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .keyed-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .keyed-table--high { color: $error; text-style: bold; }
        & > .keyed-table--medium { color: $warning; }
        & > .keyed-table--muted { color: $text-muted; }
        & > .keyed-table--on { color: $success; text-style: bold; }
        & > .keyed-table--off { color: $text-muted; }
        & > .keyed-table--override { color: $warning; text-style: bold; }
        & > .keyed-table--kill { color: $error; text-style: bold reverse; }
        & > .keyed-table--warn { color: $warning; text-style: italic; }
        & > .keyed-table--stale { color: $warning; text-style: bold; }
    }
    """
    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "move_to(0)", "First", show=False),
        Binding("end", "move_to(-1)", "Last", show=False),
    ]

    def __init__(
        self,
        layout: Callable[[int], Sequence[Column]],
        cells: Callable[[str], dict[str, Cell]],
        highlighted: Callable[[str | None], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._layout = layout
        self._cells = cells
        # Called directly rather than by message: a message would paint the detail one frame later.
        self._highlighted_cb = highlighted
        self.keys: list[str] = []
        self.cursor = 0
        self.empty_text = "loading…"
        self._columns: Sequence[Column] = ()
        self._columns_width = -1
        self._highlighted: str | None = None

    # ------------------------------------------------------------------------------------ data

    @property
    def selected(self) -> str | None:
        return self.keys[self.cursor] if self.keys else None

    def show_keys(self, keys: list[str]) -> None:
        """Show these rows in this order; the cursor stays on the same key when it is still there."""
        keep = self.selected
        self.keys = keys
        if keep is not None and keys and (self.cursor >= len(keys) or keys[self.cursor] != keep):
            try:
                self.cursor = keys.index(keep)
            except ValueError:
                self.cursor = min(self.cursor, len(keys) - 1)
        self.cursor = max(0, min(self.cursor, len(keys) - 1))
        self.virtual_size = Size(self.scrollable_content_region.width, len(keys) + 1)
        self._scroll_to_cursor()
        self.refresh()
        self.announce()

    def refresh_keys(self, changed: set[str]) -> None:
        """Repaint if any of these rows is on screen (a changed row off screen costs nothing)."""
        top = int(self.scroll_y)
        for row, key in enumerate(self.keys[top : top + self.scrollable_content_region.height], start=top):
            if key in changed:
                # Only that line: refresh() would repaint the scrollbar too, a run of per-cell
                # escapes down the whole height, on every tick that touches a row on screen.
                self.refresh_lines(row + 1)  # virtual line = row + 1 (the header)
        if self.selected in changed:
            self.announce(force=True)

    # ------------------------------------------------------------------------------------ cursor

    def action_cursor(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self.move_to(self.cursor + direction * max(1, self.scrollable_content_region.height - 2))

    def action_move_to(self, index: int) -> None:
        """Row `index`; negative counts from the end."""
        self.move_to(index if index >= 0 else len(self.keys) + index)

    def move_to(self, index: int) -> None:
        if not self.keys:
            return
        index = max(0, min(index, len(self.keys) - 1))
        if index != self.cursor:
            old, self.cursor = self.cursor, index
            self.refresh_lines(old + 1)  # virtual line = row + 1 (the header); a scroll repaints all
            self.refresh_lines(index + 1)
        self._scroll_to_cursor()
        self.announce()

    def _scroll_to_cursor(self) -> None:
        rows = max(1, self.scrollable_content_region.height - 1)  # minus the header line
        top = int(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + rows:
            self.scroll_to(y=self.cursor - rows + 1, animate=False, immediate=True)

    def announce(self, force: bool = False) -> None:
        if force or self.selected != self._highlighted:
            self._highlighted = self.selected
            self._highlighted_cb(self.selected)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and offset.y >= 1:
            self.move_to(int(self.scroll_y) + offset.y - 1)

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.keys) + 1)
        self._scroll_to_cursor()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # ------------------------------------------------------------------------------------ drawing

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"keyed-table--{name}", partial=True)

    def relayout(self) -> None:
        """Ask the owner for the columns again (what they hold changed width), and repaint."""
        self._columns_width = -1
        self.refresh()

    def columns(self, width: int) -> Sequence[Column]:
        if width != self._columns_width:
            self._columns = self._layout(width)
            self._columns_width = width
        return self._columns

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        columns = self.columns(width)
        if y == 0:
            style = base + self._style("header")
            return self._strip([(label, "") for _, label, _ in columns], columns, style, width)
        index = int(self.scroll_y) + y - 1
        if index >= len(self.keys):
            if index == 0:
                return Strip([Segment(_fit(" " + self.empty_text, width), base + self._style("muted"))])
            return Strip.blank(width, base)
        cells = self._cells(self.keys[index])
        row = [cells.get(key, ("", "")) for key, _, _ in columns]
        mark = cells.get("mark", (" ", ""))
        if index == self.cursor:
            style = base + self._style("cursor")
            return self._strip([(text, "") for text, _ in row], columns, style, width, (mark[0], ""))
        return self._strip(row, columns, base, width, mark)

    def _strip(
        self, row: list[Cell], columns: Sequence[Column], base: Style, width: int, mark: Cell = (" ", "")
    ) -> Strip:
        text, name = mark
        segments = [Segment(_fit(text, 1), base + self._style(name) if name else base)]
        for (text, name), (_, _, cells) in zip(row, columns, strict=True):
            segments.append(Segment(_fit(text, cells), base + self._style(name) if name else base))
            segments.append(Segment(" ", base))
        return Strip(segments).crop_extend(0, width, base)
