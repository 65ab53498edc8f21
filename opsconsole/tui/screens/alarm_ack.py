"""Acknowledge an alarm: the alarm's evidence, and a reason recorded with your name.

An acknowledgement says who is looking and why the alarm may keep firing; it does not silence gates.
The engine decides (off the event loop); a refusal is shown here and the screen stays open. Alarm
names and reasons come from config and metrics, so every line is plain text, never markup.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from opsconsole.engine import Conflict, Forbidden, NotFound, Rejected, format_duration, format_value

from ..safe import plain, safe

REFUSALS = (Rejected, Forbidden, NotFound, Conflict, ValueError)


class AlarmAckScreen(ModalScreen[bool]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self, alarm: Any, now: float) -> None:
        super().__init__()
        self.alarm = alarm
        self.now = now

    def compose(self) -> ComposeResult:
        a = self.alarm
        since = "" if a.since is None else f" for {format_duration(max(0.0, self.now - a.since))}"
        value = format_value(a.value, "") if a.value is not None else "no value"
        with Vertical(classes="dialog"):
            yield Static(plain(f"Acknowledge alarm {a.name}", "bold"), classes="dialog-title")
            yield Static(
                plain(f"{a.environment} · {a.severity} · {a.state}{since} · value {value}"),
                classes="dialog-hint",
            )
            yield Static(Text(safe(a.reason)), classes="dialog-hint")
            yield Input(placeholder="reason (recorded in the audit log)", id="reason")
            yield Static("Enter acknowledges · Esc cancels", classes="dialog-keys")
            yield Static(id="error", classes="dialog-error")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        reason = event.value.strip()
        if not reason:
            self.query_one("#error", Static).update("A reason is required: it is recorded with your name.")
            return
        self.submit(reason)

    @work(thread=True, exclusive=True)
    def submit(self, reason: str) -> None:
        engine = self.app.engine  # type: ignore[attr-defined]
        try:
            engine.ack_alarm(self.alarm.name, reason)
        except REFUSALS as exc:
            self.app.call_from_thread(self._refused, f"refused: {exc}")
            return
        except Exception as exc:  # the store failed: say so here rather than take the console down
            self.app.call_from_thread(self._refused, f"not recorded: {type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self.dismiss, True)

    def _refused(self, message: str) -> None:
        self.query_one("#error", Static).update(plain(message))

    def action_cancel(self) -> None:
        self.dismiss(False)
