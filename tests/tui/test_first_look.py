"""The console's first frame shows the rollouts the store reader vouches for (engine/firstlook.py),
before the engine is open; the engine then takes the table over (a row the engine does not list
goes), and the kill key works throughout as while opening."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from opsconsole.engine import read_first_look, save_first_look
from opsconsole.engine.firstlook import FirstLook
from opsconsole.tui.app import OpsConsoleApp
from opsconsole.tui.screens.killswitch import KillSwitchScreen
from opsconsole.tui.widgets.fitted_table import FittedTable
from tests.integration.conftest import engine_as, write_workspace
from tests.tui.conftest import screen_text, until


def _workspace(tmp_path: Path) -> tuple[Path, str]:
    """A workspace with one rollout and the first-look cache an earlier console left."""
    ws = write_workspace(tmp_path, port=9)
    engine = engine_as(ws, "alice")
    rid = engine.start_rollout("fast", "test").id
    save_first_look(engine)
    engine.close()
    return ws, rid


def _gated(ws: Path):  # type: ignore[no-untyped-def]
    release = threading.Event()

    def open_engine():  # type: ignore[no-untyped-def]
        assert release.wait(10)
        return engine_as(ws, "alice")

    return open_engine, release


def _look(ws: Path) -> FirstLook | None:
    return read_first_look(ws / "opsconsole.yaml", ws)


def test_the_first_frame_shows_the_stored_rollouts_then_the_engines(tmp_path: Path) -> None:
    ws, rid = _workspace(tmp_path)
    assert _look(ws) is not None
    opener, release = _gated(ws)

    async def run() -> None:
        app = OpsConsoleApp(opener=opener, look=lambda: _look(ws), run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            # The engine cannot open before release: whenever the row shows, it is the first look's
            # (a fixed pause here once fell short on a loaded CI machine).
            await until(pilot, lambda: rid in screen_text(app), "the stored rollout in the first frame")
            text = screen_text(app)
            assert not app.opened and "engine: opening" in text  # the header claims nothing more
            assert "pending" in text and "waiting for the engine" in text
            assert not app.check_action("approve", ())  # no action on the rows until the engine
            # The rollout goes before the engine opens: the engine's table is what stays.
            with sqlite3.connect(ws / "state.db") as conn:
                conn.execute("DELETE FROM rollouts WHERE id = ?", (rid,))
            release.set()
            await until(pilot, lambda: "rollouts" in app.panes and app.opened)
            table = app.query_one("#rollout-table", FittedTable)
            await until(pilot, lambda: table.row_count == 0, "the previewed row dropped")
            await until(pilot, lambda: "No rollouts yet" in screen_text(app))

    asyncio.run(run())


def test_the_engine_takes_over_the_same_rows(tmp_path: Path) -> None:
    ws, rid = _workspace(tmp_path)
    opener, release = _gated(ws)

    async def run() -> None:
        app = OpsConsoleApp(opener=opener, look=lambda: _look(ws), run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            # The first frame's tab strip gives way to the real tabs in one repaint (nothing is
            # painted in between, but the screen read here could be taken in between).
            await until(pilot, lambda: app._tabs_ready)
            await pilot.pause(0.1)
            before = screen_text(app).splitlines()[2:]  # below the header and the tabs
            release.set()
            await until(pilot, lambda: app.opened and rid in app.panes["rollouts"].rollouts)  # type: ignore[attr-defined]
            await pilot.pause(0.1)
            after = screen_text(app).splitlines()[2:]
            assert before[:-1] == after[:-1]  # the key bar gains the rollout's keys
            assert app.check_action("pause", ()) is True

    asyncio.run(run())


def test_the_kill_key_in_the_first_frame(tmp_path: Path) -> None:
    ws, _rid = _workspace(tmp_path)
    opener, release = _gated(ws)

    async def run() -> None:
        app = OpsConsoleApp(opener=opener, look=lambda: _look(ws), run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.1)
            await pilot.press("ctrl+backslash")
            assert not isinstance(app.screen, KillSwitchScreen)  # no engine to act yet
            release.set()
            await until(pilot, lambda: isinstance(app.screen, KillSwitchScreen))
            await pilot.press("ctrl+backslash")
            await until(pilot, lambda: app.engine.kill_state().engaged)

    asyncio.run(run())
