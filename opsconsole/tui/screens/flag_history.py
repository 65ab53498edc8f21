"""Every stored change of one flag in one environment, newest first: when, who, old → new, and why.
Times are the engine's clock as recorded in the store (UTC), so the screen is the same on every run
given the same store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from ..calls import call
from ..format import decided_why, format_flag_value, plain, utc_time
from ..handle import ConsoleAccess

if TYPE_CHECKING:
    from opsconsole.engine import FlagDef, FlagState

COLUMNS = ("When (UTC)", "Who", "Change", "Reason")


class FlagHistoryScreen(ConsoleAccess, ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Back", id="back")]

    def __init__(self, environment: str, flag: FlagDef, state: FlagState) -> None:
        super().__init__()
        self.environment = environment
        self.flag = flag
        self.state = state

    def compose(self) -> ComposeResult:
        f, st = self.flag, self.state
        with Vertical(classes="dialog -full", id="flag-history"):
            yield Static(plain(f"History of {f.name} in {self.environment}"), classes="dialog-title")
            now = f"now {format_flag_value(st.value, st.type)}: {decided_why(st)}"
            yield Static(plain(now), classes="dialog-hint")
            table: DataTable[Any] = DataTable(id="flag-history-table", cursor_type="row", zebra_stripes=True)
            for label in COLUMNS:
                table.add_column(label, key=label)
            yield table
            yield Static(plain("loading…", "dim"), id="flag-history-empty")
            yield Static("Esc back", classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one("#flag-history-table", DataTable).focus()
        self.load()

    def load(self) -> None:
        engine = self.ops.engine
        call(
            self,
            engine.flag_history,
            self.environment,
            self.flag.name,
            action=f"Reading the history of {self.flag.name}",
            done=self.show,
            failed=lambda message: self.query_one("#flag-history-empty", Static).update(
                plain(message, wrap=True)
            ),
            group="flag-history",
        )

    def show(self, rows: list[dict[str, Any]]) -> None:
        table = self.query_one("#flag-history-table", DataTable)
        empty = self.query_one("#flag-history-empty", Static)
        table.clear()
        kind = self.flag.type
        default = format_flag_value(self.flag.default, kind)
        for row in reversed(rows):
            who = f"{row['actor']}@{row['origin']}" if row.get("origin") else str(row["actor"])
            old = row["old"]
            before = format_flag_value(old, kind) if old is not None else f"default {default}"
            change = f"{before} → {format_flag_value(row['new'], kind)}"
            table.add_row(
                utc_time(row["at"]),
                plain(who),
                plain(change),
                plain(row.get("reason") or ""),
            )
        empty.display = not rows
        if not rows:
            empty.update(plain(f"No stored changes of {self.flag.name} in {self.environment} yet.", "dim"))
