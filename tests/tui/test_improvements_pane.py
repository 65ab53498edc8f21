"""The Improvements pane against the engine's store: real keys, then the engine's records asserted.

The queue is written into the real store (improvements_fixtures.py); approve, reject, batch and
rollback are pressed as a person would, and the test reads the outcome back from the engine.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from opsconsole.engine import StoreError
from opsconsole.engine.core import Engine
from opsconsole.engine.improvements.model import ImprovementStatus, Sample
from opsconsole.engine.session import Session
from opsconsole.tui.app import OpsConsoleApp
from opsconsole.tui.panes.improvements import SELECTED_MARK, ImprovementsPane
from opsconsole.tui.screens.improvement import ImprovementDecisionScreen, ImprovementDetailScreen
from tests.tui.conftest import console, engine_for, screen_text, sync, until
from tests.tui.improvements_fixtures import (
    NOW,
    agent_answered,
    hostile_item,
    improvements_workspace,
    queue,
    queue_item,
    seed_queue,
)

S = ImprovementStatus
SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_poll(self: Session) -> None:
        """Nothing polls: the tests decide when the engine changes."""

    monkeypatch.setattr(Session, "_poll", no_poll)
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
def ws(tmp_path: Path, quiet: None) -> Path:
    """Production's queue fed by an agent that is down (a closed port)."""
    return improvements_workspace(tmp_path)


@pytest.fixture
def file_ws(tmp_path: Path, quiet: None) -> Path:
    """Production's queue fed by a proposals file whose rollback command succeeds."""
    return improvements_workspace(tmp_path, "file")


def queue_engine(ws: Path, user: str = "alice", items: list[Any] | None = None, **kwargs: Any) -> Engine:
    engine = engine_for(ws, user, clock=lambda: NOW, **kwargs)
    if not engine.authz.read_only:
        agent_answered(engine)
    if items:
        seed_queue(engine, items)
    return engine


def pane_of(app: OpsConsoleApp) -> ImprovementsPane:
    return app.query_one(ImprovementsPane)


async def open_pane(pilot: Pilot[Any], count: int) -> ImprovementsPane:
    await pilot.press("4")
    pane = pane_of(pilot.app)  # type: ignore[arg-type]
    await until(pilot, lambda: len(pane.table.keys) == count, f"{count} rows")
    return pane


async def cursor_to(pilot: Pilot[Any], pane: ImprovementsPane, key: str) -> None:
    """Move the cursor with the down key until it is on `key`."""
    await pilot.press("home")
    for _ in range(len(pane.table.keys)):
        if pane.table.selected == key:
            return
        await pilot.press("down")
    raise AssertionError(f"{key} is not in the table")


async def type_reason(pilot: Pilot[Any], reason: str) -> None:
    for ch in reason:
        await pilot.press("space" if ch == " " else ch)
    await pilot.press("enter")


def status_of(engine: Engine, key: str) -> Any:
    return engine.improvement("production", key)


# ------------------------------------------------------------------------------------ the queue


@sync
async def test_the_queue_is_sorted_by_status_then_quality_with_the_mode_above(ws: Path) -> None:
    items = queue(16)
    engine = queue_engine(ws, items=items)
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 16)
        order = [i.id for i in engine.improvements("production")]
        assert pane.table.keys == order
        first = [pane.items[k].status for k in pane.table.keys[:2]]
        assert first == [S.MONITORING, S.MONITORING]
        text = screen_text(app)
        assert "mode: observation" in text and "not paused" in text and "live 2/2" in text
        assert "agent: ok" in text and "last sync 3m ago" in text and "next in 5h57m" in text
        assert "production" in text and "Qual" in text and "Tenant" in text
        assert not pane.table.show_horizontal_scrollbar


@sync
async def test_approve_with_a_reason(ws: Path) -> None:
    engine = queue_engine(ws, items=queue(8))
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 8)
        key = next(
            k
            for k in pane.table.keys
            if pane.items[k].status is S.PROPOSED and not engine.review_problems(pane.items[k])
        )
        await cursor_to(pilot, pane, key)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ImprovementDecisionScreen), "the dialog")
        await until(pilot, lambda: "No review problems" in screen_text(app), "the review check")
        await type_reason(pilot, "good idea")
        await until(pilot, lambda: status_of(engine, key).status is S.APPROVED, "approved")
        item = status_of(engine, key)
        assert item.reviewer == "alice" and item.reason == "good idea"
        await until(pilot, lambda: not isinstance(app.screen, ImprovementDecisionScreen), "dialog closed")
        await until(pilot, lambda: pane.items[key].status is S.APPROVED, "the row updated")


@sync
async def test_approving_under_the_threshold_says_an_admin_override_is_needed(ws: Path) -> None:
    engine = queue_engine(ws, items=queue(16))
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 16)
        key = next(
            k
            for k in pane.table.keys
            if pane.items[k].status is S.PROPOSED and engine.review_problems(pane.items[k])
        )
        await cursor_to(pilot, pane, key)
        await pilot.press("a")
        await until(pilot, lambda: "need an admin override" in screen_text(app), "the problems")
        assert "an admin must approve" in screen_text(app)
        await type_reason(pilot, "try")
        await until(pilot, lambda: "refused:" in screen_text(app), "the refusal inline")
        assert isinstance(app.screen, ImprovementDecisionScreen)  # stays open, reason kept
        assert status_of(engine, key).status is S.PROPOSED


@sync
async def test_reject_needs_a_reason(ws: Path) -> None:
    engine = queue_engine(ws, items=queue(8))
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 8)
        key = next(k for k in pane.table.keys if pane.items[k].status is S.PROPOSED)
        await cursor_to(pilot, pane, key)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ImprovementDecisionScreen), "the dialog")
        await pilot.press("enter")
        await until(pilot, lambda: "A reason is required" in screen_text(app), "reason required")
        assert status_of(engine, key).status is S.PROPOSED
        await type_reason(pilot, "not now")
        await until(pilot, lambda: status_of(engine, key).status is S.REJECTED, "rejected")
        assert status_of(engine, key).reason == "not now"


@sync
async def test_batch_review_rejects_every_selected_row_with_one_reason(ws: Path) -> None:
    engine = queue_engine(ws, items=queue(16))
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 16)
        proposed = [k for k in pane.table.keys if pane.items[k].status is S.PROPOSED][:3]
        for key in proposed:
            await cursor_to(pilot, pane, key)
            await pilot.press("space")
        assert pane.selection == set(proposed)
        await until(pilot, lambda: SELECTED_MARK in screen_text(app), "the selection marker")
        assert "3 selected" in screen_text(app)
        await cursor_to(pilot, pane, proposed[0])
        await pilot.press("space")  # toggles off again
        await pilot.press("space")
        await pilot.press("x")
        await until(pilot, lambda: "Reject 3 improvements" in screen_text(app), "the batch dialog")
        await type_reason(pilot, "batch")
        for key in proposed:
            await until(pilot, lambda key=key: status_of(engine, key).status is S.REJECTED, key)
        await until(pilot, lambda: not pane.selection, "selection cleared")
        untouched = [k for k in pane.table.keys if k not in proposed and pane.items[k].status is S.PROPOSED]
        assert untouched and all(status_of(engine, k).status is S.PROPOSED for k in untouched)


@sync
async def test_rollback_of_a_monitored_improvement(file_ws: Path) -> None:
    engine = queue_engine(file_ws, items=queue(8))
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 8)
        key = next(k for k in pane.table.keys if pane.items[k].status is S.MONITORING)
        await cursor_to(pilot, pane, key)
        await pilot.press("b")
        await until(pilot, lambda: f"Roll back {key}" in screen_text(app), "the rollback dialog")
        await type_reason(pilot, "p95 worse")
        await until(pilot, lambda: status_of(engine, key).status is S.ROLLED_BACK, "rolled back")
        assert status_of(engine, key).evidence.endswith(": p95 worse")


@sync
async def test_a_rollback_the_agent_refuses_is_shown_as_failed_never_as_done(ws: Path) -> None:
    """The agent is down: the engine records the rollback as failed, with the error; the row says
    failed and the line under the table carries the agent's error."""
    engine = queue_engine(ws, items=queue(8))
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 8)
        key = next(k for k in pane.table.keys if pane.items[k].status is S.MONITORING)
        await cursor_to(pilot, pane, key)
        await pilot.press("b")
        await until(pilot, lambda: f"Roll back {key}" in screen_text(app), "the rollback dialog")
        await type_reason(pilot, "p95 worse")
        await until(pilot, lambda: status_of(engine, key).status is S.FAILED, "failed", seconds=15)
        assert status_of(engine, key).error
        await until(pilot, lambda: not isinstance(app.screen, ImprovementDecisionScreen), "closed")
        await until(pilot, lambda: pane.items[key].status is S.FAILED, "the row updated")
        await cursor_to(pilot, pane, key)
        await until(pilot, lambda: "agent:" in screen_text(app).splitlines()[-2], "the error line")


@sync
async def test_a_busy_store_is_said_above_the_queue_and_the_console_goes_on(ws: Path) -> None:
    engine = queue_engine(ws, items=queue(4))
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 4)
        real = engine.improvements

        def locked(environment: str | None = None) -> list[Any]:
            raise StoreError("database is locked")

        engine.improvements = locked  # type: ignore[method-assign]
        engine.bus.publish("improvements", environment="production")
        await until(pilot, lambda: "store busy" in screen_text(app), "the store's state")
        assert "nothing was changed" in screen_text(app) and len(pane.table.keys) == 4
        engine.improvements = real  # type: ignore[method-assign]
        engine.bus.publish("improvements", environment="production")
        await until(pilot, lambda: "store busy" not in screen_text(app), "the line gone")


@sync
async def test_read_only_hides_the_actions(ws: Path) -> None:
    seed = queue_engine(ws, items=queue(8))
    seed.close()
    engine = queue_engine(ws, "root", read_only=True)
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 8)
        key = next(k for k in pane.table.keys if pane.items[k].status is S.PROPOSED)
        await cursor_to(pilot, pane, key)
        footer = screen_text(app).splitlines()[-1]
        assert "Approve" not in footer and "Reject" not in footer and "Rollback" not in footer
        for action in ("approve_improvement", "reject_improvement", "rollback_improvement"):
            assert pane.check_action(action, ()) is False
        await pilot.press("a", "x", "b")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ImprovementDecisionScreen)
        assert status_of(engine, key).status is S.PROPOSED


# ------------------------------------------------------------------------------------ untrusted text


@sync
async def test_agent_text_is_shown_escaped_never_interpreted(ws: Path) -> None:
    engine = queue_engine(ws, items=[hostile_item(), *queue(3)])
    app = console(engine)
    async with app.run_test(size=(160, 48)) as pilot:
        pane = await open_pane(pilot, 4)
        await cursor_to(pilot, pane, "imp-evil")
        text = screen_text(app)
        assert "[red]Evil[/red]" in text and "\\x1b]0;pwned\\x07" in text
        assert "\x1b" not in text and "\x07" not in text
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ImprovementDetailScreen), "the detail")
        await until(pilot, lambda: "more characters not shown" in screen_text(app), "the cut")
        screen = app.screen
        assert isinstance(screen, ImprovementDetailScreen)
        shown = str(screen.query_one("#improvement-description").render())
        assert "[bold]not bold[/bold]" in shown and "\\x1b]0;window title\\x07" in shown
        assert "\\x1b[2J" in shown and "\x1b" not in shown
        assert "more characters)" in shown  # the 5,000-character line is cut too
        assert len(shown) < 12_000
        assert "\x1b" not in screen_text(app)


# ------------------------------------------------------------------------------------ detail


@sync
async def test_detail_shows_thresholds_and_the_monitoring_chart(ws: Path) -> None:
    engine = queue_engine(ws, items=queue(8))
    app = console(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_pane(pilot, 8)
        key = next(k for k in pane.table.keys if pane.items[k].status is S.MONITORING)
        await cursor_to(pilot, pane, key)
        await pilot.press("enter")
        await until(pilot, lambda: "Review: " in screen_text(app) and "checking" not in screen_text(app))
        text = screen_text(app)
        assert "threshold 0.85" in text and "tolerance 0.10" in text
        assert "baseline 180" in text and "20m left of the monitoring window" in text
        assert "─ baseline" in text and "Decided by alice" in text
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ImprovementDetailScreen), "closed")

        # The same screen is pushed again for the next row: it must show that row, not the last.
        other = next(k for k in pane.table.keys if pane.items[k].status is S.PROPOSED)
        await cursor_to(pilot, pane, other)
        await pilot.press("enter")
        await until(pilot, lambda: f"Improvement {other}" in screen_text(app), "the other one")
        await until(pilot, lambda: "checking" not in screen_text(app), "its review")
        assert "baseline 180" not in screen_text(app) and "Decided by" not in screen_text(app)


@sync
async def test_the_pane_follows_engine_events(ws: Path) -> None:
    engine = queue_engine(ws, items=queue(6))
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 6)
        seed_queue(engine, [queue_item(100, S.PROPOSED)])
        engine.bus.publish("improvements", environment="production")
        await until(pilot, lambda: "imp-0100" in pane.table.keys, "the new row")

        # An event carrying the written item is shown as it is: a new sample, no reordering.
        key = next(k for k in pane.table.keys if pane.items[k].status is S.MONITORING)
        await cursor_to(pilot, pane, key)
        await pilot.press("enter")
        await until(pilot, lambda: "now 144.5" in screen_text(app), "the detail")
        item = engine.improvement("production", key)
        sampled = replace(item, observed=99.0, samples=(*item.samples, Sample(NOW, 99.0)))
        with engine.store.transaction() as tx:
            tx.update_improvement(sampled, item.version)
        written = engine.improvement("production", key)
        engine.bus.publish("improvements", environment="production", items=[written])
        await until(pilot, lambda: "now 99 " in screen_text(app), "the new sample in the open detail")
        assert pane.items[key].observed == 99.0


@sync
async def test_brackets_switch_between_the_environments_with_a_queue(ws: Path) -> None:
    engine = queue_engine(ws, items=[*queue(4), queue_item(7, S.PROPOSED, env="staging")])
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 4)
        assert "[ ] env" in screen_text(app)
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: pane.table.keys == ["imp-0007"], "staging's queue")
        assert pane.environment == "staging" and "staging · mode: observation" in screen_text(app)
        assert "live 0/1" in screen_text(app)
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: len(pane.table.keys) == 4, "production's queue again")


# ------------------------------------------------------------------------------------ snapshots


async def settle(pilot: Pilot[Any], done: Any, what: str) -> None:
    """Wait until `done()` holds and no worker is left running."""
    await until(pilot, lambda: done() and all(w.is_finished for w in pilot.app.workers), what)
    await pilot.pause()


@SIZES
def test_queue_snapshot(ws: Path, snap_compare: Any, size: tuple[int, int]) -> None:
    """Improvements pane ("4") on production, the clock fixed: the header says "mode: observation ·
    not paused · live 5/2 · 2 selected" and the dim hint "[ ] env" (staging has a queue too); "agent: ok · last sync 3m ago · next in 5h57m · agent
    http://127.0.0.1:9/mcp"; the queue below, monitoring rows first (best quality first), then
    approved, then proposed; the hostile proposal's title reads literally "[red]Evil[/red]
    \\x1b]0;pwned\\x07 ..." (escaped, not red); two rows marked ● (selected); no horizontal
    scrollbar, long titles end in "…"; under the table the cursor row's full title and "by alice:
    looks right"; the footer: KILL, Approve, Reject, Select, Rollback, Help, Quit."""
    engine = queue_engine(ws, items=[hostile_item(), *queue(40)])
    app = console(engine)

    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.press("4")
        pane = pane_of(app)
        await settle(pilot, lambda: len(pane.table.keys) == 41, "rows")
        await pilot.press("down", "space", "down", "space", "up")
        await settle(pilot, lambda: len(pane.selection) == 2, "selection")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
def test_detail_snapshot(ws: Path, snap_compare: Any, size: tuple[int, int]) -> None:
    """The detail of imp-0012, the first monitored improvement (Enter on it): its title, "monitoring
    · tuning · tenant meetmind · component checkout · from the agent", the prediction (-20%, lower is
    better), "quality 0.75 under the threshold 0.85" in yellow · "risk 0.00 within the tolerance
    0.10", "Review: needs an admin override: quality 0.75 is under the threshold 0.85", decided by
    alice: looks right, the proposed and deployed times; then "Monitoring quantile(...)", "baseline
    180 · now 144.5 (-19.7%) · rolled back when 10% higher · 20m left of the monitoring window" and
    the chart: 30 samples spread over the width, bars falling away below the baseline line `─` (the
    metric improved). At 80x24 the chart's lower rows and the description are below the fold."""
    engine = queue_engine(ws, items=queue(16))
    app = console(engine)

    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.press("4")
        pane = pane_of(app)
        await settle(pilot, lambda: len(pane.table.keys) == 16, "rows")
        await pilot.press("enter")
        await settle(
            pilot, lambda: "Decided by" in screen_text(app) and "checking" not in screen_text(app), "detail"
        )

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@sync
async def test_the_kill_switch_pause_shows_above_the_queue_until_the_all_clear(ws: Path) -> None:
    engine = queue_engine(ws, items=queue(4))
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 4)
        line = pane.query_one("#improvements-paused")
        assert not line.display and "not paused" in screen_text(app)
        await asyncio.to_thread(engine.kill, "drill")
        await until(pilot, lambda: line.display and "PAUSED" in screen_text(app), "the pause")
        assert "Paused by the kill switch" in screen_text(app)
        await asyncio.to_thread(engine.all_clear, "over")
        await until(pilot, lambda: not line.display and "not paused" in screen_text(app), "lifted")


@sync
async def test_sync_now_asks_the_source_and_says_what_came_of_it(ws: Path) -> None:
    """The agent is down: the sync's failure is said in words; the console goes on."""
    engine = queue_engine(ws, items=queue(4))
    app = console(engine)
    notes: list[str] = []
    notify = app.notify

    def record(message: str, **kwargs: Any) -> None:
        notes.append(message)
        notify(message, **kwargs)

    app.notify = record  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await open_pane(pilot, 4)
        await pilot.press("s")
        await until(pilot, lambda: any(n.startswith("Sync of production") for n in notes), "the result", 15)
        said = next(n for n in notes if n.startswith("Sync of production"))
        assert "failed:" in said and "production" in said


@sync
async def test_a_key_on_an_item_it_does_not_apply_to_says_why(ws: Path) -> None:
    """The list re-sorts as items move (the cursor follows its item): `a` on a kept improvement must
    say why nothing opens, not look like a dead console."""
    engine = queue_engine(ws, items=queue(8))
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 8)
        key = next(k for k in pane.table.keys if pane.items[k].status is not S.PROPOSED)
        await cursor_to(pilot, pane, key)
        await pilot.press("a")
        await until(
            pilot, lambda: any("applies to proposed" in n.message for n in app._notifications), "the reason"
        )
        assert not isinstance(app.screen, ImprovementDecisionScreen)


@sync
async def test_the_line_under_the_table_follows_a_change_to_the_item_under_the_cursor(ws: Path) -> None:
    engine = queue_engine(ws, items=queue(8))
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 8)
        key = next(k for k in pane.table.keys if pane.items[k].status is S.PROPOSED)
        await cursor_to(pilot, pane, key)
        line = pane.query_one("#improvement-line")
        await until(pilot, lambda: "proposed" in str(line.render()), "the line describes the row")
        engine.reject_improvements("production", [key], "not now")  # as another console would
        await until(pilot, lambda: "rejected" in str(line.render()), "the line follows the change")
