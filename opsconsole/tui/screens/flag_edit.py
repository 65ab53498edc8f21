"""Change one flag: toggle a boolean or set a percentage, always with a reason.

A high-risk flag or a production environment gets a warning the eye cannot miss (red frame, the word
CAREFUL and what will happen). Focus starts on the reason input, never on a button, so a stray Enter
cannot change anything: Enter with an empty reason only says that a reason is required. Bad input is
refused here with a message and nothing is sent; the engine decides the rest (role, read-only) and
its refusal is shown in the dialog, which stays open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ..calls import call
from ..format import decided_why, format_flag_value, plain, safe
from ..handle import ConsoleAccess

if TYPE_CHECKING:
    from opsconsole.engine import FlagDef, FlagState

WHILE = {
    "env": "while the environment variable {detail} is set",
    "parent": "while its parent {detail} is off",
    "kill_switch": "while the kill switch is engaged",
}


def parse_percentage(text: str) -> int:
    """A whole number 0..100 (a trailing % is fine), or ValueError saying what is wrong."""
    digits = text.strip().removesuffix("%").strip()
    if not digits:
        raise ValueError("Type the new percentage: a whole number from 0 to 100.")
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"{text.strip()!r} is not a percentage: type a whole number from 0 to 100.")
    value = int(digits)
    if value > 100:
        raise ValueError(f"{value}% is more than 100%: type a whole number from 0 to 100.")
    return value


class FlagEditScreen(ConsoleAccess, ModalScreen[bool]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self, environment: str, flag: FlagDef, state: FlagState, *, production: bool) -> None:
        super().__init__()
        self.environment = environment
        self.flag = flag
        self.state = state
        self.production = production
        self.percentage = flag.type == "percentage"
        self.risky = production or flag.risk == "high"
        self.busy = False

    def compose(self) -> ComposeResult:
        # Laid out to fit 80x24 with every part present (warning, override note, two inputs, error).
        f, st = self.flag, self.state
        now = format_flag_value(st.value, st.type)
        if self.percentage:
            title = f"Set {f.name} in {self.environment}"
        else:
            title = f"Turn {f.name} {'OFF' if st.value else 'ON'} in {self.environment}"
        with Vertical(classes="dialog" + (" -dangerous" if self.risky else ""), id="flag-edit"):
            yield Static(plain(title), classes="dialog-title")
            facts = f"now {now}: {decided_why(st)} · {f.type} · risk {f.risk}"
            if f.owner:
                facts += f" · owner {f.owner}"
            yield Static(plain(facts), classes="dialog-hint")
            if self.risky:
                yield Static(self._warning(), id="flag-warning")
            if st.decided_by in ("env", "kill_switch", "parent"):
                note = f"The change is stored and audited but has no effect {WHILE[st.decided_by]}."
                yield Static(plain(note.format(detail=st.detail)), classes="dialog-hint")
            yield Input(placeholder="reason (required, recorded in the flag's history)", id="reason")
            if self.percentage:
                yield Input(value=str(int(st.value)), placeholder="new percentage 0..100", id="percentage")
            yield Static(id="error", classes="dialog-error")
            keys = (
                "Enter: next field, then confirm · Esc cancels"
                if self.percentage
                else "Enter confirms · Esc cancels"
            )
            yield Static(keys, classes="dialog-keys")

    def _warning(self) -> Text:
        what = []
        if self.flag.risk == "high":
            what.append("a HIGH-RISK flag")
        if self.production:
            what.append(f"the PRODUCTION environment {self.environment}")
        text = Text("CAREFUL: ", style="bold")
        text.append_text(plain(f"this changes {' in '.join(what)}. Live services read it at once."))
        return text

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    # ------------------------------------------------------------------------------------ input

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "percentage":
            try:
                parse_percentage(event.value)
            except ValueError as exc:
                self.show_error(str(exc))
            else:
                self.show_error("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "reason" and self.percentage:
            box = self.query_one("#percentage", Input)
            if box.value.strip() == str(int(self.state.value)):
                box.focus()  # the form's next field: the reason is typed, the value is not yet
                return
        self.confirm()

    def new_value(self) -> bool | int:
        """The value to store, or ValueError with the message to show."""
        if self.percentage:
            return parse_percentage(self.query_one("#percentage", Input).value)
        return not bool(self.state.value)

    def confirm(self) -> None:
        if self.busy:
            return
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.show_error("A reason is required: it is recorded with your name in the flag's history.")
            self.query_one("#reason", Input).focus()
            return
        try:
            value = self.new_value()
        except ValueError as exc:
            self.show_error(str(exc))
            self.query_one("#percentage", Input).focus()
            return
        self.busy = True
        self.show_error("")
        self.submit(value, reason)

    def show_error(self, message: str) -> None:
        self.query_one("#error", Static).update(plain(message))

    def submit(self, value: bool | int, reason: str) -> None:
        engine = self.ops.engine
        name = self.flag.name

        def set_flag() -> str:
            try:
                engine.set_flag(self.environment, name, value, reason)
            except OSError as exc:  # committed to the store first, then the file write failed
                return f"{name} is stored, but its flag file could not be written: {exc}"
            return ""

        call(
            self,
            set_flag,
            action=f"Set {name} in {self.environment}",
            done=lambda problem: self._done(value, problem),
            failed=self._failed,
            group="flag-edit",
        )

    def _failed(self, message: str) -> None:
        self.busy = False
        self.show_error(message)

    def _done(self, value: bool | int, problem: str) -> None:
        if problem:
            self.app.notify(safe(problem), severity="error", markup=False)
        else:
            shown = format_flag_value(value, self.flag.type)
            self.app.notify(
                safe(f"{self.flag.name} = {shown} in {self.environment}"), markup=False, timeout=4
            )
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
