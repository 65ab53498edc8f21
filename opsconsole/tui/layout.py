"""The five panes, built once the engine is open (imported off the event loop, see app.py)."""

from __future__ import annotations

from textual.lazy import Lazy
from textual.widget import Widget
from textual.widgets import TabbedContent, TabPane

from .keys import PANE_TITLES
from .panes.backups import BackupsPane
from .panes.flags import FlagsPane
from .panes.improvements import ImprovementsPane
from .panes.metrics import MetricsPane
from .panes.rollouts import RolloutsPane

_CLASSES = {
    "rollouts": RolloutsPane,
    "metrics": MetricsPane,
    "flags": FlagsPane,
    "improvements": ImprovementsPane,
    "backups": BackupsPane,
}
PANES = tuple(
    (pane_id, f"{number} {title}", _CLASSES[pane_id])
    for number, (pane_id, title) in enumerate(PANE_TITLES.items(), start=1)
)


def build_panes() -> tuple[TabbedContent, dict[str, Widget]]:
    """The tabbed panes and the pane widgets by id. Only the first pane is in the frame that shows
    them; the others mount right after it (Lazy)."""
    panes: dict[str, Widget] = {pane_id: cls(id=pane_id) for pane_id, _title, cls in PANES}
    tabbed = TabbedContent(id="panes")
    for index, (pane_id, title, _cls) in enumerate(PANES):
        # What `with TabbedContent(): with TabPane(...)` does inside a compose method.
        tabbed.compose_add_child(
            TabPane(title, panes[pane_id] if index == 0 else Lazy(panes[pane_id]), id=f"tab-{pane_id}")
        )
    return tabbed, panes
