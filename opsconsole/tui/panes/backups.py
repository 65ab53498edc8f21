"""Backups: is each target restorable, what did its backups do, and run / verify / restore / prune.

At the top, always in view, one line per `backups:` target: its restorability as the engine judges
it (ok / stale / unverified / failing, with why). Below, the history of the current target (`[` and
`]` switch targets), newest first: status, age, size, duration, verification and storage (local, s3,
local+s3). The line under the table says the run under the cursor in full.

Built for thousands of runs: the history is a Line API table (widgets/keyed_table.py) that draws only
the rows on screen. The history is read in a thread worker, diffed against what is shown, and only
the rows that changed are repainted; the age column is re-checked for the rows on screen once in a
while and a row repaints only when its words changed (an age reads to the minute). A hidden pane only
remembers that something changed and reads when shown.

Keys: `b` backs the target up now, `v` verifies the run under the cursor, `r` restores it (a dialog:
the target's name typed back and a reason; over the originals needs an approver), `p` prunes with the
retention dry run shown first. Every call goes through calls.py in a thread; a refusal is shown on
the pane's error line in the engine's words. Who may do what is the engine's authz (actions.py): a
read-only session sees no action keys.

Without a `backups:` section the pane says so, and lists what holds this console's state so an
operator knows what to copy by hand.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from ..actions import GuardedActions
from ..backup_text import (
    STATUS_CELL_STYLE,
    age_text,
    duration_text,
    run_facts,
    size_text,
    status_line,
    storage_text,
    verification_text,
)
from ..bridge import EngineChanged
from ..calls import call
from ..format import plain, safe, utc_time
from ..widgets.keyed_table import Cell, Column, KeyedTable
from ..widgets.shown_reload import ShownReload, diff_keyed, merge_keyed

if TYPE_CHECKING:
    from opsconsole.engine import BackupRun, Config, RestoreResult, TargetStatus

    from ..screens.backup_prune import BackupPruneScreen
    from ..screens.backup_restore import BackupRestoreScreen

EMPTY_TITLE = "Backups: not configured"
EMPTY_TEXT = (
    "This console does not take or list backups here: opsconsole.yaml has no 'backups:' section, so "
    "nothing is backed up, verified or restorable from this pane."
)
ABOUT_TEXT = (
    "What a 'backups:' section gives: file backups (configuration, flag files and the state "
    "database, copied consistently into a .tar.gz) and PostgreSQL backups (pg_dump), each verified "
    "for real (checksums; for PostgreSQL a restore into a scratch database), with retention and an "
    "approved restore.\n\n"
    "To configure: targets (kind: files with paths, or kind: postgres with a dsn), storage (a local "
    "directory, optionally S3), schedule, retention (keep_last, keep_daily, keep_weekly). "
    "`opsconsole config check` says what is wrong."
)
SQLITE = "sqlite:///"
_CREDENTIALS = re.compile(r"(://)[^/@]*@")
STATUS_WIDTH = len("verify_failed")
RESTORE_SCREEN = "backup-restore"
"""The name the one restore dialog is installed under."""
PRUNE_SCREEN = "backup-prune"
"""The name the one prune dialog is installed under."""
CLOCK_EVERY = 15.0
"""Seconds between checks of the age cells on screen (no store read)."""
STATUS_EVERY = 60.0
"""Seconds between reads of the targets' restorability while shown (it ages: stale)."""
Loaded = tuple[str, "dict[str, TargetStatus] | None", list["BackupRun"], list[str], set[str]]
"""A read: target, restorability of every target (None: not read this time), its runs newest first,
their ids, the changed ids."""


class BackupTable(KeyedTable):
    """The history of one target, by run id (rows, cells and styles come from BackupsPane)."""


class BackupsPane(GuardedActions, ShownReload, Vertical, can_focus=True):
    DEFAULT_CSS = """
    BackupsPane { height: 1fr; }
    BackupsPane #backups-status { height: auto; max-height: 6; text-wrap: nowrap; text-overflow: ellipsis; }
    BackupsPane #backup-line { text-wrap: nowrap; text-overflow: ellipsis; }
    BackupsPane #backups-error { display: none; height: auto; color: $error; }
    BackupsPane #backups-error.-shown { display: block; }
    BackupsPane #backup-line { height: 2; }
    BackupsPane #backups-empty-box { padding: 1 2; }
    BackupsPane .empty-title { text-style: bold; padding: 0 0 1 0; }
    """
    BINDINGS = [
        Binding("b", "run_backup", "Back up", id="run-backup"),
        Binding("v", "verify_backup", "Verify", id="verify-backup"),
        Binding("r", "restore_backup", "Restore", id="restore-backup"),
        Binding("p", "prune_backups", "Prune", id="prune-backups"),
        Binding(
            "left_square_bracket", "switch_target(-1)", "Prev target", show=False, id="previous-backup-target"
        ),
        Binding(
            "right_square_bracket", "switch_target(1)", "Next target", show=False, id="next-backup-target"
        ),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = ""
        self.runs: dict[str, BackupRun] = {}
        self.statuses: dict[str, TargetStatus] = {}
        self.running: set[str] = set()
        """Targets this console is backing up right now (the engine records the run when it ends)."""
        self._ages: dict[str, str] = {}
        """The age text each row on screen was last drawn with."""
        self._status_text: Text | None = None
        self._line_text: Text | None = None
        self._status_again = False
        self._bindings_for: str | None = None
        self._restore: BackupRestoreScreen | None = None
        self._prune: BackupPruneScreen | None = None
        self._seen: dict[str, tuple[dict[str, BackupRun], list[str]]] = {}
        """The last read of each target shown: switching back shows it at once, then reads again."""

    # ------------------------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        config = self.ops.engine.config
        targets = sorted(config.backups)
        if not targets:
            with VerticalScroll(id="backups-empty-box", can_focus=False):
                yield Static(EMPTY_TITLE, classes="empty-title")
                yield Static(EMPTY_TEXT, id="backups-empty", markup=False)
                yield Static(_copy_by_hand(config), id="backups-manual")
                yield Static(ABOUT_TEXT, id="backups-about", markup=False)
            return
        self.target = targets[0]
        yield Static(id="backups-status")
        yield Static(id="backups-error", markup=False)
        yield BackupTable(self._layout, self._cells, self._show_line, id="backup-table")
        yield Static(id="backup-line")

    @property
    def configured(self) -> bool:
        return bool(self.target)

    @property
    def table(self) -> BackupTable:
        return self.query_one("#backup-table", BackupTable)

    def on_mount(self) -> None:
        if self.configured:
            self.set_interval(CLOCK_EVERY, self._tick_clock)
            self.set_interval(STATUS_EVERY, self._tick_status)
            self.reload()

    def focus(self, scroll_visible: bool = True) -> BackupsPane:
        if self.configured:
            self.table.focus(scroll_visible)
            return self
        return super().focus(scroll_visible)

    # ------------------------------------------------------------------------------------ data

    def on_engine_changed(self, message: EngineChanged) -> None:
        if message.kind in ("backups", "engine") and self.configured:
            self._changed()

    def reload(self, statuses: bool = True) -> None:
        """Read the restorability (unless `statuses` is False: a switch of target changes no status)
        and the current target's history in a thread; one read at a time (a burst of events costs one
        more read, not one per event)."""
        if not self.configured:
            return
        if not self._read_begins():
            self._status_again = self._status_again or statuses
            return
        engine, target, before = self.ops.engine, self.target, dict(self.runs)

        def read() -> Loaded:
            runs = engine.backups(target)
            status = engine.backup_status() if statuses else None
            order, changed = diff_keyed(runs, before)
            return target, status, runs, order, changed

        call(
            self,
            read,
            action="Reading the backups",
            done=self._loaded,
            failed=self._load_failed,
            group="backups-reload",
            quiet=True,
        )

    def _load_failed(self, message: str) -> None:
        self._show_error(f"Could not read the backups: {message}")
        self._read_again(self._read_ends())

    def _loaded(self, got: Loaded) -> None:
        again = self._read_ends()
        target, statuses, runs, order, changed = got
        if target != self.target:
            again = True  # switched meanwhile: the history is another target's
            if statuses is not None:
                self.statuses = statuses
                self._show_status()
        else:
            self.apply(statuses, runs, order, changed)
        self._read_again(again)

    def _read_again(self, again: bool) -> None:
        statuses, self._status_again = self._status_again, False
        if again:
            self.reload(statuses)

    def apply(
        self,
        statuses: dict[str, TargetStatus] | None,
        runs: list[BackupRun],
        order: list[str],
        changed: set[str],
    ) -> None:
        """Show a read: rows repaint only where a run changed; the status block only when its words did."""
        gone = merge_keyed(self.runs, runs, order, changed)
        for key in (gone | changed) if gone is not None else ():
            self._ages.pop(key, None)
        self._seen[self.target] = (self.runs, order)
        if statuses is not None:
            self.statuses = statuses
            self._show_status()
        table = self.table
        empty = "no backups yet: b backs up now" if self._can("run_backup") else "no backups yet"
        if empty != table.empty_text:
            table.empty_text = empty
            if not order:
                table.refresh()  # "loading…" was drawn
        if table.keys != order:
            table.show_keys(order)
        elif changed:
            table.refresh_keys(changed)
            if table.selected in changed:
                self._show_line(table.selected)
        else:
            table.announce()

    def _can(self, action: str) -> bool:
        return bool(self.check_action(action, ()))

    # ------------------------------------------------------------------------------------ header

    def _show_status(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        names = sorted(self.ops.engine.config.backups)
        for index, name in enumerate(names):
            if index:
                text.append("\n")
            status = self.statuses.get(name)
            current = "▸" if name == self.target and len(names) > 1 else " "
            text.append(current, style="bold")
            if status is None:
                text.append_text(plain(f" {name} …"))
            else:
                text.append_text(status_line(status, name in self.running))
        if len(names) > 1:
            text.append("\n")
            text.append_text(plain(f"History of {self.target} ([ ] other target)", "dim"))
        if text != self._status_text:
            self._status_text = text
            self.query_one("#backups-status", Static).update(text)

    def _show_error(self, message: str) -> None:
        line = self.query_one("#backups-error", Static)
        if line.has_class("-shown") != bool(message):
            line.set_class(bool(message), "-shown")
        line.update(safe(message))

    def _tick_clock(self) -> None:
        """Repaint the age cells on screen whose words changed; nothing else, no store read."""
        if not self._shown or not self.configured:
            return
        table, now = self.table, self.ops.engine.clock()
        top = int(table.scroll_y)
        changed = {
            key
            for key in table.keys[top : top + table.scrollable_content_region.height]
            if key in self.runs and self._ages.get(key) != age_text(self.runs[key], now)
        }
        if changed:
            table.refresh_keys(changed)

    def _tick_status(self) -> None:
        if self._shown and self.configured:
            self.reload()  # restorability ages (stale); a read whose rows did not change repaints none

    # ------------------------------------------------------------------------------------ rows

    def _layout(self, width: int) -> list[Column]:
        """Status, age, size, took, verified and storage at their width; when it started takes the rest."""
        used = 1 + (STATUS_WIDTH + 1) + (6 + 1) + (8 + 1) + (6 + 1) + (8 + 1) + (8 + 1)
        started = max(10, min(19, width - used - 1))
        return [
            ("started", "Started (UTC)", started),
            ("status", "Status", STATUS_WIDTH),
            ("age", "Age", 6),
            ("size", "Size", 8),
            ("took", "Took", 6),
            ("verified", "Verified", 8),
            ("storage", "Storage", 8),
        ]

    def _cells(self, key: str) -> dict[str, Cell]:
        run = self.runs.get(key)
        if run is None:
            return {"started": (safe(key), "")}
        status = str(run.status)
        age = age_text(run, self.ops.engine.clock())
        self._ages[key] = age
        verified = verification_text(run)
        return {
            "started": (utc_time(run.started_at), ""),
            "status": (status, STATUS_CELL_STYLE.get(status, "")),
            "age": (age, "muted"),
            "size": (size_text(run.size) if run.size else "-", ""),
            "took": (duration_text(run), ""),
            "verified": (
                verified,
                "high" if verified == "FAILED" else "warn" if verified == "not yet" else "",
            ),
            "storage": (storage_text(run), "muted"),
        }

    def _show_line(self, key: str | None) -> None:
        run = self.runs.get(key) if key is not None else None
        line = run_facts(run) if run is not None else Text("")
        if line != self._line_text:  # an age tick re-announces the cursor row: same words, no repaint
            self._line_text = line
            self.query_one("#backup-line", Static).update(line, layout=False)
        state = "" if run is None else str(run.status)
        if state != self._bindings_for:
            self._bindings_for = state
            self.refresh_bindings()

    # ------------------------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Who may (authz, via GuardedActions: hidden when not); nothing to act on without targets."""
        if action in _TARGET_ACTIONS and not self.configured:
            return False
        return super().check_action(action, parameters)

    def selected_run(self) -> BackupRun | None:
        key = self.table.selected if self.configured else None
        run = self.runs.get(key) if key is not None else None
        if run is None:
            self._show_error("No backup selected: b backs the target up first")
        return run

    def action_run_backup(self) -> None:
        if not self.configured:
            return
        target = self.target
        if target in self.running:
            self.app.notify(f"{safe(target)} is being backed up already", timeout=3, markup=False)
            return
        self.running.add(target)
        self._show_error("")
        self._show_status()

        def done(run: BackupRun) -> None:
            self.running.discard(target)
            if str(run.status) == "failed":
                self._show_error(f"Backup of {target} failed: {run.reason}")
            else:
                self.app.notify(
                    safe(f"Backed up {target}: {run.id} ({size_text(run.size)})"), timeout=5, markup=False
                )
            self.reload()

        def failed(message: str) -> None:
            self.running.discard(target)
            self._show_error(f"Back up {target}: {message}")
            self.reload()

        call(
            self,
            self.ops.engine.run_backup,
            target,
            action=f"Back up {target}",
            done=done,
            failed=failed,
            group=f"backup-run-{target}",
        )

    def action_verify_backup(self) -> None:
        run = self.selected_run()
        if run is None:
            return
        self._show_error("")
        self.app.notify(safe(f"Verifying {run.id}…"), timeout=3, markup=False)

        def done(checked: BackupRun) -> None:
            if str(checked.status) == "verified":
                how = f" ({checked.verified_how})" if checked.verified_how else ""
                self.app.notify(safe(f"{checked.id} verified{how}"), timeout=5, markup=False)
            else:
                self._show_error(
                    f"Verification of {checked.id} failed: {checked.verify_result or checked.reason}"
                )
            self.reload()

        call(
            self,
            self.ops.engine.verify_backup,
            run.target,
            run.id,
            action=f"Verify {run.id}",
            done=done,
            failed=lambda message: self._show_error(f"Verify {run.id}: {message}"),
            group="backup-verify",
        )

    def action_restore_backup(self) -> None:
        from ..screens.backup_restore import BackupRestoreScreen

        run = self.selected_run()
        if run is None:
            return
        self._show_error("")
        screen = self._restore
        if screen is None:
            # One restore dialog, pushed again for each run (show_run): opening stays fast.
            screen = self._restore = BackupRestoreScreen(run)
            self.app.install_screen(screen, name=RESTORE_SCREEN)
        else:
            screen.show_run(run)
        self.app.push_screen(screen, self._restored)

    def _restored(self, result: RestoreResult | None) -> None:
        if result is None:
            return
        safety = f"; safety backup {result.safety_backup}" if result.safety_backup else ""
        notes = f" ({'; '.join(result.notes)})" if result.notes else ""
        self.app.notify(
            safe(f"Restored {result.run_id} into {result.into}{safety}{notes}"), timeout=10, markup=False
        )
        self.reload()

    def action_prune_backups(self) -> None:
        from ..screens.backup_prune import BackupPruneScreen

        if not self.configured:
            return
        self._show_error("")
        screen = self._prune
        if screen is None:
            screen = self._prune = BackupPruneScreen(self.target)
            self.app.install_screen(screen, name=PRUNE_SCREEN)
        else:
            screen.show_target(self.target)
        self.app.push_screen(screen, self._pruned)

    def _pruned(self, done: bool | None) -> None:
        if done:
            self.reload()

    def action_switch_target(self, step: int) -> None:
        names = sorted(self.ops.engine.config.backups)
        if len(names) < 2:
            self.app.notify("Only one backup target is configured", timeout=3)
            return
        at = names.index(self.target) if self.target in names else 0
        self.target = names[(at + step) % len(names)]
        runs, order = self._seen.get(self.target, ({}, []))
        self.runs, self._ages = dict(runs), {}
        self.table.empty_text = "loading…"
        self.table.show_keys(list(order))
        self._show_status()
        self.reload(statuses=False)


_TARGET_ACTIONS = frozenset(
    {"run_backup", "verify_backup", "restore_backup", "prune_backups", "switch_target"}
)
"""Hidden while no target is configured: they would have nothing to act on."""


def _copy_by_hand(config: Config) -> Text:
    """What holds this console's state, from the configuration, so it can be backed up by hand."""
    text = Text("\nMeanwhile, back these up yourself:\n")
    text.append(f"  configuration  {safe(config.path)}\n")
    store = _CREDENTIALS.sub(r"\1", str(config.store))  # never print a password from a DSN
    if store.startswith(SQLITE):
        text.append(f"  state database {safe(store.removeprefix(SQLITE))}\n")
        text.append("    copy it with: sqlite3 FILE '.backup COPY' (cp can miss recent writes)\n")
    else:
        text.append(f"  state store    {safe(store)}\n")
    for name, env in config.environments.items():
        if env.flags is not None:
            text.append(f"  flags {safe(name)}: {safe(env.flags.path)}\n")
    return text
