"""Prune a target's backups: the retention dry run first, listing what would go and why, then confirm.

The dry run is the engine's own decision (`prune_backups(dry_run=True)`), read in a thread when the
dialog opens; Enter prunes only once it is on screen and only if something would go. Pruning asks
the engine again (it never deletes the newest verified backup or one a restore is using), so what
it deletes may be less than the dry run said if something changed meanwhile; the result says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..backup_text import decision_line
from ..calls import call
from ..format import plain, safe
from ..handle import ConsoleAccess

if TYPE_CHECKING:
    from opsconsole.engine import RetentionDecision

ASKING = Text("Asking the engine what retention would delete…", style="dim")
LISTED = 40
"""Decisions listed one by one (those to delete first); more are counted."""


class BackupPruneScreen(ConsoleAccess, ModalScreen[bool]):
    """Dismissed with True when something was pruned."""

    # Opaque: see backup_restore.py. The list grows with what it holds, up to the screen.
    DEFAULT_CSS = """
    BackupPruneScreen { background: $background; }
    BackupPruneScreen #prune-body { height: auto; max-height: 1fr; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="cancel"),
        Binding("enter", "prune", "Prune", id="confirm-prune"),
    ]

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.decisions: list[RetentionDecision] | None = None
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -wide -dangerous"):
            yield Static(
                plain(f"Prune the backups of {self.target}"), id="prune-title", classes="dialog-title"
            )
            with VerticalScroll(id="prune-body", can_focus=False):
                yield Static(ASKING, id="prune-plan")
            yield Static("Esc cancels", id="prune-keys", classes="dialog-keys")
            yield Static(id="error", classes="dialog-error")

    def show_target(self, target: str) -> None:
        """Ask about another target (or the same one again): the pane keeps one prune dialog and
        pushes it again, so opening costs a repaint, not a compose."""
        self.target, self.decisions, self.busy = target, None, False
        if not self.is_mounted:
            return
        self.query_one("#prune-title", Static).update(plain(f"Prune the backups of {target}"))
        self.query_one("#prune-plan", Static).update(ASKING)
        self.query_one("#prune-keys", Static).update("Esc cancels")
        self._show_error("")

    def on_screen_resume(self) -> None:
        """Every push: the engine's dry run, read now (what retention would delete changes as
        backups are taken)."""
        call(
            self,
            self.ops.engine.prune_backups,
            self.target,
            dry_run=True,
            action=f"Retention dry run of {self.target}",
            done=self._planned,
            failed=self._show_error,
            group="backup-prune-plan",
            exclusive=True,
        )

    @property
    def doomed(self) -> list[RetentionDecision]:
        return [d for d in self.decisions or [] if not d.keep]

    def _planned(self, decisions: list[RetentionDecision]) -> None:
        self.decisions = decisions
        now = self.ops.engine.clock()
        doomed, kept = self.doomed, [d for d in decisions if d.keep]
        text = Text()
        if doomed:
            text.append(f"{len(doomed)} would be deleted", style="bold red")
        else:
            text.append("Nothing would be deleted", style="bold green")
        text.append(f", {len(kept)} kept (dry run: nothing has changed yet)\n")
        shown = (doomed + kept)[:LISTED]
        for d in shown:
            text.append("\n")
            text.append_text(decision_line(d, now))
        if len(decisions) > len(shown):
            text.append(f"\n… and {len(decisions) - len(shown)} more", style="dim")
        self.query_one("#prune-plan", Static).update(text)
        keys = "Enter: delete these copies (their records stay) · Esc cancels" if doomed else "Esc closes"
        self.query_one("#prune-keys", Static).update(keys)

    def action_prune(self) -> None:
        if self.busy or not self.doomed:
            return
        self.busy = True
        self._show_error("")

        def failed(message: str) -> None:
            self.busy = False
            self._show_error(message)

        call(
            self,
            self.ops.engine.prune_backups,
            self.target,
            action=f"Prune {self.target}",
            done=self._pruned,
            failed=failed,
            group="dialog",
        )

    def _pruned(self, decisions: list[RetentionDecision]) -> None:
        gone = [d for d in decisions if not d.keep]
        changed = len(self.doomed) - len(gone)
        more = f"; {changed} kept because they changed meanwhile" if changed > 0 else ""
        self.app.notify(safe(f"Pruned {len(gone)} backups of {self.target}{more}"), timeout=6, markup=False)
        self.dismiss(True)

    def _show_error(self, message: str) -> None:
        self.query_one("#error", Static).update(plain(message, wrap=True))

    def action_cancel(self) -> None:
        self.dismiss(False)
