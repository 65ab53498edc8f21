"""The kill journal is data to check, not truth.

Finding: one hand-written line engaged the kill switch "by ceo" in 1970 and `audit --verify` said
intact; one malformed line made every command fail with "Expecting value: line 1 column 1" without
naming the file. Real CLI processes and a real engine work on a workspace whose journal was written
by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from .conftest import cli, kill_only_workspace, spawn, wait_for

ME = pwd.getpwuid(os.getuid()).pw_name
REPO = Path(__file__).resolve().parents[2]


def workspace(tmp_path: Path) -> Path:
    ws = kill_only_workspace(tmp_path)
    # The store exists before the journal is tampered with, as in a workspace in use.
    assert cli("status", "--workspace", str(ws)).returncode == 0
    return ws


def line(**fields: Any) -> str:
    entry = {"id": "0123456789abcdef", "at": time.time(), "user": "ceo", "origin": "local"}
    entry.update({"reason": "hand-written", "zero": {}}, **fields)
    return json.dumps(entry, sort_keys=True)


def write_journal(ws: Path, *lines: str) -> Path:
    path = ws / "kill-journal.jsonl"
    path.write_text("".join(f"{text}\n" for text in lines))
    return path


def status(ws: Path) -> tuple[dict[str, Any], str]:
    p = cli("status", "--json", "--workspace", str(ws))
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)["kill_switch"], p.stderr


def audit(ws: Path) -> list[tuple[str, str, dict[str, Any]]]:
    with sqlite3.connect(ws / "state.db") as db:
        rows = db.execute("SELECT actor, action, data FROM audit ORDER BY seq").fetchall()
    return [(actor, action, json.loads(data)) for actor, action, data in rows]


def emergency(ws: Path) -> bool | None:
    try:
        return bool(json.loads((ws / "flags" / "production.json").read_text())["emergency_shutdown"])
    except FileNotFoundError:
        return None


def test_a_hand_written_ceo_line_from_1970_engages_nothing_and_is_set_aside(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    w = ("--workspace", str(ws))
    journal = write_journal(ws, line(at=0, reason="by ceo"))
    state, err = status(ws)
    assert state["engaged"] is False
    assert f"{journal}:1" in err and "more than 30 days ago" in err, err

    p = cli("flags", "set", "--env", "production", "reward_learning_enabled", "false", "--reason", "x", *w)
    assert p.returncode == 0, p.stderr  # a writing command sets it aside
    assert f"{journal}:1" in p.stderr, p.stderr
    assert emergency(ws) is False
    [set_aside] = [a for a in audit(ws) if a[1] == "kill_switch.journal_set_aside"]
    assert set_aside[0] == ME and set_aside[2]["line"] == 1 and set_aside[2]["file"] == str(journal)
    assert not [a for a in audit(ws) if a[1] == "kill_switch.engage"]
    kept = [json.loads(x) for x in (ws / "kill-journal.set-aside.jsonl").read_text().splitlines()]
    assert [k["line"] for k in kept] == [1] and '"ceo"' in kept[0]["text"]

    p = cli("audit", "--json", *w)
    assert p.returncode == 0 and "kill_switch.journal_set_aside" in p.stdout
    assert cli("audit", "--verify", *w).returncode == 0
    state, err = status(ws)
    assert state["engaged"] is False and "kill journal" not in err  # warned once, then set aside


def test_future_dated_and_unknown_field_lines_are_set_aside(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    journal = write_journal(
        ws,
        line(at=time.time() + 86400, reason="tomorrow"),
        line(role="admin"),
        line(user=""),
    )
    state, err = status(ws)
    assert state["engaged"] is False
    assert f"{journal}:1" in err and "in the future" in err, err
    assert f"{journal}:2" in err and "unknown fields 'role'" in err, err
    assert f"{journal}:3" in err, err
    engine = spawn("engine", "--workspace", str(ws))
    try:
        wait_for(
            lambda: len([a for a in audit(ws) if a[1] == "kill_switch.journal_set_aside"]) == 3,
            30,
            "three lines set aside by the engine",
        )
        # Running (signal handlers installed, health written) before it is stopped: a SIGTERM any
        # earlier ends it the default way, and what it had said is lost with it.
        wait_for(lambda: (ws / "engine-health.json").exists(), 30, "engine running")
    finally:
        engine.terminate()
        out = engine.communicate(timeout=15)[0]
    assert f"{journal}:2" in out, out
    assert emergency(ws) is False
    assert not [a for a in audit(ws) if a[1] == "kill_switch.engage"]


def test_a_malformed_line_blocks_no_command_and_is_named(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    w = ("--workspace", str(ws))
    journal = write_journal(ws, "{not json")
    for args in (("status",), ("flags", "list")):
        p = cli(*args, *w)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        assert f"{journal}:1" in p.stderr and "not JSON" in p.stderr, (args, p.stderr)
        assert "Expecting value" not in p.stdout

    p = cli("kill", "--reason", "real incident", *w, timeout=30)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["recorded"] is True
    assert f"{journal}:1" in p.stderr, p.stderr
    assert emergency(ws) is True
    state, _ = status(ws)
    assert state["engaged"] is True and state["by"] == ME

    engine = spawn("engine", *w)
    try:
        wait_for(
            lambda: [a for a in audit(ws) if a[1] == "kill_switch.journal_set_aside"],
            30,
            "the bad line set aside",
        )
        time.sleep(0.5)
        assert engine.poll() is None  # still running
    finally:
        engine.terminate()
        engine.communicate(timeout=15)
    assert engine.returncode in (0, -15)


def test_a_valid_line_the_store_missed_is_recorded_as_replayed_with_its_hash(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    text = line(user=ME, reason="store was locked")
    write_journal(ws, text)
    state, _ = status(ws)
    assert state == {"engaged": True, "source": "journal", "by": ME, "reason": state["reason"]}
    p = cli("status", "--json", "--workspace", str(ws))  # read-only: reports it, records nothing
    assert not [a for a in audit(ws) if a[1] == "kill_switch.engage"]
    assert p.returncode == 0

    p = subprocess.run(  # any writing command records it
        [
            *_opsconsole(),
            "flags",
            "set",
            "--env",
            "production",
            "reward_learning_enabled",
            "false",
            "--reason",
            "x",
        ]
        + ["--workspace", str(ws)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(REPO)},
    )
    assert p.returncode == 0, p.stderr
    [(actor, _, data)] = [a for a in audit(ws) if a[1] == "kill_switch.engage"]
    assert actor == ME and data["reason"] == "store was locked"
    assert data["replayed_from_journal"] == hashlib.sha256(text.encode()).hexdigest()
    assert data["recorded_late"] is True
    state, _ = status(ws)
    assert (state["engaged"], state["source"]) == (True, "store")
    assert emergency(ws) is True


def _opsconsole() -> list[str]:
    import sys

    return [sys.executable, "-m", "opsconsole"]
