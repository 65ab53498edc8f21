"""Rollouts: where every rollout stands and why, the selected one's verdicts, and the actions on it.

Rows are keyed by rollout id and updated in place: the runner publishes each rollout every tick, so
the pane applies that rollout's row directly (no store read); a full reload from the store (off the
event loop) happens only when something else changed (a command from another process, the kill
switch, a client-mode poll).
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

# The engine's modules load with the engine, after the first frame (which shows this pane): its
# functions are looked up on the facade when first called.
import opsconsole.engine as facade

from ..actions import GuardedActions
from ..bridge import EngineChanged
from ..calls import call
from ..format import ROLLOUT_STATE_STYLE as STATE_STYLE
from ..format import plain, units_of, verdict_row
from ..widgets.fitted_table import FitColumn, FittedTable, same_text

COLUMNS = (
    FitColumn("rollout", "Rollout", 8, 24),
    FitColumn("phase", "Phase", 6, 17),
    FitColumn("pct", "%", 3, 13),
    FitColumn("state", "State", 9, 17),
    FitColumn("why", "Why", 12, 0),
)
VERDICT_COLUMNS = (
    FitColumn("gate", "Gate", 5, 18),
    FitColumn("status", "Status", 6, 7),
    FitColumn("value", "Value", 5, 12),
    FitColumn("limit", "Threshold", 5, 16),
    FitColumn("reason", "Reason", 12, 0),
)
SERVICE_COLUMNS = (
    FitColumn("container", "Container", 9, 24),
    FitColumn("image", "Image", 6, 0),
    FitColumn("state", "State", 5, 10),
    FitColumn("health", "Health", 6, 9),
    FitColumn("restarts", "Rst", 3, 4),
    FitColumn("age", "Age", 3, 4),
)
SERVICE_REFRESH = 2.0
"""Seconds between two looks at the Docker services (each in a thread; only changes repaint)."""
MAX_ROWS = 200
ROLLOUT_COMMANDS = frozenset({"approve", "promote", "pause", "resume", "abort", "rollback", "tick_checklist"})
"""Actions on the selected rollout: the engine's allowed_commands(state) says which apply (the others
show disabled)."""


class RolloutsPane(GuardedActions, Vertical, can_focus=False):
    DEFAULT_CSS = """
    RolloutsPane #service-head { height: auto; max-height: 3; padding: 0 1; display: none; }
    RolloutsPane #service-table { height: auto; max-height: 6; display: none; }
    RolloutsPane.-services #service-head { display: block; }
    RolloutsPane.-services #service-table { display: block; }
    """
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
        self.rows: dict[str, dict[str, Any]] = {}
        self._deferred: dict[str, Any] = {}
        self._lines_shown: dict[str, Text] = {}
        self._selected_stale = False
        self._reload_due = False
        """Each rollout's row as last shown: the detail line reuses it (no second store read)."""
        self._bindings_for: tuple[str, str] | None = None
        self._previewed: set[str] = set()
        """Rows shown from the store reader before the engine's first `apply`."""
        self.first_rows: list[dict[str, Any]] | None = None
        """Set by the app before mount: the store reader's rows for the first frame."""
        self._services_timer: Any = None
        self.services: list[Any] = []
        """The Docker services as last read (facade.ServiceStatus), for tests and the detail view."""

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
        return True if r is not None and action in facade.allowed_commands(r.state) else None

    def compose(self) -> ComposeResult:
        yield FittedTable(COLUMNS, "why", id="rollout-table", cursor_type="row", zebra_stripes=True)
        with Vertical(id="rollout-why"):
            # Two widgets: the why line may change when the head does not. The row's Why cell
            # counts the step wait down; this line says when it ends, so it changes once a step.
            yield Static(id="rollout-head")
            yield Static(id="rollout-reason")
        yield FittedTable(
            VERDICT_COLUMNS, "reason", id="verdict-table", cursor_type="none", show_cursor=False
        )
        # The Docker services (only with a `services:` section): shown once the engine is open.
        yield Static(id="service-head")
        yield FittedTable(SERVICE_COLUMNS, "image", id="service-table", cursor_type="none", show_cursor=False)

    def on_mount(self) -> None:
        self.app.screen_change_signal.subscribe(self, self._screen_changed)
        if self.ops.opened:
            self.reload()
        elif self.first_rows is not None:
            self.preview(self.first_rows)  # from the store reader: the engine's rows follow
        else:
            # Composed in the first frame, before the engine: the app hands over the first rows.
            self._show_line(
                "#rollout-head", Text("Opening the workspace: configuration, store …", style="dim")
            )

    def focus(self, scroll_visible: bool = True) -> RolloutsPane:
        self.query_one("#rollout-table").focus(scroll_visible)
        return self

    # ------------------------------------------------------------------------------------ data

    def on_engine_changed(self, message: EngineChanged) -> None:
        rollout = message.data.get("rollout")
        if rollout is not None and message.kind in ("rollout", "verdicts"):
            if self.covered():
                self._deferred[rollout.id] = rollout
            else:
                self.apply([rollout], full=False)
        elif message.kind in ("kill_switch", "poll", "engine"):
            if self.covered():
                self._reload_due = True
            else:
                self.reload()

    def covered(self) -> bool:
        """Under a dialog: Textual repaints a dialog wherever the screen beneath it changed, so
        the pane holds its changes until the dialog closes (the dialog shows its own copy)."""
        return self.screen is not self.app.screen

    def _screen_changed(self, screen: Any) -> None:
        if screen is not self.screen:
            return
        deferred, self._deferred = list(self._deferred.values()), {}
        if self._reload_due:
            self._reload_due = False
            self.reload()
        elif deferred:
            self.apply(deferred, full=False)

    @staticmethod
    def read(engine: Any) -> tuple[list[Any], dict[str, int]]:
        """What a reload shows: the rollouts and the traffic of the stopped ones (blocking: call it
        off the event loop)."""
        rollouts = engine.rollouts()[:MAX_ROWS]
        return rollouts, facade.stopped_traffic(engine, rollouts)

    def reload(self) -> None:
        engine = self.ops.engine
        self._watch_services()
        call(
            self,
            lambda: self.read(engine),
            action="Reading the rollouts",
            done=lambda got: self.apply(got[0], True, got[1]),
            group="rollouts-reload",
            exclusive=True,
            quiet=True,
        )

    def preview(self, rows: list[dict[str, Any]]) -> None:
        """Before the engine is open: the rows the store reader (engine/firstlook.py) vouches for,
        as the engine would show them. The first `apply` takes the table over (rows it does not
        list go); no action works on them until then."""
        table = self.query_one("#rollout-table", FittedTable)
        for row in rows:
            self._previewed.add(row["id"])
            table.set_row(row["id"], _cells(row))
        if not rows:
            self._show_line("#rollout-head", Text("No rollouts yet. Press n to start a plan.", style="dim"))
            return
        first = rows[0]
        head = Text.assemble(
            (f"{first['id']} ", "bold"),
            plain(
                f"{first['plan']} · {first['phase']} · {facade.traffic_text(first)} · started by {first['started_by']}"
            ),
        )
        self._show_line("#rollout-head", head)
        self._show_line("#rollout-reason", plain(f"why: {first['why_static']}", wrap=True))
        verdicts = self.query_one("#verdict-table", FittedTable)
        for v in first["verdicts"]:
            # verdict_row reads a GateVerdict's attributes; the stored verdict has them by name.
            stored: Any = SimpleNamespace(**v)
            verdicts.set_row(v["gate"], verdict_row(stored, first["units"].get(v["gate"], "")))

    def apply(self, rollouts: list[Any], full: bool, traffic: dict[str, int] | None = None) -> None:
        """Show `rollouts` (all of them when `full`); `traffic` is what their new versions get now
        when stopped (read off the event loop on a reload; a single stopped rollout reads its own)."""
        engine = self.ops.engine
        table = self.query_one("#rollout-table", FittedTable)
        with self.app.batch_update():
            if full:
                gone = (set(self.rollouts) | self._previewed) - {r.id for r in rollouts}
                self._previewed.clear()
                for rid in gone:
                    self.rollouts.pop(rid, None)
                    table.drop_row(rid)
            for r in rollouts:
                old = self.rollouts.get(r.id)
                if old is not None and old.version > r.version:
                    continue  # an older event than what we show
                self.rollouts[r.id] = r
                self.rows[r.id] = facade.rollout_row(engine, r, traffic)
                table.set_row(r.id, _cells(self.rows[r.id]))
            self.show_selected()

    def selected(self) -> Any | None:
        table = self.query_one("#rollout-table", FittedTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rollouts.get(str(key))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_selected()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_detail()

    def on_show(self) -> None:
        if self._selected_stale:
            self.show_selected()

    def show_selected(self) -> None:
        if not self.is_on_screen:
            # Behind another tab: the line under the table would still cost a relayout of the
            # screen (and a repaint of the shown pane's scrollbars) every tick. Shown on return.
            self._selected_stale = True
            return
        self._selected_stale = False
        if not self.ops.opened:
            return  # the store reader's rows (preview) say it until the engine's first apply
        r = self.selected()
        verdicts = self.query_one("#verdict-table", FittedTable)
        if r is None:
            self._show_line("#rollout-head", Text("No rollouts yet. Press n to start a plan.", style="dim"))
            self._show_line("#rollout-reason", Text())
            verdicts.clear()
            return
        if self._bindings_for != (r.id, str(r.state)):
            self._bindings_for = (r.id, str(r.state))
            self.refresh_bindings()  # only on a change: the footer rebuilds itself on every refresh
        engine = self.ops.engine
        row = self.rows.get(r.id) or facade.rollout_row(engine, r)
        head = Text.assemble(
            (f"{row['id']} ", "bold"),
            plain(
                f"{row['plan']} · {row['phase']} · {facade.traffic_text(row)} · started by {row['started_by']}"
            ),
        )
        self._show_line("#rollout-head", head)
        self._show_line("#rollout-reason", plain(f"why: {facade.why(engine, r, live=False)}", wrap=True))
        rows = {v.gate: v for v in r.verdicts}
        units = units_of(engine, r)
        if set(verdicts.rows) != set(rows):
            verdicts.clear()
        for gate, v in rows.items():
            verdicts.set_row(gate, verdict_row(v, units.get(gate, "")))

    # ------------------------------------------------------------------------- Docker services

    def _watch_services(self) -> None:
        """Start looking at the Docker services every SERVICE_REFRESH s (once, with the engine)."""
        if self._services_timer is not None or not self.ops.engine.config.services:
            return
        self.add_class("-services")
        self._show_line("#service-head", Text("Docker services: reading …", style="dim"))
        self.read_services()
        self._services_timer = self.set_interval(SERVICE_REFRESH, self.read_services)

    def read_services(self) -> None:
        """Docker and the store are read in a thread (bounded per call); the loop never waits."""
        engine = self.ops.engine
        call(
            self,
            lambda: facade.service_status(engine),
            action="Reading the Docker services",
            done=self.show_services,
            group="docker-services",
            exclusive=True,
            quiet=True,
        )

    def show_services(self, statuses: list[Any]) -> None:
        self.services = statuses
        table = self.query_one("#service-table", FittedTable)
        now = time.time()
        head = Text()
        keep: set[str] = set()
        for i, st in enumerate(statuses):
            if i:
                head.append("\n")
            head.append(f"{st.service} ", "bold")
            if st.error is not None:
                head.append_text(plain(f"Docker unreachable: {st.error}", style="red"))
                continue
            bits = [st.strategy]
            if st.live:
                bits.append(f"live: {st.live}")
            last = st.last_deploy
            if last:
                outcome = last.get("report_outcome") or last.get("outcome") or last.get("phase")
                how = last.get("strategy")
                how = f" ({how})" if how and how != st.strategy else ""  # a plan phase's own strategy
                bits.append(f"last deploy {str(last.get('image', '')).rpartition(':')[2]}{how} {outcome}")
            if not st.containers:
                bits.append("no containers")
            head.append_text(plain(" · ".join(bits)))
            for c in st.containers:
                keep.add(c.name)
                name = f"{c.name} ({c.colour})" if c.colour else c.name
                live = bool(st.live) and c.colour == st.live
                table.set_row(
                    c.name,
                    {
                        "container": Text(name, style="bold" if live else ""),
                        "image": plain(c.image),
                        "state": Text(c.state, style="" if c.state == "running" else "yellow"),
                        "health": Text(c.health, style="red" if c.health == "unhealthy" else ""),
                        "restarts": Text(str(c.restarts), justify="right"),
                        "age": Text(c.age(now), justify="right"),
                    },
                )
        for key in [str(k.value) for k in table.rows if str(k.value) not in keep]:
            table.drop_row(key)
        self._show_line("#service-head", head)

    def _show_line(self, selector: str, text: Text) -> None:
        # Static.update repaints every line of the widget, changed or not: only when it changed.
        if not same_text(text, self._lines_shown.get(selector)):
            self._lines_shown[selector] = text
            self.query_one(selector, Static).update(text)

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
        "pct": Text(_percent(row), justify="right"),
        "state": Text(row["state"], style=STATE_STYLE.get(row["state"], "")),
        "why": plain(row["why"]),
    }


def _percent(row: dict[str, Any]) -> str:
    """The column is headed %: "50" while that is the new version's traffic, else "0% (was 50%)"."""
    text = facade.traffic_text(row)
    return text.removesuffix("%") if row["traffic"] == row["percent"] else text
