"""A DataTable whose cells can change without repainting the rest of the table.

The Metrics pane repaints every tick; a DataTable repaints the whole widget for any cell it updates,
this one only the cells whose text or style changed, and nothing when nothing did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

Column = tuple[str, str, int]
"""(key, label, width)"""


class LiveTable(DataTable[Any]):
    """A DataTable whose cells can change without repainting the rest of the table."""

    def set_cell(self, row_key: str, column_key: str, value: Text, *, repaint: bool = True) -> bool:
        """Replace one cell and repaint only its region; nothing at all when it looks the same.
        Whether it changed (`repaint=False`: the caller repaints, see set_row)."""
        # DataTable has no cell-scoped update (update_cell calls refresh() on the whole widget), so this
        # writes its cell store directly; _update_count invalidates its render caches as update_cell does.
        row = self._data[RowKey(row_key)]
        column = ColumnKey(column_key)
        old = row.get(column)
        if isinstance(old, Text) and same_text(old, value):
            return False
        row[column] = value
        self._update_count += 1
        if repaint:
            self.refresh_coordinate(
                Coordinate(self.get_row_index(row_key), self.get_column_index(column_key))
            )
        return True

    def set_row(self, row_key: str, cells: dict[str, Text]) -> None:
        """Replace a row's cells and repaint one region spanning the changed ones: the compositor
        writes each refreshed region of a line separately (each from the line's left edge), so two
        changed cells repainted one by one cost about twice the bytes of one span covering both."""
        changed = [c for c, value in cells.items() if self.set_cell(row_key, c, value, repaint=False)]
        if not changed:
            return
        index = self.get_row_index(row_key)
        columns = [self.get_column_index(c) for c in changed]
        first = self._get_cell_region(Coordinate(index, min(columns)))
        last = self._get_cell_region(Coordinate(index, max(columns)))
        self._refresh_region(first.union(last))

    def row_keys(self) -> list[str]:
        return [str(row.key.value) for row in self.ordered_rows]

    def column_spec(self) -> list[Column]:
        return [(str(c.key.value), str(c.label), c.width) for c in self.ordered_columns]

    def selected_key(self) -> str | None:
        if self.row_count == 0:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def sync(
        self, columns: Sequence[Column], order: Sequence[str], cells: dict[str, dict[str, Text]]
    ) -> None:
        """Make the table show `cells` (row key -> column key -> cell) in `order`, touching only what
        differs: columns changed -> rebuild; rows added, removed or reordered -> re-add the rows (the
        cursor stays on the same key); otherwise per-cell updates."""
        if self.column_spec() != list(columns):
            self.clear(columns=True)
            for key, label, width in columns:
                self.add_column(label, key=key, width=width)
        if self.row_keys() != list(order):
            selected = self.selected_key()
            self.clear()
            for key in order:
                self.add_row(*(cells[key][c] for c, _, _ in columns), key=key)
            if selected is not None and selected in order:
                self.move_cursor(row=list(order).index(selected), animate=False)
            return
        for key in order:
            self.set_row(key, {column: cells[key][column] for column, _, _ in columns})


def same_text(a: Text, b: Text) -> bool:
    """Text equality that includes the base style and justification (Text.__eq__ ignores both)."""
    return a.plain == b.plain and a.style == b.style and a.spans == b.spans and a.justify == b.justify
