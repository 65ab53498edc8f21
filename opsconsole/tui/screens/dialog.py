"""The shape every "give a reason, then the engine decides" dialog shares.

Focus starts on the reason input (never on a confirming button), an empty reason is refused before
anything is sent, the engine is called off the event loop (the console's one path, calls.py), and a
refusal or a store failure stays on screen in the engine's own words, so the person can fix it, try
again or cancel without losing what they typed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ..calls import REFUSALS, call
from ..format import plain
from ..handle import ConsoleAccess

__all__ = ["REFUSALS", "REASON_REQUIRED", "ReasonDialog"]

REASON_REQUIRED = "A reason is required: it is recorded with your name."

T = TypeVar("T")


class ReasonDialog(ConsoleAccess, ModalScreen[T], Generic[T]):
    """Subclasses compose an Input #reason and a Static #error, and implement `submit(reason)`."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]
    CANCELLED: Any = None
    """What the dialog returns when cancelled."""
    busy = False

    def on_mount(self) -> None:
        reason = self.query_one("#reason", Input)
        # A blinking cursor repaints the input and its border twice a second (about 2 kB/s over
        # SSH) while someone reads the evidence; a steady one says the same.
        reason.cursor_blink = False
        reason.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        reason = event.value.strip()
        if not reason:
            self.show_error(REASON_REQUIRED)
            return
        self.submit(reason)

    def submit(self, reason: str) -> None:
        raise NotImplementedError

    def call_engine(
        self,
        fn: Callable[..., Any],
        *args: Any,
        done: Callable[[Any], Any],
        action: str = "",
        **kwargs: Any,
    ) -> None:
        """`fn(*args, **kwargs)` off the event loop; `done(result)` on success, else the refusal or
        the store's failure in #error (or a notification naming `action` if the dialog is gone)."""
        if self.busy:
            return  # Enter pressed again while the engine is still deciding
        self.busy = True
        self.show_error("")

        def failed(message: str) -> None:
            self.busy = False
            self.show_error(message)

        what = action or getattr(fn, "__name__", "engine call").replace("_", " ")
        call(self, fn, *args, action=what, done=done, failed=failed, group="dialog", **kwargs)

    def show_error(self, message: str) -> None:
        self.query_one("#error", Static).update(plain(message, wrap=True))

    def action_cancel(self) -> None:
        self.dismiss(self.CANCELLED)
