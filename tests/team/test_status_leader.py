"""On PostgreSQL, `opsconsole status` and the schedules' "no engine runs" note ask the database who
leads (the session holding leader.LEADER_LOCK in pg_locks), not the workspace's lock file: the leading
engine may run on another host, and on PostgreSQL no engine takes the lock file at all. Here the test
process itself holds leadership, as an engine's Leadership does."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from opsconsole.engine.leader import Leadership, WhoRuns
from tests.integration.conftest import REPO
from tests.pg.server import PgServer

from .leader_support import new_database
from .live_support import write_workspace


def run(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsconsole", *args, "--workspace", str(ws)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=dict(os.environ),  # PGPASSWORD, set by new_database
    )


def status(ws: Path) -> dict[str, object]:
    p = run(ws, "status", "--json")
    assert p.returncode == 0, p.stderr
    engine: dict[str, object] = json.loads(p.stdout)["engine"]
    return engine


def test_status_and_the_schedules_note_ask_the_database_who_leads(
    tmp_path: Path, pg_server: PgServer
) -> None:
    url = new_database(pg_server)
    ws = tmp_path / "ws"
    write_workspace(ws, url)
    assert not (ws / "engine.lock").exists()

    assert status(ws) == {
        "running": False,
        "pid": None,
        "leader": None,
        "state": "stopped",
        "since": None,
        "since_epoch": None,
        "error": "",
    }
    text = run(ws, "status")
    assert "engine: not running (no engine holds leadership on the store;" in text.stdout, text.stdout
    p = run(
        ws,
        "flags",
        "schedule",
        "dark_mode",
        "--env",
        "staging",
        "--at",
        "+1h",
        "--to",
        "true",
        "--reason",
        "r",
    )
    assert p.returncode == 0, p.stderr
    assert "note: no engine holds leadership on this store" in p.stderr, p.stderr

    leader = Leadership(url, None, os.environ)
    try:
        assert leader.try_acquire()
        me = f"{socket.gethostname()} pid {os.getpid()}"
        engine = status(ws)
        assert (engine["running"], engine["pid"], engine["leader"], engine["state"]) == (
            True,
            os.getpid(),
            me,
            "running",
        ), engine
        text = run(ws, "status")
        assert f"engine: running (leader: {me})" in text.stdout, text.stdout
        p = run(
            ws,
            "flags",
            "schedule",
            "search_v2",
            "--env",
            "staging",
            "--at",
            "+1h",
            "--to",
            "true",
            "--reason",
            "r",
        )
        assert p.returncode == 0, p.stderr
        assert "note:" not in p.stderr, p.stderr
    finally:
        leader.release()
    assert status(ws)["running"] is False


def test_status_says_when_the_database_cannot_be_asked() -> None:
    down = WhoRuns(None, error="connection refused", shared=True)
    assert down.text() == "unknown (cannot ask the store who leads: connection refused)"
    assert WhoRuns(False).text() == "not running (start one with `opsconsole engine`)"
    assert WhoRuns(True, 12).text() == "running (pid 12)"
