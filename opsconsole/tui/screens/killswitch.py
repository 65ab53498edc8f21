"""The kill switch. Opened by the kill key from anywhere; the same key again (or Enter) pulls it, an
optional reason may be typed first. When it is already engaged this screen gives the all-clear,
which needs an approver and a reason. The engine call is the fast path (files first, no waiting on
any source); it runs off the event loop so the screen never freezes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ..calls import call
from ..format import plain, safe
from ..handle import ConsoleAccess

if TYPE_CHECKING:
    from opsconsole.engine import KillResult

DEFAULT_REASON = "kill switch pulled from the console"


class KillSwitchScreen(ConsoleAccess, ModalScreen[None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self) -> None:
        super().__init__()
        self.engaged = False
        self.busy = False

    def compose(self) -> ComposeResult:
        engine = self.ops.engine
        # What the header shows (re-read on every kill switch event and poll), not a store read on
        # the event loop: the kill key answers at once even when the store is slow, locked or broken.
        self.engaged = bool(self.ops.kill_engaged)
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
        reason = self.query_one("#reason", Input)
        # A blinking cursor repaints the input and its border twice a second (about 2 kB/s over
        # SSH) while someone reads the evidence; a steady one says the same.
        reason.cursor_blink = False
        reason.focus()

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

    def pull(self, reason: str) -> None:
        app, ops = self.app, self.ops
        engine = ops.engine

        def files_safe(_: object) -> None:
            # The safe state is on disk (and the journal says engaged): close now and let the header
            # say so; the store's record, which may wait on a busy store, is reported when it is in.
            app.call_from_thread(self._close)
            app.call_from_thread(ops.refresh_status)

        call(
            self,
            engine.kill,
            reason,
            on_safe=files_safe,
            action="Kill switch",
            done=self._pulled,
            failed=self._failed,
            group="kill",
        )

    def _close(self) -> None:
        if self.is_attached and self.app.screen is self:
            self.dismiss(None)

    def _pulled(self, res: KillResult) -> None:
        note = (
            f"KILL SWITCH ENGAGED: {len(res.aborted)} rollouts aborted, {len(res.files)} flag files written"
        )
        if not res.recorded:
            note += f" ({res.store_note()}: recorded when it is back: {res.error})"
        self.app.notify(safe(note), severity="error", timeout=10, markup=False)
        self.ops.refresh_status()
        self._close()

    def all_clear(self, reason: str) -> None:
        engine = self.ops.engine
        call(
            self,
            engine.all_clear,
            reason,
            action="All-clear",
            done=self._cleared,
            failed=self._failed,
            group="kill",
        )

    def _cleared(self, _: object) -> None:
        self.app.notify("all-clear given; flags back to their stored values")
        self.ops.refresh_status()
        self.dismiss(None)

    def _failed(self, message: str) -> None:
        self.busy = False
        self.query_one("#error", Static).update(plain(message, wrap=True))

    def action_cancel(self) -> None:
        self.dismiss(None)
