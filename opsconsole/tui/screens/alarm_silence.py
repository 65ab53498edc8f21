"""Silence an Alertmanager alert for a while, or expire the silences that quiet it, with a reason.

A silence matches every label of the selected alert (so it quiets that alert, not its whole family)
and is scoped to the environment by the engine. The engine calls Alertmanager off the event loop;
a refusal or an unreachable Alertmanager is shown here and the screen stays open. Labels and
annotations are remote text: every line is plain text, never markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Static

from opsconsole.engine import parse_duration

from ..format import plain, safe
from .dialog import REASON_REQUIRED, ReasonDialog

if TYPE_CHECKING:
    from opsconsole.engine import AlarmStatus

DEFAULT_DURATION = "1h"


def _labels(alarm: AlarmStatus) -> Text:
    return Text(safe("{" + ", ".join(f"{k}={v}" for k, v in alarm.labels) + "}"), style="dim")


class SilenceScreen(ReasonDialog[str | None]):
    """Returns the new silence's id, or None when cancelled."""

    CANCELLED = None

    def __init__(self, alarm: AlarmStatus) -> None:
        super().__init__()
        self.alarm = alarm

    def compose(self) -> ComposeResult:
        a = self.alarm
        with Vertical(classes="dialog"):
            yield Static(plain(f"Silence alert {a.name}", "bold"), classes="dialog-title")
            yield Static(
                plain(f"{a.environment} · {a.severity} · {a.state} · {a.source}"), classes="dialog-hint"
            )
            yield Static(Text(safe(a.reason)), classes="dialog-hint")
            yield Static(_labels(a), classes="dialog-hint")
            yield Input(value=DEFAULT_DURATION, placeholder="duration, e.g. 30m, 2h", id="duration")
            yield Input(placeholder="reason (recorded in the audit log)", id="reason")
            yield Static("Enter silences · Tab moves · Esc cancels", classes="dialog-keys")
            yield Static(id="error", classes="dialog-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        event.prevent_default()  # the base dialog would read only the input Enter was pressed in
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.query_one("#reason", Input).focus()
            self.show_error(REASON_REQUIRED)
            return
        self.submit(reason)

    def submit(self, reason: str) -> None:
        text = self.query_one("#duration", Input).value.strip()
        try:
            duration = parse_duration(text)
        except ValueError as exc:
            self.query_one("#duration", Input).focus()
            self.show_error(f"duration: {exc}")
            return
        engine = self.ops.engine
        self.call_engine(
            engine.silence_alarms,
            self.alarm.environment,
            dict(self.alarm.labels),
            duration,
            reason,
            action=f"Silence {self.alarm.name}",
            done=self.dismiss,
        )


class UnsilenceScreen(ReasonDialog[bool]):
    CANCELLED = False

    def __init__(self, alarm: AlarmStatus) -> None:
        super().__init__()
        self.alarm = alarm

    def compose(self) -> ComposeResult:
        a = self.alarm
        ids = ", ".join(a.silenced_by)
        with Vertical(classes="dialog"):
            yield Static(plain(f"Expire the silence of {a.name}", "bold"), classes="dialog-title")
            yield Static(plain(f"{a.environment} · {a.severity} · silenced by {ids}"), classes="dialog-hint")
            yield Static(_labels(a), classes="dialog-hint")
            yield Input(placeholder="reason (recorded in the audit log)", id="reason")
            yield Static("Enter expires · Esc cancels", classes="dialog-keys")
            yield Static(id="error", classes="dialog-error")

    def submit(self, reason: str) -> None:
        engine = self.ops.engine
        env, ids = self.alarm.environment, self.alarm.silenced_by

        def expire_all() -> None:
            for silence_id in ids:
                engine.expire_silence(env, silence_id, reason)

        self.call_engine(
            expire_all, action=f"Expire the silence of {self.alarm.name}", done=lambda _: self.dismiss(True)
        )
