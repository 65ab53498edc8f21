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


async def _settle(pilot: Any, predicate: Any, seconds: float = 8.0) -> None:
    for _ in range(int(seconds / 0.05)):
        await pilot.pause(0.05)
        if predicate():
            return
    raise AssertionError("condition not reached")


ACTIONS = {
    # key: (what the notification names, the state the rollout must be in for the key to apply)
    "z": ("Pause", S.PROGRESSING),
    "p": ("Promote", S.PROGRESSING),
    "r": ("Resume", S.PAUSED),
    "x": ("Abort", S.PROGRESSING),
    "b": ("Roll back", S.PROGRESSING),
}


async def _press_action(pilot: Any, app: OpsConsoleApp, rid: str, key: str) -> None:
    await _settle(pilot, lambda: rid in app.panes["rollouts"].rollouts)
    await pilot.press(key)
    await _settle(pilot, lambda: type(app.screen).__name__ == "ReasonScreen")
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
                await _settle(pilot, lambda: any("store busy" in m for m in _messages(app)))
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
    """Overwrite the root page of `table` with garbage, as a torn write or a bad disk would."""
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
            await _settle(pilot, lambda: any(title in m for m in _messages(app)))
            await pilot.pause(0.2)
            assert app.is_running
            r = engine.rollout(rid)
            return _messages(app), (r.state, r.version)

    messages, after = asyncio.run(run())
    failed = [m for m in messages if title in m]
    assert failed and "store" in failed[0] and "malformed" in failed[0], messages
    assert after == (state, version)
