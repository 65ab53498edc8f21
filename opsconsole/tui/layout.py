"""The five panes.

With an engine already open (tests, the demo) every pane is built at once (`build_panes`). When the
console opens its own engine, only the Rollouts pane is in the first frames (`first_panes`): it is
composed with the app, so its widgets' CSS is parsed once, before Textual's first paint, and its
rows come with the engine. The other panes' modules load off the event loop after the frame that
shows the rollouts (`later_pane_classes`) and mount into their tabs, empty until then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from textual.lazy import Lazy
from textual.widgets import TabbedContent, TabPane

from .keys import PANE_TITLES
from .panes.rollouts import RolloutsPane

if TYPE_CHECKING:
    from textual.widget import Widget

_WHERE = {
    "rollouts": "rollouts:RolloutsPane",
    "metrics": "metrics:MetricsPane",
    "flags": "flags:FlagsPane",
    "improvements": "improvements:ImprovementsPane",
    "backups": "backups:BackupsPane",
}
"""Pane id -> module:class in opsconsole.tui.panes."""
PANES = tuple(
    (pane_id, f"{number} {title}", _WHERE[pane_id])
    for number, (pane_id, title) in enumerate(PANE_TITLES.items(), start=1)
)


def pane_class(pane_id: str) -> type[Widget]:
    """The pane's class (importing its module)."""
    module, name = _WHERE[pane_id].split(":")
    cls: type[Widget] = getattr(importlib.import_module(f"{__package__}.panes.{module}"), name)
    return cls


def build_panes() -> tuple[TabbedContent, dict[str, Widget]]:
    """The tabbed panes and the pane widgets by id. Only the first pane is in the frame that shows
    them; the others mount right after it (Lazy)."""
    panes: dict[str, Widget] = {pane_id: pane_class(pane_id)(id=pane_id) for pane_id, _title, _where in PANES}
    tabbed = TabbedContent(id="panes")
    for index, (pane_id, title, _where) in enumerate(PANES):
        # What `with TabbedContent(): with TabPane(...)` does inside a compose method.
        tabbed.compose_add_child(
            TabPane(title, panes[pane_id] if index == 0 else Lazy(panes[pane_id]), id=f"tab-{pane_id}")
        )
    return tabbed, panes


def first_panes() -> tuple[TabbedContent, RolloutsPane]:
    """The tabbed panes with only the Rollouts pane in its tab; the other tabs start empty."""
    rollouts = RolloutsPane(id="rollouts")
    tabbed = TabbedContent(id="panes")
    for pane_id, title, _where in PANES:
        children = (rollouts,) if pane_id == "rollouts" else ()
        tabbed.compose_add_child(TabPane(title, *children, id=f"tab-{pane_id}"))
    return tabbed, rollouts


def later_pane_classes() -> dict[str, type[Widget]]:
    """The classes of the panes after the first (importing their modules: call it off the event loop)."""
    return {pane_id: pane_class(pane_id) for pane_id, _title, _where in PANES[1:]}
