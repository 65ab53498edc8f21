"""Fault injection as a user meets it: real processes, a real SQLite lock holder, a full filesystem
(a small tmpfs), metrics endpoints that hang or answer garbage, signals at awkward moments.

Every test here drives the product through its command line or a real engine process and asserts
on what is left behind: the flag files, the store and the audit log.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REPO, engine_as, load_ws, service, write_workspace  # noqa: F401

__all__ = ["REPO", "cli", "engine_as", "load_ws", "spawn", "wait_for", "write_workspace", "flag_file"]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.update(extra or {})
    return env


def cli(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """One `opsconsole` command in a real process, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "opsconsole", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=_env(env),
    )


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A long-running `opsconsole` process (an engine), output merged into stdout."""
    return subprocess.Popen(
        [sys.executable, "-m", "opsconsole", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(env),
    )


def wait_for(predicate: Callable[[], Any], seconds: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {seconds} s")


def flag_file(ws: Path, env: str = "production") -> dict[str, Any]:
    """The seed-schema flag file of an environment as a service would read it."""
    data: dict[str, Any] = json.loads((ws / "flags" / f"{env}.json").read_text())
    return data


_LOCK_HOLDER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
    print("released", flush=True)
    """
)


@contextlib.contextmanager
def sqlite_write_lock(db: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the store's write lock (BEGIN IMMEDIATE) for `seconds`, as a stuck
    writer or a long migration would. Yields once the lock is held; waits for release on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(db), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == "locked", f"lock holder did not start: {line!r}"
    try:
        yield proc
    finally:
        try:
            proc.wait(timeout=seconds + 10)
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a filesystem that fills up. Skipped, saying so, where mounting is refused
    (not root, or no mount namespace rights); in CI that skip is a failure."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    p = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if p.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs for the full-disk tests: {p.stderr.strip()}")
        pytest.skip(f"mounting a tmpfs was refused here ({p.stderr.strip()}): full-disk test not run")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(directory: Path, leave: int = 0) -> None:
    """Fill the filesystem holding `directory` until fewer than `leave` bytes are free."""
    chunk = b"\0" * 65536
    i = 0
    with contextlib.suppress(OSError):
        while True:
            st = os.statvfs(directory)
            free = st.f_bavail * st.f_frsize
            if free <= leave:
                break
            with open(directory / f"filler-{i}", "wb") as fh:
                fh.write(chunk[: max(1, min(len(chunk), free - leave))])
            i += 1


def kill_only_workspace(tmp_path: Path, extra: str = "") -> Path:
    """A workspace with one production flag file, no plans, this OS account as admin and a fast
    tick: for tests about the kill switch's own machinery (journal, notifications). `extra` is
    appended to the configuration (already indented for the top level)."""
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    ws = tmp_path / "ws"
    ws.mkdir()
    main = textwrap.dedent(
        f"""
        interval: 0.2s
        roles:
          default: viewer
          users: {{{me}: admin}}
        environments:
          production:
            flags: {{kind: file, path: "${{WORKSPACE}}/flags/production.json"}}
        plans: []
        flags: "{REPO}/config/flags.yaml"
        kill_switch:
          flags_off: [phase_4_deployment]
          flags_on: [emergency_shutdown]
        """
    )
    (ws / "opsconsole.yaml").write_text(main + extra)
    return ws
