"""Helpers for the leadership and kill-switch tests: a workspace on a fresh PostgreSQL database of
the session's server, engines as separate processes, and who leads as the server says."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opsconsole.demo.service import DemoService
from opsconsole.engine.leader import Holder, current_holder
from tests.integration.conftest import REPO, write_workspace
from tests.pg.server import PASSWORD, PgServer
from tests.store.conftest import fresh_pg_database

STEPS = [0, 20, 40, 60, 80, 100]
PLAN = f"""
name: steps
phases:
  - name: staging
    environment: staging
    flags: {{enable_new_checkout: true}}
    gates: [{{kind: health, url: "http://127.0.0.1:${{DEMO_PORT}}/health", timeout: 1s}}]
  - name: canary
    environment: production
    strategy: {{kind: canary, flag: new_checkout, steps: {STEPS}, step_wait: 1s}}
"""


def pg_workspace(tmp_path: Path, port: int, url: str) -> Path:
    """A workspace whose store is `url` (its password from PGPASSWORD, never in the URL). The
    server's login acts as bob (an operator): with a PostgreSQL store the person is the login."""
    ws = write_workspace(tmp_path, port, plan=PLAN, extra=f"store: {url}\n")
    login = url.split("://", 1)[1].split("@", 1)[0]
    path = ws / "opsconsole.yaml"
    text = path.read_text()
    path.write_text(text.replace("\n  users: {", f"\n  logins: {{{login}: bob}}\n  users: {{", 1))
    return ws


def new_database(server: PgServer) -> str:
    os.environ["PGPASSWORD"] = PASSWORD  # the engines' processes inherit it, as a deployment sets it
    return server.dsn(fresh_pg_database(server, "team"))


def start_engine(ws: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "opsconsole", "engine", "--workspace", str(ws), *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    """End an engine this test started (by its own pid) and return what it said."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out = proc.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate()[0]
    return out or ""


def holder(url: str) -> Holder | None:
    return current_holder(url, None, os.environ)


def leader_pid(url: str) -> int | None:
    """The OS pid of the leading engine, from its leader connection's application_name."""
    h = holder(url)
    if h is None:
        return None
    tail = h.name.rsplit("pid ", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else -1


def wait_for(predicate: Callable[[], Any], seconds: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached within {seconds:g} s")


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsconsole", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@contextmanager
def demo_service(tmp_path: Path) -> Iterator[DemoService]:
    """The demo's sample service, reading the workspace's production flag file (its health gate)."""
    svc = DemoService(tmp_path / "ws" / "flags" / "production.json", flag="new_checkout", port=0)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()
