"""The Rollouts pane and its modals driven by real keys; assertions on engine state, not pixels."""

from __future__ import annotations

import asyncio
import json

import pytest

from opsconsole.engine.core import Engine
from opsconsole.engine.model import Actor, RolloutState
from opsconsole.engine.runner import Runner
from opsconsole.tui.app import OpsConsoleApp
from opsconsole.tui.screens.approve import ApproveScreen
from opsconsole.tui.screens.killswitch import KillSwitchScreen
from tests.integration.conftest import engine_as, load_ws, write_workspace
from tests.tui.conftest import until

S = RolloutState


async def _to_approval(engine: Engine, rid: str) -> None:
    runner = Runner(engine)
    try:
        for _ in range(40):
            await runner.tick()
            if engine.rollout(rid).state is S.AWAITING_APPROVAL:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(engine.rollout(rid).reason)
    finally:
        await runner.observer.close()


@pytest.fixture
def awaiting(tmp_path, service):
    ws = write_workspace(tmp_path, service.port)
    bob = engine_as(ws, "bob")
    rid = bob.start_rollout("fast", "pilot").id
    asyncio.run(_to_approval(bob, rid))
    return ws, rid


def test_approve_with_reason_moves_the_rollout_on(awaiting):
    ws, rid = awaiting
    alice = engine_as(ws, "alice")

    async def run():
        app = OpsConsoleApp(alice, run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: rid in app.panes["rollouts"].rollouts)
            await pilot.press("a")
            assert isinstance(app.screen, ApproveScreen)
            await pilot.press("enter")  # an empty reason is refused in the modal
            assert isinstance(app.screen, ApproveScreen)
            await pilot.press(*"gates green")
            await pilot.press("enter")
            await until(pilot, lambda: not isinstance(app.screen, ApproveScreen))

    asyncio.run(run())
    r = alice.rollout(rid)
    assert r.phase_index == 1 and r.state is S.PROGRESSING
    approval = [e for e in alice.audit_events(target=f"rollout:{rid}") if e.action == "rollout.approval"]
    assert approval[0].actor == "alice" and approval[0].data["reason"] == "gates green"


def test_approval_refused_by_the_engine_says_why_and_stays_open(awaiting):
    ws, rid = awaiting
    bob = engine_as(ws, "bob")  # bob is an operator and started the rollout

    async def run():
        app = OpsConsoleApp(bob, run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: rid in app.panes["rollouts"].rollouts)
            assert not app.panes["rollouts"].check_action("approve", ())  # operators don't see it
            app.push_screen(ApproveScreen(bob.rollout(rid)))  # forged: the modal opened anyway
            await pilot.pause()
            await pilot.press(*"mine", "enter")
            await until(
                pilot, lambda: "refused" in str(app.screen.query_one("#error").render()), "the refusal"
            )
            assert isinstance(app.screen, ApproveScreen)

    asyncio.run(run())
    assert bob.rollout(rid).state is S.AWAITING_APPROVAL


def test_kill_switch_from_an_input_without_breaking_text_editing(awaiting):
    ws, rid = awaiting
    alice = engine_as(ws, "alice")

    async def run():
        app = OpsConsoleApp(alice, run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: rid in app.panes["rollouts"].rollouts)
            await pilot.press("a")
            reason = app.screen.query_one("#reason")
            await pilot.press(*"abc", "ctrl+a", "X")  # ctrl+a is Input's home: editing still works
            assert reason.value == "Xabc"
            await pilot.press("ctrl+backslash")
            assert isinstance(app.screen, KillSwitchScreen)
            await pilot.press("ctrl+backslash")  # the key again confirms
            await until(pilot, lambda: alice.kill_state().engaged)
            # the console itself shows it (the approval modal is still open on top)
            await until(pilot, lambda: app.screen_stack[0].has_class("-killed"))

    asyncio.run(run())
    doc = json.loads((ws / "flags" / "production.json").read_text())
    assert doc["emergency_shutdown"] is True
    assert alice.rollout(rid).state is S.ABORTED


def test_read_only_hides_actions_and_the_engine_refuses_forged_ones(awaiting):
    ws, rid = awaiting
    from opsconsole.engine import Forbidden

    root_ro = Engine(load_ws(ws), ws, Actor("root", "test"), read_only=True)

    async def run():
        app = OpsConsoleApp(root_ro, run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: rid in app.panes["rollouts"].rollouts)
            pane = app.panes["rollouts"]
            for action in (
                "approve",
                "promote",
                "pause",
                "abort",
                "rollback",
                "start_plan",
                "tick_checklist",
            ):
                assert not pane.check_action(action, ())
            assert not app.check_action("kill_switch", ())
            await pilot.press("a", "ctrl+backslash")
            assert not isinstance(app.screen, (ApproveScreen, KillSwitchScreen))
            shown = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled}
            assert "approve" not in shown and "kill_switch" not in shown

    asyncio.run(run())
    with pytest.raises(Forbidden):
        root_ro.approve(rid, "forged")
    with pytest.raises(Forbidden):
        root_ro.kill("forged")
    assert root_ro.rollout(rid).state is S.AWAITING_APPROVAL


def test_remote_text_in_dialogs_is_shown_literally(awaiting):
    ws, rid = awaiting
    from opsconsole.tui.screens.reason import ReasonScreen

    alice = engine_as(ws, "alice")

    async def run():
        app = OpsConsoleApp(alice, run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            app.push_screen(
                ReasonScreen("Abort [bold]x[/bold]\x1b[31m", hint="[link=http://evil]click[/link]")
            )
            await pilot.pause()
            title = str(app.screen.query_one(".dialog-title").render())
            hint = str(app.screen.query_one(".dialog-hint").render())
            assert "[bold]x[/bold]" in title and "\\x1b[31m" in title and "\x1b" not in title
            assert "[link=http://evil]click[/link]" in hint

    asyncio.run(run())
