"""SIGTERM and SIGHUP to the console in a real terminal (tmux): the terminal is left as it was found
(out of the alternate screen, cursor shown, mouse reporting off) and the engine lock the console's
runner held is free."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsconsole.engine.runner import Runner
from tests.e2e.test_console_tmux import opsconsole, terminal, tmux  # noqa: F401 - terminal: fixture
from tests.integration.conftest import REPO

pytestmark = pytest.mark.slow


def _workspace(tmp_path: Path) -> Path:
    from opsconsole.demo.run import write_demo_config

    ws = tmp_path / "w"
    ws.mkdir()
    write_demo_config(ws, 1)
    subprocess.run(
        [sys.executable, "-m", "opsconsole", "rollout", "start", "demo", "--workspace", str(ws)],
        check=True,
        capture_output=True,
        timeout=30,
        cwd=REPO,
    )
    return ws


def _pane(t: object, fmt: str) -> str:
    return tmux("display-message", "-p", "-t", t.name, fmt).strip()  # type: ignore[attr-defined]


def _wait(predicate, seconds: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {seconds} s")


@pytest.mark.parametrize(
    "command,sig",
    [("console", signal.SIGTERM), ("console", signal.SIGHUP), ("demo", signal.SIGTERM)],
    ids=["console-SIGTERM", "console-SIGHUP", "demo-SIGTERM"],
)
def test_a_signal_restores_the_terminal_and_frees_the_engine_lock(terminal, tmp_path, command, sig):  # noqa: F811
    if command == "demo":
        ws = tmp_path / "w"
        args = ["demo", "--workspace", str(ws)]
    else:
        ws = _workspace(tmp_path)
        args = ["--workspace", str(ws)]
    # The shell stays after the console ends, so the pane's modes can be read back.
    t = terminal(f"{opsconsole(*args)}; echo console-exit=$?; sleep 120")
    t.wait_for("opsconsole │", seconds=30)
    t.wait_for("demo-", seconds=30)  # the panes are there
    # A positive pid only: holder() says -1 while the lock is taken but the pid not yet written, and
    # os.kill(-1, sig) signals every process there is (as root in CI: make, the shell, the runner).
    pid = _wait(lambda: max(Runner.holder(ws) or 0, 0), 20, "the console's runner writing its pid")
    assert pid > 0
    assert _pane(t, "#{alternate_on}") == "1"
    os.kill(pid, sig)
    screen = t.wait_for("console-exit=", seconds=20)
    code = screen.split("console-exit=")[1].split()[0]
    assert code in ("0", str(128 + sig)), screen
    assert _pane(t, "#{alternate_on}") == "0", screen
    assert _pane(t, "#{cursor_flag}") == "1"
    assert _pane(t, "#{mouse_any_flag}#{mouse_button_flag}#{mouse_standard_flag}#{mouse_sgr_flag}") == "0000"
    assert Runner.holder(ws) is None
