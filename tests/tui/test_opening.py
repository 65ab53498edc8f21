"""The console paints before the engine is open: the header says so, the kill key already works (its
confirmation opens once the engine can act), and a configuration that cannot be read ends the app
with that error for the CLI to report (exit 2), the screen restored."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from opsconsole.cli import main
from opsconsole.engine.config import ConfigError
from opsconsole.tui.app import OpsConsoleApp
from opsconsole.tui.screens.killswitch import KillSwitchScreen
from tests.integration.conftest import engine_as, write_workspace
from tests.tui.conftest import until


def gated_opener(ws: Path, user: str = "alice"):
    """An opener that waits until the test lets it open: the 'still opening' state, held still."""
    release = threading.Event()

    def open_engine():
        assert release.wait(10)
        return engine_as(ws, user)

    return open_engine, release


def test_first_frame_before_the_engine_then_the_panes(tmp_path):
    ws = write_workspace(tmp_path, port=9)
    opener, release = gated_opener(ws)

    async def run():
        app = OpsConsoleApp(opener=opener, run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.1)
            header = str(app.header.render())
            assert "engine: opening" in header and "kill: unknown until open" in header
            assert app.panes == {} and not app.opened
            assert not app.check_action("approve", ())  # nothing that changes state until it is open
            await pilot.press("1")  # a pane key before the panes exist does nothing, and no error
            release.set()
            await until(pilot, lambda: "rollouts" in app.panes and app.panes["rollouts"].is_mounted)
            await until(pilot, lambda: "kill: off" in str(app.header.render()))
            assert not app.query("#opening")
            assert app.engine.actor.user == "alice"

    asyncio.run(run())


def test_panes_after_the_first_load_once_the_rollouts_are_shown(tmp_path):
    """Only the Rollouts pane is in the first frames; a pane key pressed before its module loaded
    shows that pane once it is there."""
    ws = write_workspace(tmp_path, port=9)
    opener, release = gated_opener(ws)

    async def run():
        app = OpsConsoleApp(opener=opener, run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            # the first frame's Rollouts pane is swapped for the real one right after the first
            # paint: under load that may take longer than a fixed pause
            await until(pilot, lambda: app.query_one("#rollouts").has_focus_within)
            release.set()
            await until(pilot, lambda: "rollouts" in app.panes)
            app.action_show_pane("flags")  # whether or not the Flags pane has loaded yet
            # What is checked is that the pane shows once loaded, not how fast (bench/ measures
            # that): a CI run beside the daemon suites once needed more than 5 s here.
            await until(pilot, lambda: len(app.panes) == 5, "the other panes loaded", seconds=20)
            await until(
                pilot, lambda: app.panes["flags"].has_focus_within, "the Flags pane shown", seconds=20
            )

    asyncio.run(run())


def test_kill_key_while_opening_asks_for_confirmation_once_open(tmp_path):
    ws = write_workspace(tmp_path, port=9)
    opener, release = gated_opener(ws)

    async def run():
        app = OpsConsoleApp(opener=opener, run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.1)
            await pilot.press("ctrl+backslash")
            assert not isinstance(app.screen, KillSwitchScreen)  # no engine to act yet
            release.set()
            await until(pilot, lambda: isinstance(app.screen, KillSwitchScreen))
            await pilot.press("ctrl+backslash")  # the confirmation
            await until(pilot, lambda: app.engine.kill_state().engaged)

    asyncio.run(run())


def test_a_bad_configuration_ends_the_app_with_its_error(tmp_path):
    def broken():
        raise ConfigError(["opsconsole.yaml:3: plans: unknown key 'plnas'"])

    async def run():
        app = OpsConsoleApp(opener=broken, run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.load_error is not None)
        return app

    app = asyncio.run(run())
    assert isinstance(app.load_error, ConfigError)
    assert app.return_code == 2


def test_cli_console_reports_a_config_error_with_exit_2(tmp_path, capsys, monkeypatch):
    """`opsconsole` with a broken config: the same message and exit code as every other command."""
    ws = write_workspace(tmp_path, port=9)
    (ws / "bad.yaml").write_text("plans: [\n")
    monkeypatch.setattr(OpsConsoleApp, "run", _run_headless)
    assert main(["--config", str(ws / "bad.yaml"), "--workspace", str(ws)]) == 2
    err = capsys.readouterr().err
    assert "configuration errors" in err and "bad.yaml" in err


def _run_headless(self: OpsConsoleApp, *args: object, **kwargs: object) -> None:
    async def run() -> None:
        async with self.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: self.load_error is not None)

    asyncio.run(run())


@pytest.mark.parametrize("both", [True, False])
def test_needs_exactly_one_of_engine_and_opener(tmp_path, both):
    ws = write_workspace(tmp_path, port=9)
    with pytest.raises(TypeError):
        if both:
            OpsConsoleApp(engine_as(ws, "alice"), opener=lambda: None)
        else:
            OpsConsoleApp()
