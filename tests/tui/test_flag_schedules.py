"""The Flags pane's scheduled changes (`s`): the list with its countdown, cancel with a reason, a new
schedule typed in words, and a read-only session that sees them but cannot change them."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable

from opsconsole.tui.app import OpsConsoleApp
from opsconsole.tui.screens.flag_explain import FlagExplainScreen
from opsconsole.tui.screens.flag_schedules import FlagScheduleNewScreen, FlagSchedulesScreen, plan_steps
from opsconsole.tui.screens.reason import ReasonScreen
from tests.tui.conftest import console, screen_text, sync, until
from tests.tui.test_flags_pane import MARCH, Clock, fill, make_engine, open_flags, select


async def open_schedules(app: OpsConsoleApp, pilot: Pilot[None]) -> FlagSchedulesScreen:
    await open_flags(app, pilot)
    await pilot.press("s")
    screen = app.screen
    assert isinstance(screen, FlagSchedulesScreen)
    await until(pilot, lambda: not screen._loading, "the schedules")
    await pilot.pause()
    return screen


@sync
async def test_schedules_list_counts_down_and_cancel_needs_a_reason(tmp_path: Path) -> None:
    clock = Clock()
    engine = make_engine(tmp_path, clock=clock)
    ramp = [(MARCH + 600, 10), (MARCH + 1200, 20)]
    engine.schedule_flag("production", "new_checkout", ramp, "slow ramp")
    engine.schedule_flag("staging", "dark_mode", [(MARCH + 60, True)], "not shown in production")
    app = console(engine, environment="production")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_schedules(app, pilot)
        table: DataTable[Any] = screen.query_one(DataTable)
        assert table.row_count == 1
        assert [str(c) for c in table.get_row_at(0)] == [
            "#1",
            "new_checkout",
            "10%",
            "0:10:00",
            "1/2",
            "alice",
            "slow ramp",
        ]
        text = screen_text(app)
        assert "#1 new_checkout: 10% → 20%" in text and "by alice@test" in text
        clock.now += 5
        screen.tick()  # what the 1 Hz timer calls
        assert str(table.get_row_at(0)[3]) == "0:09:55"
        await pilot.press("c")
        assert isinstance(app.screen, ReasonScreen)
        await pilot.press("enter")  # no reason: refused, still pending
        assert isinstance(app.screen, ReasonScreen)
        fill(app, "ramp no longer needed")
        await pilot.press("enter")
        await until(pilot, lambda: not engine.flag_schedules("production"), "the cancel")
        (canceled,) = engine.flag_schedules("production", active_only=False)
        assert str(canceled.state) == "canceled" and "ramp no longer needed" in canceled.ended_reason
        assert len(engine.flag_schedules("staging")) == 1
        await until(pilot, lambda: table.row_count == 0, "the list to empty")
        assert "No pending schedules in production" in screen_text(app)


@sync
async def test_new_schedule_from_the_console(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, clock=Clock())
    app = console(engine, environment="production")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_flags(app, pilot)
        await select(pilot, pane, "new_checkout")
        await pilot.press("s")
        await pilot.press("n")
        new = app.screen
        assert isinstance(new, FlagScheduleNewScreen)
        assert app.focused is not None and app.focused.id == "schedule-plan"  # the flag is filled in
        fill(app, "at +30m to 140%")
        await pilot.press("enter")
        assert app.focused is not None and app.focused.id == "reason"
        fill(app, "evening ramp")
        await pilot.press("enter")
        error = new.query_one("#error")
        await until(pilot, lambda: "140" in str(error.render()), "the engine's refusal of 140%")
        assert engine.flag_schedules("production") == []
        await pilot.press("shift+tab")
        fill(app, "from 0 to 50 over 1h in 2 steps")
        await pilot.press("enter")
        await until(pilot, lambda: engine.flag_schedules("production"), "the schedule")
        (made,) = engine.flag_schedules("production")
        assert [(s.at - MARCH, s.value) for s in made.steps] == [(0.0, 0), (1800.0, 25), (3600.0, 50)]
        assert made.reason == "evening ramp" and made.created_by == "alice"
        await until(pilot, lambda: isinstance(app.screen, FlagSchedulesScreen), "back to the list")
        table: DataTable[Any] = app.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 1, "the new row")


def test_plan_words() -> None:
    engine = make_engine(Path(tempfile.mkdtemp()))
    defn = engine.config.flags["new_checkout"]
    assert plan_steps(defn, "AT +1h TO 30%", MARCH) == ((MARCH + 3600, "30%"),)
    ramp = plan_steps(defn, "at +10m from 0 to 100 over 2h", MARCH)
    assert [s.value for s in ramp] == [0, 25, 50, 75, 100] and ramp[0].at == MARCH + 600
    for bad, words in (("soon", "say when and what"), ("at 25:00 to 5", "not a time of day")):
        try:
            plan_steps(defn, bad, MARCH)
        except ValueError as exc:
            assert words in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")


@sync
async def test_read_only_sees_schedules_but_not_the_keys_that_change_them(tmp_path: Path) -> None:
    writer = make_engine(tmp_path, clock=Clock())
    writer.schedule_flag("staging", "dark_mode", [(MARCH + 60, True)], "later")
    engine = make_engine(tmp_path, read_only=True, clock=Clock())
    app = console(engine, environment="staging")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_schedules(app, pilot)
        assert screen.query_one(DataTable).row_count == 1
        assert screen.check_action("cancel_schedule", ()) is False
        assert screen.check_action("schedule_flag", ()) is False
        await pilot.press("c", "n")
        assert app.screen is screen
        keys = str(screen.query_one("#flag-schedules-keys").render())
        assert "cancel" not in keys and "new" not in keys and "Esc back" in keys
        await pilot.press("escape")
        pane = app.panes["flags"]
        assert pane.check_action("explain_flag", ()) is True  # explaining changes nothing
        await pilot.press("x")
        assert isinstance(app.screen, FlagExplainScreen)
