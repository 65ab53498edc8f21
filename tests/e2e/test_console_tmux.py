"""The console in a real terminal: tmux at 80x24, keys sent as a person types them, the screen read
back, and the engine's files checked. This is issue 3's acceptance run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import REPO

pytestmark = pytest.mark.slow


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10, check=True).stdout


class Terminal:
    def __init__(self, command: str, width: int = 80, height: int = 24) -> None:
        self.name = f"oc-{uuid.uuid4().hex[:8]}"
        tmux(
            "new-session",
            "-d",
            "-s",
            self.name,
            "-x",
            str(width),
            "-y",
            str(height),
            f"cd {REPO} && TERM=xterm-256color {command}",
        )

    def screen(self) -> str:
        return tmux("capture-pane", "-p", "-t", self.name)

    def keys(self, *keys: str) -> None:
        tmux("send-keys", "-t", self.name, *keys)

    def type(self, text: str) -> None:
        tmux("send-keys", "-t", self.name, "-l", text)

    def wait_for(self, text: str, seconds: float = 30.0) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not on screen after {seconds}s:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True, timeout=10)


@pytest.fixture
def terminal():
    if shutil.which("tmux") is None:
        pytest.fail("tmux is required for the end-to-end console tests (make test installs it)")
    opened: list[Terminal] = []

    def open_terminal(command: str, **kw: int) -> Terminal:
        t = Terminal(command, **kw)
        opened.append(t)
        return t

    yield open_terminal
    for t in opened:
        t.close()


def opsconsole(*args: str) -> str:
    return f"{sys.executable} -m opsconsole {' '.join(args)}"


def engine_state(ws: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "opsconsole", "status", "--json", "--all", "--workspace", str(ws)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        check=True,
    ).stdout
    return json.loads(out)


def test_demo_console_approve_then_kill_switch(terminal, tmp_path):
    ws = tmp_path / "w"
    t = terminal(opsconsole("demo", "--workspace", str(ws)))
    t.wait_for("opsconsole │", seconds=20)  # first frame
    t.wait_for("awaiting", seconds=60)  # the demo rollout reaches its approval point
    t.keys("?")
    help_screen = t.wait_for("Approve")
    assert " a " in help_screen or "a  " in help_screen
    t.keys("Escape")
    time.sleep(0.3)
    t.keys("a")
    t.wait_for("reason for approving")
    t.type("canary looks healthy")
    t.keys("Enter")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rollouts = engine_state(ws)["rollouts"]
        if rollouts and rollouts[0]["phase"] == "production-canary":
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"approval did not move the rollout on:\n{t.screen()}")
    t.wait_for("production-c")

    flag_file = ws / "flags" / "production.json"
    t.keys("C-\\")
    t.wait_for("PULL THE KILL SWITCH")
    pressed = time.monotonic()
    t.keys("C-\\")
    while time.monotonic() - pressed < 5:
        doc = json.loads(flag_file.read_text())
        if doc["emergency_shutdown"] is True:
            break
        time.sleep(0.02)
    elapsed = time.monotonic() - pressed
    assert doc["emergency_shutdown"] is True and doc["flags"]["emergency_shutdown"]["enabled"] is True
    print(f"kill key -> flag file emergency_shutdown on: {elapsed * 1000:.0f} ms")
    assert elapsed <= 1.0, elapsed
    t.wait_for("KILL SWITCH ENGAGED")
    state = engine_state(ws)
    assert state["kill_switch"]["engaged"] is True
    assert all(r["state"] != "progressing" for r in state["rollouts"])


def test_read_only_console_shows_no_action_keys(terminal, tmp_path):
    ws = tmp_path / "w"
    ws.mkdir()
    from opsconsole.demo.run import write_demo_config

    write_demo_config(ws, 1)
    subprocess.run(
        [sys.executable, "-m", "opsconsole", "rollout", "start", "demo", "--workspace", str(ws)],
        check=True,
        capture_output=True,
        timeout=30,
        cwd=REPO,
    )
    t = terminal(opsconsole("--read-only", "--workspace", str(ws)))
    screen = t.wait_for("READ-ONLY", seconds=20)
    footer = screen.splitlines()[-1]
    for word in ("Approve", "Abort", "Rollback", "KILL"):
        assert word not in footer, footer
    t.keys("a")
    t.keys("C-\\")
    time.sleep(0.5)
    screen = t.screen()
    assert "reason for approving" not in screen and "PULL THE KILL SWITCH" not in screen
    state = engine_state(ws)
    assert state["kill_switch"]["engaged"] is False
    assert state["rollouts"][0]["state"] == "pending"  # a read-only console runs no runner
