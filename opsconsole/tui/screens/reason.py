"""Ask for a reason before a command; dangerous ones say so and start with focus on the input,
never on a button, so a stray Enter cannot confirm them."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ..format import plain


class ReasonScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self, title: str, *, dangerous: bool = False, required: bool = True, hint: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.dangerous = dangerous
        self.required = required
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog" + (" -dangerous" if self.dangerous else "")):
            yield Static(plain(self.title_text), classes="dialog-title")
            if self.hint:
                yield Static(plain(self.hint, wrap=True), classes="dialog-hint")
            yield Input(placeholder="reason (recorded in the audit log)", id="reason")
            yield Static("Enter confirms · Esc cancels", classes="dialog-keys")
            yield Static(id="error", classes="dialog-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        reason = event.value.strip()
        if self.required and not reason:
            self.query_one("#error", Static).update("A reason is required.")
            return
        self.dismiss(reason)

    def action_cancel(self) -> None:
        self.dismiss(None)
