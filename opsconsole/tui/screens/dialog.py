"""The shape every "give a reason, then the engine decides" dialog shares.

Focus starts on the reason input (never on a confirming button), an empty reason is refused before
anything is sent, the engine is called off the event loop, and a refusal stays on screen with the
engine's own words, so the person can fix it (or cancel) without losing what they typed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from textual import work
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from opsconsole.engine import Conflict, Forbidden, NotFound, Rejected

from ..safe import plain

REFUSALS = (Rejected, Forbidden, NotFound, Conflict, ValueError)
REASON_REQUIRED = "A reason is required: it is recorded with your name."

T = TypeVar("T")


class ReasonDialog(ModalScreen[T], Generic[T]):
    """Subclasses compose an Input #reason and a Static #error, and implement `submit(reason)`."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]
    CANCELLED: Any = None
    """What the dialog returns when cancelled."""

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        reason = event.value.strip()
        if not reason:
            self.show_error(REASON_REQUIRED)
            return
        self.submit(reason)

    def submit(self, reason: str) -> None:
        raise NotImplementedError

    @work(thread=True, exclusive=True, group="dialog")
    def call_engine(
        self, fn: Callable[..., Any], *args: Any, done: Callable[[Any], None], **kwargs: Any
    ) -> None:
        try:
            result = fn(*args, **kwargs)
        except REFUSALS as exc:
            self.app.call_from_thread(self.show_error, f"refused: {exc}")
            return
        except Exception as exc:  # the store failed: say so here rather than take the console down
            self.app.call_from_thread(self.show_error, f"not recorded: {type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(done, result)

    def show_error(self, message: str) -> None:
        self.query_one("#error", Static).update(plain(message, wrap=True))

    def action_cancel(self) -> None:
        self.dismiss(self.CANCELLED)
