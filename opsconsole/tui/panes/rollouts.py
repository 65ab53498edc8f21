"""Rollouts: where every rollout stands and why, the selected one's verdicts, and the actions on it.

Rows are keyed by rollout id and updated in place: the runner publishes each rollout every tick, so
the pane applies that rollout's row directly (no store read); a full reload from the store (off the
event loop) happens only when something else changed (a command from another process, the kill
switch, a client-mode poll).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from opsconsole.engine import allowed_commands, rollout_row

from ..actions import GuardedActions
from ..bridge import EngineChanged
from ..calls import call
from ..format import ROLLOUT_STATE_STYLE as STATE_STYLE
from ..format import plain, units_of, verdict_cells

COLUMNS = (
    ("rollout", "Rollout", 21),
    ("phase", "Phase", 12),
    ("pct", "%", 3),
    ("state", "State", 17),
    ("why", "Why", None),
)
VERDICT_COLUMNS = (
    ("gate", "Gate"),
    ("status", "Status"),
    ("value", "Value"),
    ("limit", "Threshold"),
    ("reason", "Reason"),
)
MAX_ROWS = 200
ROLLOUT_COMMANDS = frozenset({"approve", "promote", "pause", "resume", "abort", "rollback", "tick_checklist"})
"""Actions on the selected rollout: the engine's allowed_commands(state) says which apply (the others
show disabled)."""


class RolloutsPane(GuardedActions, Vertical, can_focus=False):
    BINDINGS = [
        Binding("a", "approve", "Approve", id="approve-phase"),
        Binding("p", "promote", "Promote", id="promote"),
        Binding("z", "pause", "Pause", id="pause"),
        Binding("r", "resume", "Resume", id="resume"),
        Binding("x", "abort", "Abort", id="abort"),
        Binding("b", "rollback", "Rollback", id="rollback"),
        Binding("n", "start_plan", "New", id="start-plan"),
        Binding("c", "tick_checklist", "Checklist", id="tick-checklist"),
        Binding("enter", "detail", "Detail", show=False, id="rollout-detail"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rollouts: dict[str, Any] = {}
        self._bindings_for: tuple[str, str] | None = None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Who may (authz, via GuardedActions: hidden when not), then whether it applies to the
        selected rollout's state (shown disabled when not)."""
        allowed = super().check_action(action, parameters)
        if not allowed or not self.is_mounted:
            return allowed
        if action == "start_plan":
            return None if self.ops.kill_engaged else True
        if action not in ROLLOUT_COMMANDS:
            return True
        r = self.selected()
        return True if r is not None and action in allowed_commands(r.state) else None

    def compose(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(id="rollout-table", cursor_type="row", zebra_stripes=True)
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table
        yield Static(id="rollout-why")
        verdicts: DataTable[Any] = DataTable(id="verdict-table", cursor_type="none", show_cursor=False)
        for key, label in VERDICT_COLUMNS:
            verdicts.add_column(label, key=key)
        yield verdicts

    def on_mount(self) -> None:
        self.reload()

    def focus(self, scroll_visible: bool = True) -> RolloutsPane:
        self.query_one("#rollout-table").focus(scroll_visible)
        return self

    # ------------------------------------------------------------------------------------ data

    def on_engine_changed(self, message: EngineChanged) -> None:
        rollout = message.data.get("rollout")
        if rollout is not None and message.kind in ("rollout", "verdicts"):
            self.apply([rollout], full=False)
        elif message.kind in ("kill_switch", "poll", "engine"):
            self.reload()

    def reload(self) -> None:
        engine = self.ops.engine
        call(
            self,
            lambda: engine.rollouts()[:MAX_ROWS],
            action="Reading the rollouts",
            done=lambda rollouts: self.apply(rollouts, True),
            group="rollouts-reload",
            exclusive=True,
            quiet=True,
        )

    def apply(self, rollouts: list[Any], full: bool) -> None:
        engine = self.ops.engine
        table = self.query_one("#rollout-table", DataTable)
        with self.app.batch_update():
            if full:
                gone = set(self.rollouts) - {r.id for r in rollouts}
                for rid in gone:
                    del self.rollouts[rid]
                    table.remove_row(rid)
            for r in rollouts:
                old = self.rollouts.get(r.id)
                if old is not None and old.version > r.version:
                    continue  # an older event than what we show
                self.rollouts[r.id] = r
                cells = _cells(rollout_row(engine, r))
                if r.id not in table.rows:
                    table.add_row(*cells.values(), key=r.id)
                else:
                    for col, value in cells.items():
                        if table.get_cell(r.id, col) != value:
                            table.update_cell(r.id, col, value)
            self.show_selected()

    def selected(self) -> Any | None:
        table = self.query_one("#rollout-table", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rollouts.get(str(key))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_selected()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_detail()

    def show_selected(self) -> None:
        r = self.selected()
        why = self.query_one("#rollout-why", Static)
        verdicts = self.query_one("#verdict-table", DataTable)
        if r is None:
            why.update(Text("No rollouts yet. Press n to start a plan.", style="dim"))
            verdicts.clear()
            return
        if self._bindings_for != (r.id, str(r.state)):
            self._bindings_for = (r.id, str(r.state))
            self.refresh_bindings()  # only on a change: the footer rebuilds itself on every refresh
        engine = self.ops.engine
        row = rollout_row(engine, r)
        line = Text.assemble(
            (f"{row['id']} ", "bold"),
            plain(f"{row['plan']} · {row['phase']} · {row['percent']}% · started by {row['started_by']}"),
        )
        line.append("\n")
        line.append_text(plain(f"why: {row['why']}", wrap=True))
        why.update(line)
        rows = {v.gate: v for v in r.verdicts}
        units = units_of(engine, r)
        if set(verdicts.rows) != set(rows):
            verdicts.clear()
            for gate in rows:
                verdicts.add_row(*verdict_cells(rows[gate], units.get(gate, "")), key=gate)
        else:
            for gate, v in rows.items():
                cells = verdict_cells(v, units.get(gate, ""))
                for col, value in zip((k for k, _ in VERDICT_COLUMNS), cells, strict=True):
                    if verdicts.get_cell(gate, col) != value:
                        verdicts.update_cell(gate, col, value)

    # ------------------------------------------------------------------------------------ actions

    def _need(self) -> Any | None:
        r = self.selected()
        if r is None:
            self.app.notify("No rollout selected", severity="warning")
        return r

    def action_approve(self) -> None:
        from ..screens.approve import ApproveScreen

        r = self._need()
        if r is not None:
            self.app.push_screen(ApproveScreen(r))

    def _command(self, kind: str, title: str, dangerous: bool = False) -> None:
        from ..screens.reason import ReasonScreen

        r = self._need()
        if r is None:
            return
        engine = self.ops.engine

        def done(reason: str | None) -> None:
            if reason is not None:
                self.ops.run_engine(
                    engine.command, r.id, kind, reason, action=f"{title} {r.id}", done=f"{title}: {r.id}"
                )

        self.app.push_screen(ReasonScreen(f"{title} {r.id}", dangerous=dangerous), done)

    def action_promote(self) -> None:
        self._command("promote", "Promote")

    def action_pause(self) -> None:
        self._command("pause", "Pause")

    def action_resume(self) -> None:
        self._command("resume", "Resume")

    def action_abort(self) -> None:
        self._command("abort", "Abort", dangerous=True)

    def action_rollback(self) -> None:
        self._command("rollback", "Roll back", dangerous=True)

    def action_start_plan(self) -> None:
        from ..screens.start import StartPlanScreen

        self.app.push_screen(StartPlanScreen())

    def action_tick_checklist(self) -> None:
        from ..screens.checklist import ChecklistScreen

        r = self._need()
        if r is not None:
            self.app.push_screen(ChecklistScreen(r))

    def action_detail(self) -> None:
        from ..screens.detail import RolloutDetailScreen

        r = self._need()
        if r is not None:
            self.app.push_screen(RolloutDetailScreen(r.id))


def _cells(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "rollout": plain(row["id"]),
        "phase": plain(row["phase"]),
        "pct": Text(f"{row['percent']}", justify="right"),
        "state": Text(row["state"], style=STATE_STYLE.get(row["state"], "")),
        "why": plain(row["why"]),
    }
