"""Placeholder help screen (replaced in the same change)."""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Back")]

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static("help")
