"""Console actions meeting a store that really fails: another process holding SQLite's write lock, a
corrupted database page. The console keeps running, says what happened with the action's name, and
the store is left as it was."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from opsconsole.engine.core import Engine
from opsconsole.engine.model import RolloutState
from opsconsole.engine.runner import Runner
from opsconsole.tui.app import OpsConsoleApp
from tests.faults.conftest import sqlite_write_lock
from tests.integration.conftest import engine_as, write_workspace
from tests.tui.conftest import until

S = RolloutState
BUSY_MS = 300
"""The store's busy timeout in these tests: a locked store fails in 0.3 s rather than 5 s."""


@pytest.fixture(autouse=True)
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("opsconsole.engine.store.sqlite.BUSY_TIMEOUT_MS", BUSY_MS)


async def _tick_until(engine: Engine, rid: str, done: Any) -> None:
    runner = Runner(engine)
    try:
        for _ in range(60):
            await runner.tick()
            if done(engine.rollout(rid)):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(engine.rollout(rid).reason)
    finally:
        await runner.observer.close()


def _rollout_in(tmp_path: Path, port: int, state: RolloutState) -> tuple[Path, str]:
    """A workspace with one rollout of the test plan in `state`. A progressing one is in its canary
    phase with its guards evaluated, so that promote is not refused for want of evidence before it
    reaches the store."""
    ws = write_workspace(tmp_path, port)
    bob, alice = engine_as(ws, "bob"), engine_as(ws, "alice")
    rid = bob.start_rollout("fast", "pilot").id
    asyncio.run(_tick_until(bob, rid, lambda r: r.state is S.AWAITING_APPROVAL))
    alice.approve(rid, "staging is fine")
    asyncio.run(_tick_until(bob, rid, lambda r: r.state is S.PROGRESSING and r.verdicts))
    if state is S.PAUSED:
        bob.command(rid, "pause", "set up")
    assert bob.rollout(rid).state is state
    bob.close()
    alice.close()
    return ws, rid


def _store_path(ws: Path) -> Path:
    engine = engine_as(ws, "bob")
    try:
        return Path(engine.store.path)  # type: ignore[attr-defined]
    finally:
        engine.close()


def _snapshot(ws: Path, rid: str) -> tuple[Any, ...]:
    engine = engine_as(ws, "bob")
    try:
        r = engine.rollout(rid)
        return r.state, r.version, r.phase_index, len(engine.audit_events())
    finally:
        engine.close()


def _messages(app: OpsConsoleApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


ACTIONS = {
    # key: (what the notification names, the state the rollout must be in for the key to apply)
    "z": ("Pause", S.PROGRESSING),
    "p": ("Promote", S.PROGRESSING),
    "r": ("Resume", S.PAUSED),
    "x": ("Abort", S.PROGRESSING),
    "b": ("Roll back", S.PROGRESSING),
}


async def _press_action(pilot: Any, app: OpsConsoleApp, rid: str, key: str) -> None:
    await until(pilot, lambda: rid in app.panes["rollouts"].rollouts, seconds=8.0)
    await pilot.press(key)
    await until(pilot, lambda: type(app.screen).__name__ == "ReasonScreen", seconds=8.0)
    await pilot.press(*"store test", "enter")


@pytest.mark.parametrize("key", list(ACTIONS))
def test_an_action_on_a_locked_store_says_store_busy_and_the_console_keeps_running(
    tmp_path: Path, service: Any, key: str
) -> None:
    title, state = ACTIONS[key]
    ws, rid = _rollout_in(tmp_path, service.port, state)
    before = _snapshot(ws, rid)
    db = _store_path(ws)

    async def run() -> list[str]:
        app = OpsConsoleApp(engine_as(ws, "bob"), run_engine=False)
        async with app.run_test(size=(100, 30)) as pilot:
            with sqlite_write_lock(db, 3):
                await _press_action(pilot, app, rid, key)
                await until(pilot, lambda: any("store busy" in m for m in _messages(app)), seconds=8.0)
                assert app.is_running
                assert type(app.screen).__name__ != "ReasonScreen"
                await pilot.pause(0.2)
                assert app.is_running
            return _messages(app)

    messages = asyncio.run(run())
    busy = [m for m in messages if "store busy" in m]
    assert busy and title in busy[0] and rid in busy[0], messages
    assert "nothing was changed" in busy[0]
    assert _snapshot(ws, rid) == before


def _corrupt_table(db: Path, table: str) -> None:
    """Overwrite the root page of `table` (or index) with garbage, as a torn write or a bad disk would."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    with open(db, "r+b") as fh:
        fh.seek((root - 1) * size)
        fh.write(b"\xa5" * size)


@pytest.mark.parametrize("key", ["z", "x"])
def test_an_action_on_a_corrupted_database_page_is_reported_and_the_console_keeps_running(
    tmp_path: Path, service: Any, key: str
) -> None:
    title, _state = ACTIONS[key]
    ws, rid = _rollout_in(tmp_path, service.port, S.PROGRESSING)
    state, version, _phase, _events = _snapshot(ws, rid)
    db = _store_path(ws)
    _corrupt_table(db, "audit")  # the rollout reads fine; recording the command meets the bad page

    async def run() -> tuple[list[str], Any]:
        engine = engine_as(ws, "bob")
        app = OpsConsoleApp(engine, run_engine=False)
        async with app.run_test(size=(100, 30)) as pilot:
            await _press_action(pilot, app, rid, key)
            await until(pilot, lambda: any(title in m for m in _messages(app)), seconds=8.0)
            await pilot.pause(0.2)
            assert app.is_running
            r = engine.rollout(rid)
            return _messages(app), (r.state, r.version)

    messages, after = asyncio.run(run())
    failed = [m for m in messages if title in m]
    assert failed and "store" in failed[0] and "malformed" in failed[0], messages
    assert after == (state, version)


# ---------------------------------------------------------------------------- the other actions


def _text(widget: Any) -> str:
    return str(widget.render())


def test_start_plan_and_all_clear_on_a_locked_store_say_so(tmp_path: Path, service: Any) -> None:
    ws = write_workspace(tmp_path, service.port)
    db = _store_path(ws)

    async def run() -> None:
        alice = engine_as(ws, "alice")  # an approver: may start a plan and give the all-clear
        app = OpsConsoleApp(alice, run_engine=False)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: "rollouts" in app.panes, seconds=8.0)
            with sqlite_write_lock(db, 3):
                await pilot.press("n")
                await until(pilot, lambda: type(app.screen).__name__ == "StartPlanScreen", seconds=8.0)
                await pilot.press("enter")  # the highlighted plan
                await pilot.press(*"go", "enter")
                await until(pilot, lambda: any("Start fast" in m for m in _messages(app)), seconds=8.0)
                assert any("store busy" in m for m in _messages(app)), _messages(app)
                assert app.is_running
            bob = engine_as(ws, "bob")
            bob.kill("drill")
            await until(pilot, lambda: app.kill_engaged, seconds=8.0)  # the console's poll sees it
            with sqlite_write_lock(db, 3):
                await pilot.press("ctrl+backslash")
                screen = app.screen
                assert type(screen).__name__ == "KillSwitchScreen" and screen.engaged  # type: ignore[attr-defined]
                await pilot.press(*"drill over", "enter")
                error = screen.query_one("#error")
                await until(pilot, lambda: "store busy" in _text(error), seconds=8.0)
                assert "nothing was changed" in _text(error)
                assert app.is_running and app.screen is screen  # still open: try again or cancel
                assert not screen.busy  # type: ignore[attr-defined]
                await pilot.press("escape")

    asyncio.run(run())
    alice = engine_as(ws, "alice")
    assert alice.kill_state().engaged and alice.rollouts() == []


def test_flag_change_schedule_and_cancel_on_a_locked_store_say_so(tmp_path: Path) -> None:
    from tests.tui.conftest import console
    from tests.tui.test_flags_pane import MARCH, Clock, fill, make_engine, open_flags, select

    engine = make_engine(tmp_path, clock=Clock())
    engine.schedule_flag("production", "new_checkout", [(MARCH + 600, 10)], "slow ramp")
    db = Path(engine.store.path)  # type: ignore[attr-defined]
    before = engine.flag_states("production")["search_v2"]
    events = len(engine.audit_events())

    async def run() -> None:
        app = console(engine, environment="production")
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await open_flags(app, pilot)
            await select(pilot, pane, "search_v2")
            with sqlite_write_lock(db, 6):
                # a flag change: the dialog says so and stays open with what was typed
                await pilot.press("t")
                edit = app.screen
                assert type(edit).__name__ == "FlagEditScreen"
                fill(app, "try it")
                await pilot.press("enter")
                await until(pilot, lambda: "store busy" in _text(edit.query_one("#error")), seconds=8.0)
                assert app.is_running and app.screen is edit and not edit.busy  # type: ignore[attr-defined]
                await pilot.press("escape")
                # cancelling a schedule: a notification naming it
                await pilot.press("s")
                await until(pilot, lambda: type(app.screen).__name__ == "FlagSchedulesScreen", seconds=8.0)
                await until(pilot, lambda: bool(app.screen.schedules), seconds=8.0)  # type: ignore[attr-defined]
                await pilot.press("c")
                fill(app, "not needed")
                await pilot.press("enter")
                await until(
                    pilot, lambda: any("Cancel schedule #1" in m for m in _messages(app)), seconds=8.0
                )
                assert any("store busy" in m for m in _messages(app)), _messages(app)
                # a new schedule: said in its dialog
                await pilot.press("n")
                new = app.screen
                assert type(new).__name__ == "FlagScheduleNewScreen"
                fill(app, "at +30m to true")  # search_v2, the selected flag
                await pilot.press("enter")
                fill(app, "ramp")
                await pilot.press("enter")
                await until(pilot, lambda: "store busy" in _text(new.query_one("#error")), seconds=8.0)
                assert app.is_running and app.screen is new
            await pilot.press("escape")

    asyncio.run(run())
    assert engine.flag_states("production")["search_v2"] == before
    assert len(engine.audit_events()) == events
    (only,) = engine.flag_schedules("production", active_only=False)
    assert str(only.state) != "canceled"


def test_a_corrupted_rollouts_table_is_reported_once_and_the_console_keeps_running(
    tmp_path: Path, service: Any
) -> None:
    ws, rid = _rollout_in(tmp_path, service.port, S.PROGRESSING)
    _corrupt_table(_store_path(ws), "rollouts")

    async def run() -> list[str]:
        app = OpsConsoleApp(engine_as(ws, "bob"), run_engine=False)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: any("Reading the rollouts" in m for m in _messages(app)), seconds=8.0)
            # the console's poll re-reads every second: the same failure is not notified again
            await pilot.pause(2.5)
            await pilot.press("2")
            await pilot.press("1")
            await pilot.pause(0.2)
            assert app.is_running
            return _messages(app)

    messages = asyncio.run(run())
    reads = [m for m in messages if "Reading the rollouts" in m]
    assert len(reads) == 1 and "store unavailable" in reads[0] and "malformed" in reads[0], messages


def test_the_kill_key_opens_its_dialog_when_the_kill_switch_state_cannot_be_read(
    tmp_path: Path, service: Any
) -> None:
    ws = write_workspace(tmp_path, service.port)
    engine_as(ws, "bob").close()  # the store and its tables exist
    # Where the kill switch's state lives: its table and the key index a lookup goes through.
    _corrupt_table(_store_path(ws), "kv")
    _corrupt_table(_store_path(ws), "sqlite_autoindex_kv_1")

    async def run() -> list[str]:
        app = OpsConsoleApp(engine_as(ws, "bob"), run_engine=False)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: any("kill switch state" in m for m in _messages(app)), seconds=8.0)
            await pilot.press("ctrl+backslash")
            await until(pilot, lambda: type(app.screen).__name__ == "KillSwitchScreen", seconds=8.0)
            await pilot.press("escape")
            await pilot.pause(0.2)
            assert app.is_running
            return _messages(app)

    messages = asyncio.run(run())
    assert any("store unavailable" in m and "malformed" in m for m in messages), messages


def test_approve_on_a_locked_store_says_so_in_its_dialog_and_enter_again_approves_once_free(
    tmp_path: Path, service: Any
) -> None:
    ws = write_workspace(tmp_path, service.port)
    bob = engine_as(ws, "bob")
    rid = bob.start_rollout("fast", "pilot").id
    asyncio.run(_tick_until(bob, rid, lambda r: r.state is S.AWAITING_APPROVAL))
    bob.close()
    db = _store_path(ws)

    async def run() -> None:
        alice = engine_as(ws, "alice")
        app = OpsConsoleApp(alice, run_engine=False)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: rid in app.panes["rollouts"].rollouts, seconds=8.0)
            await pilot.press("a")
            dialog = app.screen
            assert type(dialog).__name__ == "ApproveScreen"
            with sqlite_write_lock(db, 2):
                await pilot.press(*"gates green", "enter")
                error = dialog.query_one("#error")
                await until(pilot, lambda: "store busy" in _text(error), seconds=8.0)
                assert "nothing was changed" in _text(error) and app.screen is dialog
            assert alice.rollout(rid).state is S.AWAITING_APPROVAL
            await pilot.press("enter")  # the lock is gone: the same reason, sent again
            await until(pilot, lambda: app.screen is not dialog, seconds=8.0)
            assert alice.rollout(rid).state is S.PROGRESSING

    asyncio.run(run())
