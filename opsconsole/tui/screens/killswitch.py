"""The kill switch. Opened by the kill key from anywhere; the same key again (or Enter) pulls it, an
optional reason may be typed first. When it is already engaged this screen gives the all-clear,
which needs an approver and a reason. The engine call is the fast path (files first, no waiting on
any source); it runs off the event loop so the screen never freezes."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from opsconsole.engine import Forbidden, Rejected

from ..safe import plain, safe

DEFAULT_REASON = "kill switch pulled from the console"


class KillSwitchScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self) -> None:
        super().__init__()
        self.engaged = False
        self.busy = False

    def compose(self) -> ComposeResult:
        engine = self.app.engine  # type: ignore[attr-defined]
        self.engaged = engine.kill_state().engaged
        key = engine.config.kill_key
        with Vertical(classes="dialog -dangerous"):
            if self.engaged:
                yield Static("KILL SWITCH IS ENGAGED", classes="dialog-title")
                yield Static(
                    "Give the all-clear (approver): type why it is safe, then Enter.", classes="dialog-hint"
                )
                yield Input(placeholder="reason for the all-clear (required)", id="reason")
                yield Static("Enter gives all-clear · Esc cancels", classes="dialog-keys")
            else:
                yield Static("PULL THE KILL SWITCH?", classes="dialog-title")
                yield Static(
                    "Flags to their safe values, every active rollout aborted, improvements paused.",
                    classes="dialog-hint",
                )
                yield Input(placeholder="reason (optional)", id="reason")
                yield Static(plain(f"{key} again or Enter pulls it · Esc cancels"), classes="dialog-keys")
            yield Static(id="error", classes="dialog-error")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.confirm()

    def confirm(self) -> None:
        if self.busy:
            return
        reason = self.query_one("#reason", Input).value.strip()
        if self.engaged:
            if not reason:
                self.query_one("#error", Static).update("The all-clear needs a reason.")
                return
            self.busy = True
            self.all_clear(reason)
        else:
            self.busy = True
            self.pull(reason or DEFAULT_REASON)

    @work(thread=True, exclusive=True, group="kill")
    def pull(self, reason: str) -> None:
        app = self.app
        engine = app.engine  # type: ignore[attr-defined]

        def files_safe(done: Any) -> None:
            # The safe state is on disk (and the journal says engaged): close now and let the header
            # say so; the store's record, which may wait on a busy store, is reported when it is in.
            app.call_from_thread(self.dismiss, None)
            app.call_from_thread(app.refresh_status)  # type: ignore[attr-defined]

        try:
            res = engine.kill(reason, on_safe=files_safe)
        except Forbidden as exc:
            self.busy = False
            app.call_from_thread(self.query_one("#error", Static).update, plain(f"refused: {exc}"))
            return
        note = (
            f"KILL SWITCH ENGAGED: {len(res.aborted)} rollouts aborted, {len(res.files)} flag files written"
        )
        if not res.recorded:
            note += f" (store busy or unreachable, recorded when it is back: {res.error})"
        app.call_from_thread(app.notify, safe(note), severity="error", timeout=10, markup=False)
        app.call_from_thread(app.refresh_status)  # type: ignore[attr-defined]

    @work(thread=True, exclusive=True, group="kill")
    def all_clear(self, reason: str) -> None:
        engine = self.app.engine  # type: ignore[attr-defined]
        try:
            engine.all_clear(reason)
        except (Forbidden, Rejected) as exc:
            self.busy = False
            self.app.call_from_thread(self.query_one("#error", Static).update, plain(f"refused: {exc}"))
            return
        self.app.call_from_thread(self.app.notify, "all-clear given; flags back to their stored values")
        self.app.call_from_thread(self.app.refresh_status)  # type: ignore[attr-defined]
        self.app.call_from_thread(self.dismiss, None)

    def action_cancel(self) -> None:
        self.dismiss(None)
