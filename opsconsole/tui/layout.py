"""The five panes.

With an engine already open (tests, the demo) every pane is built at once (`build_panes`). When the
console opens its own engine, its first frame holds a Rollouts pane under a light tab strip
(`FirstTabs`: one widget drawing what Textual's tabs draw there, for a fraction of their cost to
build and lay out); right after that frame the app swaps them, in one repaint, for the real tabbed
panes with a Rollouts pane of their own (`first_panes`), which shows the same rows. The other panes'
modules load off the event loop after the frame that shows the engine's rollouts
(`later_pane_classes`) and mount into their tabs, empty until then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from rich.console import Group
from rich.style import Style
from rich.text import Text
from textual.renderables.bar import Bar
from textual.widget import Widget

from .keys import PANE_TITLES
from .panes.rollouts import RolloutsPane

if TYPE_CHECKING:
    from rich.console import RenderableType
    from textual.widgets import TabbedContent

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


FIRST_TAB_SPAN = (1, 1 + len(PANES[0][1]))
"""The columns of the first tab's label (after Tab's padding): where the tabs' underline is lit."""


class FirstTabs(Widget):
    """The tab strip of the first frame, Rollouts active and the tabs not focused: the labels as
    Textual's Tab draws them (padding 0 1) and, under them, the Underline's bar with the active
    tab's span highlighted. The same component styles as Tab and Underline, so the swap to the real
    tabs changes no cell (tests/tui/test_first_look.py compares the two frames)."""

    DEFAULT_CSS = """
    FirstTabs {
        width: 100%;
        height: 2;
        & > .first-tabs--tab { color: $foreground 50%; }
        & > .first-tabs--active { color: $foreground; }
        & > .first-tabs--bar { color: $block-cursor-background; background: $foreground 10%; }
        &:ansi {
            & > .first-tabs--tab { text-style: dim; }
            & > .first-tabs--active { text-style: not dim bold; }
            & > .first-tabs--bar { color: $block-cursor-background; background: $border-blurred; }
        }
    }
    """
    COMPONENT_CLASSES = {"first-tabs--tab", "first-tabs--active", "first-tabs--bar"}

    def render(self) -> RenderableType:
        tab = self.get_component_rich_style("first-tabs--tab")
        active = self.get_component_rich_style("first-tabs--active")
        bar = self.get_component_rich_style("first-tabs--bar")
        labels = Text(no_wrap=True, overflow="crop")
        for index, (_pane_id, title, _where) in enumerate(PANES):
            labels.append(" ")  # Tab's padding: the widget's own style, not the label's
            labels.append(title, style=active if index == 0 else tab)
            labels.append(" ")
        return Group(
            labels,
            Bar(
                highlight_range=FIRST_TAB_SPAN,
                highlight_style=Style.from_color(bar.color),
                background_style=Style.from_color(bar.bgcolor),
            ),
        )


def build_panes() -> tuple[TabbedContent, dict[str, Widget]]:
    """The tabbed panes and the pane widgets by id. Only the first pane is in the frame that shows
    them; the others mount right after it (Lazy)."""
    from textual.lazy import Lazy
    from textual.widgets import TabbedContent, TabPane

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
    from textual.widgets import TabbedContent, TabPane

    rollouts = RolloutsPane(id="rollouts")
    tabbed = TabbedContent(id="panes")
    for pane_id, title, _where in PANES:
        children = (rollouts,) if pane_id == "rollouts" else ()
        tabbed.compose_add_child(TabPane(title, *children, id=f"tab-{pane_id}"))
    return tabbed, rollouts


def later_pane_classes() -> dict[str, type[Widget]]:
    """The classes of the panes after the first (importing their modules: call it off the event loop)."""
    return {pane_id: pane_class(pane_id) for pane_id, _title, _where in PANES[1:]}
