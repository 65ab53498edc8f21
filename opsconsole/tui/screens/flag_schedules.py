"""Scheduled flag changes of one environment: the pending ones with a live countdown to their next
step, who planned them and why; cancel one (with a reason) or plan a new one.

The list is read off the event loop and re-read when the engine says schedules changed (the Flags
pane passes its events on: modal screens get none). The countdown is the engine's clock against the
next step's time, redrawn once a second by a timer that lives only as long as this screen. Times are
shown in UTC like the flag history, so the screen is the same on every machine.

A new schedule is typed the way one says it: "at 14:00 to 25%" (one change) or "from 0 to 100 over
2h in 4 steps" (a ramp, percentage flags), optionally starting "at TIME". The engine parses the time,
the duration and the values (engine/schedules.py), so the console and the CLI accept the same words.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from rich.console import Group
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from opsconsole.engine import find_flag

from ..actions import GuardedActions
from ..calls import call
from ..format import format_flag_value, plain, safe, utc_time
from ..handle import ConsoleAccess

if TYPE_CHECKING:
    from opsconsole.engine import Engine, FlagDef, FlagSchedule

COLUMNS = (("id", "#"), ("flag", "Flag"), ("next", "Next"), ("in", "In"), ("step", "Step"), ("by", "By"))
RAMP_STEPS = 4
"""Steps of a ramp when "in N steps" is left out (the CLI's default too)."""

_AT = re.compile(r"at\s+(?P<at>\S+)\s+to\s+(?P<to>\S+)", re.IGNORECASE)
_RAMP = re.compile(
    r"(?:at\s+(?P<at>\S+)\s+)?from\s+(?P<a>\S+)\s+to\s+(?P<b>\S+)\s+over\s+(?P<over>\S+)"
    r"(?:\s+in\s+(?P<n>\d+)\s+steps?)?",
    re.IGNORECASE,
)
REQUIRED = {
    "schedule-flag": "Type the flag to schedule.",
    "schedule-plan": "Say when and what, e.g. 'at 14:00 to 25%' or 'from 0 to 100 over 2h in 4 steps'.",
    "reason": "A reason is required: it is recorded with your name in the flag's history.",
}
"""The form's fields in order, and what to say when Enter finds one empty."""
PLAN_HELP = "say when and what: 'at 14:00 to 25%', 'at +30m to true' or 'from 0 to 100 over 2h in 4 steps'"


def countdown(seconds: float) -> str:
    """ "0:04:05", "1d 2:03:04"; "due" once the time has come (the engine applies it on its tick)."""
    if seconds <= 0:
        return "due"
    whole = int(seconds + 0.999)  # 0.2 s left still reads 0:00:01, not 0:00:00
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def plan_steps(defn: FlagDef, text: str, now: float) -> tuple[Any, ...]:
    """The steps `text` asks for, or ValueError saying what is wrong. Times, durations and values
    are parsed by the engine (the same words the CLI's `flags schedule` takes)."""
    from opsconsole.engine import schedules

    s = " ".join(text.split())
    if m := _RAMP.fullmatch(s):
        start = schedules.parse_time(m["at"], now) if m["at"] else now
        try:
            over = schedules.parse_duration(m["over"])
        except ValueError as exc:
            raise ValueError(f"over {m['over']!r}: {exc}") from None
        return tuple(schedules.ramp_for(defn, start, m["a"], m["b"], over, int(m["n"] or RAMP_STEPS)))
    if m := _AT.fullmatch(s):
        return (
            (schedules.parse_time(m["at"], now), m["to"]),
        )  # the engine checks the value for the flag's type
    raise ValueError(f"{text.strip()!r}: {PLAN_HELP}" if s else PLAN_HELP.capitalize())


def flag_type(engine: Engine, schedule: FlagSchedule) -> str:
    """The scheduled flag's type; for a flag no longer defined, guessed from the stored values."""
    defn = engine.config.flags.get(schedule.flag)
    if defn is not None:
        return str(defn.type)
    return "boolean" if all(isinstance(x.value, bool) for x in schedule.steps) else "percentage"


class FlagSchedulesScreen(GuardedActions, ModalScreen[None]):
    """`s` in the Flags pane."""

    BINDINGS = [
        Binding("escape", "close", "Back", id="back"),
        Binding("n", "schedule_flag", "New", id="schedule-flag"),
        Binding("c", "cancel_schedule", "Cancel schedule", id="cancel-schedule"),
    ]
    DEFAULT_CSS = """
    #flag-schedules-table { height: 1fr; overflow-x: hidden; }
    #flag-schedules-empty { height: 1fr; }
    #flag-schedules-detail { height: auto; max-height: 6; padding: 1 0 0 0; }
    #flag-schedules .dialog-keys { padding: 0; }
    """

    def __init__(self, environment: str, flag: str | None = None) -> None:
        super().__init__()
        self.environment = environment
        self.flag = flag
        """The flag selected in the pane: a new schedule starts with it."""
        self.schedules: dict[str, FlagSchedule] = {}
        self._loading = False
        self._again = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -full", id="flag-schedules"):
            yield Static(plain(f"Scheduled flag changes in {self.environment}"), classes="dialog-title")
            yield Static(
                plain("pending, the next step first · times in UTC · live countdown"),
                classes="dialog-hint",
            )
            table: DataTable[Any] = DataTable(
                id="flag-schedules-table", cursor_type="row", zebra_stripes=True
            )
            for key, label in COLUMNS:
                table.add_column(label, key=key)
            table.add_column("Reason", key="reason")
            table.display = False  # until the first read: the "loading…" note holds its place
            yield table
            yield Static(plain("loading…", "dim"), id="flag-schedules-empty")
            yield Static(id="flag-schedules-detail")
            yield Static(id="flag-schedules-keys", classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self._show_keys()
        self.reload()
        self.set_interval(1.0, self.tick)  # a screen's timers stop when it closes

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#flag-schedules-table", DataTable)

    # ------------------------------------------------------------------------------------ data

    def reload(self) -> None:
        """Read the pending schedules again; a burst of events costs one more read, not one each."""
        if self._loading:
            self._again = True
            return
        self._loading = True
        self.load()

    @work(thread=True, group="flag-schedules", exit_on_error=False)
    def load(self) -> None:
        engine = self.ops.engine
        try:
            found = engine.flag_schedules(self.environment)
        except Exception as exc:  # the store is away: say so, keep what is shown
            self.app.call_from_thread(self.loaded, None, f"could not read the schedules: {exc}")
        else:
            self.app.call_from_thread(self.loaded, found, "")

    def loaded(self, found: list[FlagSchedule] | None, error: str) -> None:
        self._loading = False
        if found is not None:
            self.show(found)
        elif error:
            self.query_one("#flag-schedules-detail", Static).update(plain(error, "bold", wrap=True))
        if self._again:
            self._again = False
            self.reload()

    def show(self, found: list[FlagSchedule]) -> None:
        engine = self.ops.engine
        now = engine.clock()
        pending = sorted(
            (s for s in found if s.next_step is not None),
            key=lambda s: (s.next_step.at if s.next_step else 0.0, s.id),
        )
        table = self.table
        keep = self.selected_id()
        table.clear()
        self.schedules = {str(s.id): s for s in pending}
        for s in pending:
            step = s.next_step
            assert step is not None  # pending: it has a next step
            kind = flag_type(engine, s)
            table.add_row(
                f"#{s.id}",
                plain(s.flag),
                format_flag_value(step.value, kind),
                countdown(step.at - now),
                f"{s.next_index + 1}/{len(s.steps)}",
                plain(s.created_by),
                plain(s.reason),
                key=str(s.id),
            )
        if keep in self.schedules:
            table.move_cursor(row=table.get_row_index(keep), animate=False)
        empty = self.query_one("#flag-schedules-empty", Static)
        empty.display = not pending
        table.display = bool(pending)  # the note takes the table's place rather than sit under it
        if pending and self.focused is None:
            table.focus()  # it could not take the focus while hidden
        if not pending:
            hint = " Press n to plan one." if self.check_action("schedule_flag", ()) else ""
            empty.update(plain(f"No pending schedules in {self.environment}.{hint}", "dim"))
        self._show_detail()

    def tick(self) -> None:
        """Once a second: the countdowns, from the engine's clock (no store read)."""
        if not self.schedules:
            return
        now = self.ops.engine.clock()
        table = self.table
        for key, s in self.schedules.items():
            step = s.next_step
            if step is not None:
                table.update_cell(key, "in", countdown(step.at - now))

    def selected_id(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    def selected(self) -> FlagSchedule | None:
        key = self.selected_id()
        return self.schedules.get(key) if key is not None else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#flag-schedules-detail", Static)
        s = self.selected()
        if s is None:
            detail.update("")
            return
        kind = flag_type(self.ops.engine, s)
        values = " → ".join(format_flag_value(x.value, kind) for x in s.steps)
        step = s.next_step
        # The table cuts the reason at the screen's edge: here it is whole (and may wrap).
        lines = [plain(f"#{s.id} {s.flag}: {values}", "bold")]
        if step is not None:
            when = f"{format_flag_value(step.value, kind)} at {utc_time(step.at)} UTC"
            lines.append(plain(f"next: step {s.next_index + 1} of {len(s.steps)}, {when}"))
        who = f"{s.created_by}@{s.created_origin}" if s.created_origin else s.created_by
        why = s.reason or "no reason given"
        lines.append(plain(f"by {who} at {utc_time(s.created_at)} UTC: {why}", wrap=True))
        detail.update(Group(*lines))

    def _show_keys(self) -> None:
        keys = []
        if self.check_action("schedule_flag", ()):
            keys.append("n new schedule")
        if self.check_action("cancel_schedule", ()):
            keys.append("c cancel the selected one")
        keys.append("Esc back")
        self.query_one("#flag-schedules-keys", Static).update(" · ".join(keys))

    # ------------------------------------------------------------------------------------ actions

    def action_close(self) -> None:
        self.dismiss(None)

    def action_cancel_schedule(self) -> None:
        from .reason import ReasonScreen

        s = self.selected()
        if s is None:
            self.app.notify("No schedule selected", severity="warning", timeout=3)
            return
        hint = "None of its remaining steps will be applied"
        if s.next_index:
            hint += f"; the {s.next_index} of {len(s.steps)} applied already stay (the flag keeps its value)"
        screen = ReasonScreen(f"Cancel schedule #{s.id}: {s.flag} in {self.environment}", hint=hint + ".")

        def cancel(reason: str | None) -> None:
            if reason:
                engine = self.ops.engine
                done = safe(f"schedule #{s.id} ({s.flag} in {self.environment}) canceled")
                self.ops.run_engine(
                    engine.cancel_schedule, s.id, reason, action=f"Cancel schedule #{s.id}", done=done
                )

        self.app.push_screen(screen, cancel)

    def action_schedule_flag(self) -> None:
        s = self.selected()
        flag = self.flag or (s.flag if s is not None else "")
        self.app.push_screen(FlagScheduleNewScreen(self.environment, flag), self._created)

    def _created(self, created: bool | None) -> None:
        if created:
            self.reload()


class FlagScheduleNewScreen(ConsoleAccess, ModalScreen[bool]):
    """Plan a change: the flag, what and when, and a reason (required, as for any flag change).
    Errors (a time in the past, a value the flag cannot take, the engine's refusal) stay on screen
    with what was typed, so it can be fixed."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]
    DEFAULT_CSS = """
    #flag-schedule-new .dialog-title { padding: 0; }
    #flag-schedule-new .dialog-keys { padding: 0; }
    """

    def __init__(self, environment: str, flag: str = "") -> None:
        super().__init__()
        self.environment = environment
        self.flag = flag
        self.busy = False

    def compose(self) -> ComposeResult:
        env = self.ops.engine.config.environments.get(self.environment)
        production = bool(env and env.production)
        with Vertical(classes="dialog" + (" -dangerous" if production else ""), id="flag-schedule-new"):
            where = f"{self.environment} (PRODUCTION)" if production else self.environment
            yield Static(plain(f"Schedule a flag change in {where}"), classes="dialog-title")
            yield Static(
                plain(
                    "at 14:00 to 25% · at +30m to true · from 0 to 100 over 2h in 4 steps (percentage "
                    "flags; may start 'at TIME') · times: 14:00 local, +30m, 2026-10-01T14:00",
                    wrap=True,
                ),
                classes="dialog-hint",
            )
            yield Input(value=self.flag, placeholder="flag", id="schedule-flag")
            yield Input(placeholder="what and when, e.g. at 14:00 to 25%", id="schedule-plan")
            yield Input(placeholder="reason (required, recorded in the flag's history)", id="reason")
            yield Static(id="error", classes="dialog-error")
            yield Static("Enter: next field, then schedule · Esc cancels", classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one("#schedule-plan" if self.flag else "#schedule-flag", Input).focus()

    def value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value.strip()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter on a filled field goes to the next empty one; with all three filled, it schedules."""
        event.stop()
        here = event.input.id or ""
        if not self.value(here):
            self.show_error(REQUIRED[here])
            return
        self.show_error("")
        for field in REQUIRED:
            if not self.value(field):
                self.query_one(f"#{field}", Input).focus()
                return
        if not self.busy:
            self.busy = True
            self.submit(self.value("schedule-flag"), self.value("schedule-plan"), self.value("reason"))

    def submit(self, name: str, plan: str, reason: str) -> None:
        call(
            self,
            self.schedule,
            name,
            plan,
            reason,
            action=f"Schedule {name} in {self.environment}",
            done=self.done,
            failed=self.failed,
            group="flag-schedule-new",
        )

    def failed(self, message: str) -> None:
        self.busy = False
        self.show_error(message)

    def show_error(self, message: str) -> None:
        self.query_one("#error", Static).update(plain(message, wrap=True))

    def action_cancel(self) -> None:
        self.dismiss(False)

    def schedule(self, name: str, plan: str, reason: str) -> FlagSchedule:
        """In the dialog's worker: the engine parses and checks, then stores."""
        engine = self.ops.engine
        defn = find_flag(engine.config, name, self.environment)
        steps = plan_steps(defn, plan, engine.clock())
        return engine.schedule_flag(self.environment, name, steps, reason)

    def done(self, schedule: FlagSchedule) -> None:
        kind = str(self.ops.engine.config.flags[schedule.flag].type)
        values = " → ".join(format_flag_value(x.value, kind) for x in schedule.steps)
        self.app.notify(
            safe(f"schedule #{schedule.id}: {schedule.flag} {values} in {self.environment}"),
            markup=False,
            timeout=4,
        )
        self.dismiss(True)
