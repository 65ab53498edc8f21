"""The command line as a user runs it: a real process, real files, exit codes and messages."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from opsconsole.demo.run import write_demo_config
from opsconsole.engine import open_engine

from .conftest import REPO, write_workspace


def cli(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsconsole", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd or REPO)},
    )


# ------------------------------------------------------------------------------------ config check


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "config"
    shutil.copytree(REPO / "config", dst)
    return dst


def test_config_check_accepts_the_shipped_config_and_touches_nothing(tmp_path):
    ws = tmp_path / "ws"
    p = cli("config", "check", "--config", str(REPO / "config/opsconsole.yaml"), "--workspace", str(ws))
    assert p.returncode == 0, p.stderr
    assert "ok" in p.stdout
    assert not ws.exists()


@pytest.mark.parametrize(
    ("file", "old", "new", "expect"),
    [
        ("opsconsole.yaml", "interval: 1s", "intervall: 1s", ["intervall", "did you mean 'interval'"]),
        ("plans/demo.yaml", "failure_limit: 2", "failure_limit: two", ["failure_limit", "expected"]),
        ("plans/demo.yaml", "step_wait: 5s", "step_wait: 5x", ["step_wait", "duration"]),
    ],
)
def test_config_check_names_file_line_and_key(tmp_path, config_copy, file, old, new, expect):
    path = config_copy / file
    text = path.read_text()
    assert old in text
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new, 1))
    ws = tmp_path / "ws"
    p = cli("config", "check", "--config", str(config_copy / "opsconsole.yaml"), "--workspace", str(ws))
    assert p.returncode == 2, p.stdout + p.stderr
    assert f"{path.name}:{line}:" in p.stderr, p.stderr
    for word in expect:
        assert word in p.stderr, p.stderr
    assert not ws.exists()


# ------------------------------------------------------------------------------------ kill + audit


def _demo_workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "w"
    ws.mkdir()
    write_demo_config(ws, 1)  # no service needed: nothing here observes metrics
    return ws


def test_kill_leaves_safe_flags_aborts_rollouts_one_audit_event_and_audit_verifies(tmp_path):
    ws = _demo_workspace(tmp_path)
    w = ("--workspace", str(ws))
    p = cli("rollout", "start", "demo", "--reason", "drill prep", *w)
    assert p.returncode == 0, p.stderr
    ids = [p.stdout.split()[0]]
    # A second rollout of the same canary flag is refused, so there is one to abort.
    assert cli("rollout", "start", "demo", "--reason", "drill prep", *w).returncode == 1
    before = json.loads(cli("audit", "--json", "--limit", "0", *w).stdout)
    p = cli("kill", "--reason", "drill", *w)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert sorted(out["aborted"]) == sorted(ids) and out["recorded"]
    doc = json.loads((ws / "flags" / "production.json").read_text())
    assert doc["emergency_shutdown"] is True
    assert doc["flags"]["emergency_shutdown"]["enabled"] is True
    for name in ("phase_4_deployment", "enable_autonomous_improvements", "aatc_system_enabled"):
        assert doc["flags"][name]["enabled"] is False
    status = json.loads(cli("status", "--json", "--all", *w).stdout)
    assert status["kill_switch"]["engaged"] is True
    assert {r["state"] for r in status["rollouts"]} == {"aborted"}
    after = json.loads(cli("audit", "--json", "--limit", "0", *w).stdout)
    new = after[len(before) :]
    assert [e["action"] for e in new] == ["kill_switch.engage"]
    assert new[0]["actor"] and new[0]["data"]["reason"] == "drill"

    assert cli("audit", "--verify", *w).returncode == 0
    # change one byte of one stored audit event
    db = sqlite3.connect(ws / "state.db")
    seq, data = db.execute("SELECT seq, data FROM audit ORDER BY seq LIMIT 1 OFFSET 1").fetchone()
    db.execute("UPDATE audit SET data = ? WHERE seq = ?", (data.replace("drill", "drilL", 1), seq))
    db.commit()
    db.close()
    p = cli("audit", "--verify", *w)
    assert p.returncode != 0
    assert f"event {seq}" in p.stderr


def test_all_clear_and_refusals(tmp_path):
    ws = _demo_workspace(tmp_path)
    w = ("--workspace", str(ws))
    assert cli("kill", "--reason", "x", *w).returncode == 0
    p = cli("rollout", "start", "demo", *w)
    assert p.returncode == 1 and "kill switch is engaged" in p.stderr
    p = cli("all-clear", "--reason", "drill over", "--read-only", *w)
    assert p.returncode == 4 and "read-only" in p.stderr
    assert cli("all-clear", "--reason", "drill over", *w).returncode == 0
    doc = json.loads((ws / "flags" / "production.json").read_text())
    assert doc["emergency_shutdown"] is False


def test_flags_set_validates_and_lists_deciding_rule(tmp_path):
    ws = _demo_workspace(tmp_path)
    w = ("--workspace", str(ws))
    p = cli("flags", "set", "new_checkout", "150", "--env", "production", "--reason", "x", *w)
    assert p.returncode == 2 and "new_checkout" in p.stderr and "0..100" in p.stderr
    p = cli("flags", "set", "no_such_flag", "true", "--env", "production", "--reason", "x", *w)
    assert p.returncode == 2 and "no_such_flag" in p.stderr
    p = cli("flags", "set", "new_checkout", "25", "--env", "production", "--reason", "try", *w)
    assert p.returncode == 0, p.stderr
    rows = {
        r["name"]: r
        for r in json.loads(cli("flags", "list", "--env", "production", "--json", *w).stdout)["production"]
    }
    assert rows["new_checkout"]["value"] == 25 and rows["new_checkout"]["decided_by"] == "stored"
    assert rows["otel_enabled"]["decided_by"] == "default"
    doc = json.loads((ws / "flags" / "production.json").read_text())
    assert doc["flags"]["new_checkout"]["rollout_percentage"] == 25


# ------------------------------------------------------------------------------------ gates check

PLANS = {
    "passing": "gates: [{kind: health, url: 'http://127.0.0.1:${DEMO_PORT}/health', timeout: 1s}]",
    "failing": "gates: [{kind: smoke, command: 'false', timeout: 5s}]",
    "pending": "gates: [{kind: soak, min: 1h}]",
}


@pytest.mark.parametrize(("plan", "code"), [("passing", 0), ("failing", 1), ("pending", 3)])
def test_gates_check_exit_codes(tmp_path, service, plan, code):
    body = f"""
name: {plan}
phases:
  - name: only
    environment: staging
    {PLANS[plan]}
"""
    ws = write_workspace(tmp_path, service.port, plan=body)
    w = ("--workspace", str(ws))
    rid = cli("rollout", "start", plan, *w).stdout.split()[0]
    p = cli("gates", "check", rid, "--json", *w)
    assert p.returncode == code, p.stdout + p.stderr
    verdicts = json.loads(p.stdout)
    assert verdicts and all({"status", "reason", "value", "threshold", "source"} <= set(v) for v in verdicts)


def test_report_formats(tmp_path):
    ws = _demo_workspace(tmp_path)
    w = ("--workspace", str(ws))
    rid = cli("rollout", "start", "demo", "--reason", "for the report", *w).stdout.split()[0]
    assert cli("rollout", "abort", rid, "--reason", "changed my mind", *w).returncode == 0
    doc = json.loads(cli("report", rid, "--format", "json", *w).stdout)
    actions = [t["action"] for t in doc["timeline"]]
    assert actions == ["rollout.start", "rollout.transition"]
    assert doc["timeline"][1]["reason"] == "changed my mind"
    md = cli("report", rid, "--format", "md", *w).stdout
    assert md.startswith(f"# Rollout {rid}") and "| # | time | actor | event | detail |" in md
    text = cli("report", rid, *w).stdout
    assert "pending -> aborted" in text
    p = cli("report", "nope", *w)
    assert p.returncode == 2 and "nope" in p.stderr


def test_kill_writes_flag_files_when_the_store_is_unreachable_and_records_later(tmp_path):
    ws = _demo_workspace(tmp_path)
    w = ("--workspace", str(ws))
    (ws / "state.db").write_bytes(b"this is not a database" * 100)
    p = cli("kill", "--reason", "store is down", *w)
    assert p.returncode == 5, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert out["recorded"] is False and "store" in out["error"]
    doc = json.loads((ws / "flags" / "production.json").read_text())
    assert doc["emergency_shutdown"] is True
    assert doc["flags"]["new_checkout"]["rollout_percentage"] == 0  # every plan's canary, to be safe
    assert (ws / "kill-journal.jsonl").exists()
    # the store comes back: read commands report the journal's engagement, the next engine records it
    (ws / "state.db").unlink()
    status = json.loads(cli("status", "--json", *w).stdout)
    assert status["kill_switch"]["engaged"] is True and status["kill_switch"]["source"] == "journal"
    open_engine(None, ws).close()
    events = json.loads(cli("audit", "--json", *w).stdout)
    assert [e["action"] for e in events] == ["kill_switch.engage"]
    assert events[0]["data"]["recorded_late"] is True and events[0]["data"]["reason"] == "store is down"
    assert len(events[0]["data"]["replayed_from_journal"]) == 64  # the journal line's sha256
    # recorded once: later engines do not record the same journal line again
    open_engine(None, ws).close()
    assert len(json.loads(cli("audit", "--json", *w).stdout)) == 1
