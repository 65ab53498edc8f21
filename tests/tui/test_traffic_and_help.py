"""What the Rollouts pane says a stopped rollout's new version gets, the tables fitting their width,
and the kill switch heading the help on every pane and dialog."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import DataTable

from opsconsole import engine as facade
from opsconsole.engine import rollout_row
from opsconsole.engine.core import Engine
from opsconsole.engine.model import RolloutState
from opsconsole.engine.runner import Runner
from opsconsole.tui.app import OpsConsoleApp
from opsconsole.tui.screens.detail import RolloutDetailScreen
from opsconsole.tui.screens.help import HelpScreen
from tests.integration.conftest import engine_as
from tests.tui.conftest import until
from tests.tui.test_rollouts_pane import awaiting  # noqa: F401 - the fixture

S = RolloutState
KILL_FIRST = "Emergency: ^\\ KILL"


async def _to_half(engine: Engine, rid: str) -> None:
    """Approve the staging phase, then tick until the production canary is at its 50% step."""
    engine.approve(rid, "staging looks fine")
    runner = Runner(engine)
    try:
        for _ in range(200):
            await runner.tick()
            r = engine.rollout(rid)
            if r.phase_index == 1 and r.step_index == 1:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"never reached 50%: {r.state} {r.reason}")
    finally:
        await runner.observer.close()


@pytest.fixture
def at_half(awaiting: tuple[Path, str]) -> tuple[Path, str]:  # noqa: F811
    ws, rid = awaiting
    asyncio.run(_to_half(engine_as(ws, "alice"), rid))
    return ws, rid


def _pct_cell(app: OpsConsoleApp, rid: str) -> str:
    table = app.panes["rollouts"].query_one("#rollout-table", DataTable)
    return str(table.get_cell(rid, "pct"))


@pytest.mark.parametrize("stop", ["abort", "kill"])
def test_a_stopped_rollout_shows_the_traffic_its_new_version_gets_now(at_half, stop: str) -> None:
    ws, rid = at_half
    alice = engine_as(ws, "alice")
    assert rollout_row(alice, alice.rollout(rid))["percent"] == 50

    async def run() -> None:
        app = OpsConsoleApp(alice, run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: rid in app.panes["rollouts"].rollouts)
            assert _pct_cell(app, rid) == "50"
            if stop == "abort":
                await pilot.press("x")
                await pilot.press(*"bad canary", "enter")
            else:
                await pilot.press("ctrl+backslash", "ctrl+backslash")
            await until(pilot, lambda: _pct_cell(app, rid) == "0% (was 50%)")
            why = str(app.panes["rollouts"].query_one("#rollout-head").render())
            assert "0% (was 50%)" in why

    asyncio.run(run())
    r = alice.rollout(rid)
    assert r.state is S.ABORTED
    row = rollout_row(alice, r)
    assert (row["percent"], row["traffic"], facade.traffic_text(row)) == (50, 0, "0% (was 50%)")

    async def reopened() -> None:  # a console opened afterwards reads it the same way
        app = OpsConsoleApp(engine_as(ws, "alice"), run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: rid in app.panes["rollouts"].rollouts)
            assert _pct_cell(app, rid) == "0% (was 50%)"

    asyncio.run(reopened())


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_rollout_tables_fit_the_width_and_cut_long_text_with_an_ellipsis(awaiting, size) -> None:  # noqa: F811
    ws, rid = awaiting
    alice = engine_as(ws, "alice")
    long_reason = "waiting for the payments team to confirm the settlement batch " * 4
    alice.command(rid, "pause", long_reason)

    async def run() -> None:
        app = OpsConsoleApp(alice, run_engine=False)
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: rid in app.panes["rollouts"].rollouts)
            await pilot.pause(0.2)
            pane = app.panes["rollouts"]
            shown_tables = [t for t in pane.query(DataTable) if t.display]  # the Docker section: none here
            assert {t.id for t in shown_tables} >= {"rollout-table"}
            for table in shown_tables:
                assert not table.show_horizontal_scrollbar, table.id
                assert table.virtual_size.width <= table.size.width, table.id
            table = pane.query_one("#rollout-table", DataTable)
            shown = app.screen._compositor.render_update(full=True)  # what the terminal gets
            assert shown is not None
            line = next(s for s in _lines(app) if rid[:8] in s)
            assert line.rstrip().endswith("…"), line
            assert str(table.get_cell(rid, "why")).startswith("waiting for the payments")  # kept whole
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, RolloutDetailScreen))
            await pilot.pause(0.3)
            timeline = app.screen.query_one("#timeline", DataTable)
            assert timeline.row_count > 0
            assert not timeline.show_horizontal_scrollbar
            assert timeline.virtual_size.width <= timeline.size.width

    asyncio.run(run())


def _lines(app: OpsConsoleApp) -> list[str]:
    width, height = app.size
    strips = app.screen._compositor.render_strips()
    return ["".join(seg.text for seg in strip) for strip in strips[:height]]


@pytest.mark.parametrize("where", ["1", "2", "3", "4", "5", "detail"])
def test_help_opens_with_the_kill_switch_and_how_to_confirm_it(awaiting, where: str) -> None:  # noqa: F811
    ws, rid = awaiting
    alice = engine_as(ws, "alice")

    async def run() -> None:
        app = OpsConsoleApp(alice, run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: rid in app.panes["rollouts"].rollouts)
            if where == "detail":
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, RolloutDetailScreen))
            else:
                await pilot.press(where)
                await pilot.pause(0.2)
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            lines = app.screen.lines()
            assert lines[0].startswith(KILL_FIRST), lines[:3]
            assert "again or Enter" in lines[0]
            assert sum("KILL" in line for line in lines) == 1
            await pilot.pause(0.1)
            body = [s.strip() for s in _lines(app) if s.strip(" │┃▌▐█▎▊▋▍▏▕")]
            first = next(i for i, s in enumerate(body) if "Keys" in s)
            assert "KILL" in body[first + 1], body[first : first + 3]

    asyncio.run(run())
