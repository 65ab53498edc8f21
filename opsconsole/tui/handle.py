"""The one typed way from a pane or a screen to the console app and its engine.

Panes and screens do not know the app class (that would import every pane into every screen); they
know this Protocol. `self.ops` (from `ConsoleAccess`) is the running app seen through it, so
`self.ops.engine` is typed and a new pane needs no `type: ignore` to reach the engine. Commands
go through `run_engine`, which has the console's one error policy (calls.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from textual.widget import Widget

    from opsconsole.engine import Engine, Session


class ConsoleHandle(Protocol):
    """What panes and screens may use of the console app (OpsConsoleApp implements it)."""

    environment: str
    """The environment the console watches (header, flags pane)."""
    kill_engaged: bool
    """What the header last showed of the kill switch (reading the store would block the loop)."""
    panes: dict[str, Widget]
    """The panes by id, once the engine is open."""

    @property
    def opened(self) -> bool:
        """Whether the engine is open; before that only the kill key works."""

    @property
    def engine(self) -> Engine:
        """The open engine (panes and screens exist only once it is open)."""

    @property
    def session(self) -> Session: ...

    def run_engine(
        self, fn: Callable[..., object], *args: object, action: str = "", done: str = "", **kwargs: Any
    ) -> None:
        """Run an engine command off the event loop; say what happened either way."""

    def refresh_status(self) -> None:
        """Read the kill switch state and the engine's health into the header."""

    def action_show_pane(self, pane_id: str) -> None:
        """Bring a pane to the front and focus it."""


def ops_of(app: object) -> ConsoleHandle:
    """The console app as a ConsoleHandle, for code that is handed the app (the palette, help)."""
    return cast("ConsoleHandle", app)


class ConsoleAccess:
    """Mixin for panes and screens: `self.ops`, the app as a ConsoleHandle. (Not `console`: Textual
    already uses that name for the app's Rich console.)"""

    @property
    def ops(self) -> ConsoleHandle:
        return ops_of(getattr(self, "app"))  # noqa: B009 - mixin: `app` comes from Textual
