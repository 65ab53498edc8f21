"""Acknowledge an alarm: the alarm's evidence, and a reason recorded with your name.

An acknowledgement says who is looking and why the alarm may keep firing; it does not silence gates.
The engine decides (off the event loop); a refusal is shown here and the screen stays open. Alarm
names and reasons come from config and metrics, so every line is plain text, never markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Static

from opsconsole.engine import format_duration, format_value

from ..format import plain, safe
from .dialog import ReasonDialog

if TYPE_CHECKING:
    from opsconsole.engine import AlarmStatus


class AlarmAckScreen(ReasonDialog[bool]):
    CANCELLED = False

    def __init__(self, alarm: AlarmStatus, now: float) -> None:
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

    def submit(self, reason: str) -> None:
        engine = self.ops.engine
        self.call_engine(
            engine.ack_alarm,
            self.alarm.name,
            reason,
            action=f"Acknowledge {self.alarm.name}",
            done=lambda _: self.dismiss(True),
        )
