"""What the list panes share about reading: only while shown, one read at a time, a keyed diff.

A pane that shows a keyed list (backups, improvements, flags) re-reads it when the engine says
something changed. `ShownReload` gives it the rules every such pane follows:

- a hidden pane only remembers that something changed and reads when it is shown again;
- one read at a time: a burst of events during a read costs one more read, not one per event
  (`_read_begins` / `_read_ends`).

`diff_keyed` (run in the read's thread) and `merge_keyed` (on the event loop) keep the per-read work
to the rows that changed: the pane repaints only those.

No engine, no textual import here: the pane brings `reload` and the widget it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, TypeVar


class Keyed(Protocol):
    """A row's value: anything with a string id, compared by value (a dataclass)."""

    @property
    def id(self) -> str: ...


K = TypeVar("K", bound=Keyed)


class ShownReload:
    """Mixin for a pane widget: reads when shown, one read at a time. The pane defines `reload()`."""

    _shown = False
    _reload_on_show = False
    _loading = False
    _again = False

    def reload(self) -> None:
        raise NotImplementedError

    def _changed(self) -> None:
        # A hidden pane only remembers; it reads when shown (on_show).
        if self._shown:
            self.reload()
        else:
            self._reload_on_show = True

    def on_show(self) -> None:
        self._shown = True
        if self._reload_on_show:
            self._reload_on_show = False
            self.reload()

    def on_hide(self) -> None:
        self._shown = False

    def _read_begins(self) -> bool:
        """Whether a read may start now; if one is under way, another is owed after it."""
        if self._loading:
            self._again = True
            return False
        self._loading = True
        return True

    def _read_ends(self) -> bool:
        """The read under way ended (done or failed): whether another is owed."""
        self._loading = False
        again, self._again = self._again, False
        return again


def diff_keyed(items: Iterable[K], before: Mapping[str, K]) -> tuple[list[str], set[str]]:
    """The ids of `items` in order, and those new or changed against `before` (off the event loop)."""
    order: list[str] = []
    changed: set[str] = set()
    for item in items:
        order.append(item.id)
        if before.get(item.id) != item:
            changed.add(item.id)
    return order, changed


def merge_keyed(shown: dict[str, K], items: list[K], order: list[str], changed: set[str]) -> set[str] | None:
    """Bring `shown` in line with a read: drop the ids gone, take the changed items. None when the
    read changed nothing (same count, nothing changed); else the ids dropped."""
    if len(shown) == len(items) and not changed:
        return None
    gone = shown.keys() - set(order)
    for key in gone:
        del shown[key]
    for item in items:
        if item.id in changed:
            shown[item.id] = item
    return gone
