"""A keyed table that always fits its width and repaints only the cells that changed.

A table wider than its widget gets a horizontal scrollbar, and Textual repaints that scrollbar's row
as a run of per-cell escape sequences with every refresh of the table: at 80 columns that was most
of what the console wrote while a rollout simply waited. Here every column has a width between its
least and most, the flexible column takes what the others leave, and a longer cell ends in an
ellipsis (its full text is in the detail view). A changed cell repaints its own region only, and
an unchanged one nothing (DataTable.update_cell repaints the whole widget).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from rich.text import Text
from textual import events
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey


class FitColumn(NamedTuple):
    key: str
    label: str
    least: int
    most: int
    """The flexible column's `most` is ignored: it takes whatever width is left."""


PADDING = 2
"""DataTable puts one cell of padding on each side of every column."""
SCROLLBAR = 2
"""Room kept for the vertical scrollbar, so it appearing never makes the table overflow sideways."""


def fit_widths(width: int, columns: Sequence[FitColumn], flex: str, longest: Mapping[str, int]) -> list[int]:
    """Each column's width for a table `width` cells wide: its content's length within least..most,
    the flexible column the rest (at least its `least`); fixed columns shrink towards their least,
    widest first, when even that does not fit."""
    sizes = {
        c.key: c.least if c.key == flex else max(c.least, min(c.most, longest.get(c.key, 0))) for c in columns
    }
    room = width - PADDING * len(columns) - SCROLLBAR
    over = sum(sizes.values()) - room
    while over > 0:
        shrinkable = [c for c in columns if c.key != flex and sizes[c.key] > c.least]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda c: sizes[c.key] - c.least)
        sizes[widest.key] -= 1
        over -= 1
    sizes[flex] = max(
        next(c.least for c in columns if c.key == flex), room - sum(v for k, v in sizes.items() if k != flex)
    )
    return [sizes[c.key] for c in columns]


def same_text(a: Any, b: Any) -> bool:
    """Text equality that includes the base style and justification (Text.__eq__ ignores both)."""
    if not (isinstance(a, Text) and isinstance(b, Text)):
        return bool(a == b)
    return a.plain == b.plain and a.style == b.style and a.spans == b.spans and a.justify == b.justify


class FittedTable(DataTable[Any]):
    def __init__(self, columns: Sequence[FitColumn], flex: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fit_columns = list(columns)
        self.flex = flex
        for c in self.fit_columns:
            self.add_column(c.label, key=c.key, width=c.least)

    def on_resize(self, event: events.Resize) -> None:
        self.fit()

    def fit(self, width: int | None = None) -> bool:
        """Set the column widths for the current width (or `width`, the one the table is about to
        have: its first layout then paints it fitted) and content; nothing when they are right.
        True when they changed (the whole table is repainted)."""
        width = width or self.size.width
        if not self.fit_columns or not width:
            return False
        longest: dict[str, int] = {}
        for c in self.fit_columns:
            key = ColumnKey(c.key)
            values = (row.get(key) for row in self._data.values())
            longest[c.key] = max([len(c.label), *(_length(v) for v in values)])
        widths = fit_widths(width, self.fit_columns, self.flex, longest)
        changed = False
        for c, width in zip(self.fit_columns, widths, strict=True):
            column = self.columns.get(ColumnKey(c.key))
            if column is not None and column.width != width:
                column.width = width
                column.auto_width = False
                changed = True
        if changed:
            self._update_count += 1  # the render caches are keyed by it
            self._require_update_dimensions = True
            self.refresh()
        return changed

    def set_row(self, key: str, cells: Mapping[str, Any]) -> None:
        """Add the row, or change only the cells of it that differ: one cell changed repaints that
        cell, several repaint the row once (Textual writes a line from its left edge anyway)."""
        if key not in self.rows:
            self.add_row(*(cells[c.key] for c in self.fit_columns), key=key)
            if any(self._too_long(c.key, cells[c.key]) for c in self.fit_columns):
                self.fit()
            return
        row = self._data[RowKey(key)]
        changed = [c.key for c in self.fit_columns if not same_text(row.get(ColumnKey(c.key)), cells[c.key])]
        if not changed:
            return
        old = {column: row.get(ColumnKey(column)) for column in changed}
        for column in changed:
            row[ColumnKey(column)] = cells[column]
        # A change past the ellipsis (a countdown at the end of a cut reason) looks the same: keep
        # the cached rendering, which is what the terminal already shows.
        changed = [c for c in changed if not same_text(self._shown(c, old[c]), self._shown(c, cells[c]))]
        if not changed:
            return
        self._update_count += 1  # the render caches are keyed by it
        if any(self._too_long(column, cells[column]) for column in changed) and self.fit():
            return
        if len(changed) == 1:
            self.refresh_coordinate(Coordinate(self.get_row_index(key), self.get_column_index(changed[0])))
        else:
            self.refresh_row(self.get_row_index(key))

    def _shown(self, column_key: str, value: Any) -> Any:
        """What a cell shows in its column: cut to the width, with the ellipsis."""
        if not isinstance(value, Text):
            return value
        width = self.columns[ColumnKey(column_key)].width
        if value.cell_len <= width:
            return value
        shown = value.copy()
        shown.truncate(width, overflow="ellipsis")
        return shown

    def _too_long(self, column_key: str, value: Any) -> bool:
        return column_key != self.flex and _length(value) > self.columns[ColumnKey(column_key)].width

    def drop_row(self, key: str) -> None:
        self.remove_row(key)
        self.fit()


def _length(value: Any) -> int:
    return value.cell_len if isinstance(value, Text) else len(str(value))
