"""Restore one backup run: the target's name typed back, a reason, and where to.

By default a restore goes somewhere new (a new directory for files, a new database for PostgreSQL),
which harms nothing. Over the originals is a checkbox: the engine allows it only to an approver
(`backup.restore_overwrite`), takes a safety backup first, and checks the typed name itself too.
Focus starts on the name input, never on something that confirms; a refusal stays on screen in the
engine's words (ReasonDialog), so the person can fix it or cancel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Checkbox, Input, Static

from ..backup_text import STATUS_STYLE, size_text, verification_text
from ..format import ago, plain
from .dialog import REASON_REQUIRED, ReasonDialog

if TYPE_CHECKING:
    from opsconsole.engine import BackupRun, RestoreResult  # noqa: F401 - used in the quoted base class


class BackupRestoreScreen(ReasonDialog["RestoreResult | None"]):
    """Dismissed with the engine's RestoreResult, or None when cancelled."""

    # Opaque: a see-through modal makes Textual draw (and tint) the 2,000-row history beneath it on
    # every frame; the dialog takes the width at 80 columns anyway.
    DEFAULT_CSS = "BackupRestoreScreen { background: $background; }"
    CANCELLED = None

    def __init__(self, run: BackupRun) -> None:
        super().__init__()
        self.run = run

    @property
    def target(self) -> str:
        return self.run.target

    def compose(self) -> ComposeResult:
        run = self.run
        with Vertical(classes="dialog -wide -dangerous"):
            yield Static(plain(f"Restore {run.id}"), id="restore-title", classes="dialog-title")
            yield Static(self._facts(), id="restore-facts")
            yield Checkbox("over the originals (approver; a safety backup is taken first)", id="overwrite")
            yield Static(self._where(False), id="restore-where", classes="dialog-hint")
            yield Input(placeholder=f"type the target's name ({self.target}) to confirm", id="confirm")
            yield Input(placeholder="reason (required, recorded)", id="reason")
            yield Static("Enter: restore · Tab: next field · Esc cancels", classes="dialog-keys")
            yield Static(id="error", classes="dialog-error")

    def _facts(self) -> Text:
        run, now = self.run, self.ops.engine.clock()
        text = Text()
        text.append_text(plain(f"target {run.target} ({run.kind}) · "))
        text.append(str(run.status), style=STATUS_STYLE.get(str(run.status), "bold"))
        text.append_text(
            plain(
                f" · taken {ago(now - run.started_at)} · {size_text(run.size)} · "
                f"verification: {verification_text(run)}",
                wrap=True,
            )
        )
        return text

    def _where(self, overwrite: bool) -> Text:
        engine = self.ops.engine
        if not overwrite:
            into = "a new database" if self.run.kind == "postgres" else "a new directory beside the backups"
            return Text(f"Restores into {into}; nothing existing is changed.")
        text = Text("Restores OVER the originals after a safety backup.", style="bold")
        if not engine.can("backup.restore_overwrite"):
            text.append(f"\nYou are {engine.role}: only an approver may do this; the engine will refuse.")
        return text

    def show_run(self, run: BackupRun) -> None:
        """Ask about another run: the pane keeps one restore dialog and pushes it again, so opening
        costs a repaint, not a compose and a style pass over new inputs."""
        self.run = run
        self.busy = False
        if not self.is_mounted:
            return
        self.query_one("#restore-title", Static).update(plain(f"Restore {run.id}"))
        self.query_one("#restore-facts", Static).update(self._facts())
        self.query_one("#overwrite", Checkbox).value = False
        self.query_one("#restore-where", Static).update(self._where(False))
        confirm = self.query_one("#confirm", Input)
        confirm.value = ""
        confirm.placeholder = f"type the target's name ({self.target}) to confirm"
        self.query_one("#reason", Input).value = ""
        self.show_error("")
        confirm.focus()

    def on_mount(self) -> None:
        # ReasonDialog.on_mount runs too (Textual calls every class's handler) and focuses the
        # reason: the name comes first, so focus moves there once both ran.
        confirm = self.query_one("#confirm", Input)
        confirm.cursor_blink = False
        self.call_after_refresh(confirm.focus)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.query_one("#restore-where", Static).update(self._where(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.prevent_default()  # not ReasonDialog's handler as well: this one checks the name first
        confirm = self.query_one("#confirm", Input).value.strip()
        if confirm != self.target:
            self.show_error(f"Type the target's name, {self.target}, to confirm the restore.")
            self.query_one("#confirm", Input).focus()
            return
        if event.input.id == "confirm" and not self.query_one("#reason", Input).value.strip():
            self.show_error("")
            self.query_one("#reason", Input).focus()
            return
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.show_error(REASON_REQUIRED)
            self.query_one("#reason", Input).focus()
            return
        self.submit(reason)

    def submit(self, reason: str) -> None:
        overwrite = self.query_one("#overwrite", Checkbox).value
        confirm = self.query_one("#confirm", Input).value.strip()
        self.call_engine(
            self.ops.engine.restore_backup,
            self.target,
            self.run.id,
            overwrite=overwrite,
            confirm=confirm,
            reason=reason,
            action=f"Restore {self.run.id}",
            done=self.dismiss,
        )
