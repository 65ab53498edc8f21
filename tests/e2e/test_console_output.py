"""What the console writes to a real 80x24 terminal while the demo rollout waits for approval:
only what changed. Every byte the program writes to its pseudo-terminal is counted, as an SSH
session would carry it (bench/tui_output.py measures every pane and dialog at two sizes)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.integration.conftest import REPO

pytestmark = pytest.mark.slow

LIMIT_BPS = 1000
"""bench/tui_output.py's target; before the fix the Rollouts pane wrote about 10,000 B/s here
(two horizontal scrollbar rows and the whole table every second) and the detail dialog 19,000."""
ESCAPES = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")


class Terminal:
    def __init__(self, argv: list[str], cols: int = 80, rows: int = 24) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTUAL")}
        env |= {"TERM": "xterm-256color", "COLORTERM": "truecolor"}
        for name in ("NO_COLOR", "COLUMNS", "LINES"):
            env.pop(name, None)
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, cwd=REPO, env=env, start_new_session=True
        )
        os.close(slave)
        self.data = bytearray()

    def read(self, seconds: float) -> bytes:
        start, deadline = len(self.data), time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                self.data += chunk
        return bytes(self.data[start:])

    def wait_for(self, text: str, since: int = 0, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while text not in ESCAPES.sub(b"", bytes(self.data[since:])).decode("utf-8", "replace"):
            assert time.monotonic() < deadline and self.proc.poll() is None, f"{text!r} never shown"
            self.read(0.1)

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.send("q")
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.close(self.master)


def test_the_console_writes_only_what_changed_while_a_rollout_waits(tmp_path: Path) -> None:
    term = Terminal([sys.executable, "-m", "opsconsole", "demo", "--workspace", str(tmp_path / "ws")])
    try:
        term.wait_for("awaiting_approval")
        term.read(2.0)
        rollouts = len(term.read(5.0)) / 5.0
        shown = len(term.data)
        term.send("\r")
        term.wait_for("Esc back", since=shown, seconds=15)
        term.read(2.0)
        detail = len(term.read(5.0)) / 5.0
    finally:
        term.close()
    assert rollouts <= LIMIT_BPS, f"Rollouts pane: {rollouts:.0f} B/s"
    assert detail <= LIMIT_BPS, f"detail dialog over it: {detail:.0f} B/s"
