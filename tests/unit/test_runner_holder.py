"""Runner.holder(): who holds a workspace's lock file. Never a pid to signal unless one was written:
CI once ran `os.kill(Runner.holder(ws), SIGHUP)` while the holder had taken the lock but not yet
written its pid, holder() said -1, and os.kill(-1) hung up every process on the machine."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from opsconsole.engine.runner import Runner


def _hold(path: Path) -> int:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file description: a second holder
    return fd


def test_nobody_holds_an_absent_or_free_lock(tmp_path: Path) -> None:
    assert Runner.holder(tmp_path) is None
    (tmp_path / "engine.lock").write_text("123")
    assert Runner.holder(tmp_path) is None


def test_a_pid_written_just_after_the_lock_is_the_answer(tmp_path: Path) -> None:
    fd = _hold(tmp_path / "engine.lock")
    try:
        timer = threading.Timer(0.02, lambda: os.pwrite(fd, b"4242", 0))
        timer.start()
        assert Runner.holder(tmp_path) == 4242
        timer.join()
    finally:
        os.close(fd)


def test_a_held_lock_without_a_pid_says_so_and_is_no_pid(tmp_path: Path) -> None:
    fd = _hold(tmp_path / "engine.lock")
    try:
        started = time.monotonic()
        assert Runner.holder(tmp_path) == -1
        assert time.monotonic() - started < 1.0  # a bounded wait for the pid, not a hang
    finally:
        os.close(fd)
