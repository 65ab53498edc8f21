"""The console runs the runner itself when the workspace is free, and attaches as a client when
another engine holds it: never two runners on one workspace."""

from __future__ import annotations

import asyncio

from opsconsole.engine.runner import Runner
from opsconsole.tui.app import OpsConsoleApp
from tests.integration.conftest import engine_as, write_workspace


def test_console_runs_the_runner_when_the_workspace_is_free(tmp_path, service):
    ws = write_workspace(tmp_path, service.port)
    eng = engine_as(ws, "alice")

    async def run():
        app = OpsConsoleApp(eng)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.2)
            assert app.session.mode == "runner"
            assert Runner.holder(ws) is not None
        assert Runner.holder(ws) is None  # released on exit

    asyncio.run(run())


def test_console_attaches_when_another_engine_holds_the_workspace(tmp_path, service):
    ws = write_workspace(tmp_path, service.port)
    other = Runner(engine_as(ws, "bob"))
    other.acquire()
    try:
        eng = engine_as(ws, "alice")
        rid = engine_as(ws, "bob").start_rollout("fast").id

        async def run():
            app = OpsConsoleApp(eng)
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause(0.3)
                assert app.session.mode == "client"
                assert "engine: attached" in str(app.header.render())
                for _ in range(40):
                    await pilot.pause(0.05)
                    if rid in app.panes["rollouts"].rollouts:
                        break
                assert app.panes["rollouts"].rollouts[rid].state == "pending"  # nobody here advanced it

        asyncio.run(run())
    finally:
        other.release()
