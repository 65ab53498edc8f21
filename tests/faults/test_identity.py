"""Who acts is what the operating system says, not what the environment claims.

Real CLI processes run with USER and LOGNAME forged to an approver's name; the role decisions, the
self-approval rule and the audit log must all see the real account (the uid's passwd entry).
"""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import textwrap
from pathlib import Path

import pytest

from .conftest import cli, flag_file, spawn, wait_for

ME = pwd.getpwuid(os.getuid()).pw_name
FORGED = {"USER": "alice", "LOGNAME": "alice", "LNAME": "alice", "USERNAME": "alice"}

PLAN = """
name: needs-approval
phases:
  - name: staging
    environment: staging
    flags: {enable_new_checkout: true}
    approval: {required: true, role: approver}
"""


def workspace(tmp_path: Path, my_role: str) -> Path:
    """A workspace where the account running the tests has `my_role` and alice is an approver."""
    ws = tmp_path / "ws"
    (ws / "plans").mkdir(parents=True)
    (ws / "plans" / "plan.yaml").write_text(PLAN)
    main = f"""
    interval: 0.2s
    roles:
      default: viewer
      users: {{alice: approver, {ME}: {my_role}}}
    environments:
      staging:
        flags: {{kind: file, path: "${{WORKSPACE}}/flags/staging.json"}}
      production:
        flags: {{kind: file, path: "${{WORKSPACE}}/flags/production.json"}}
    plans: ["plans/*.yaml"]
    flags: "{Path(__file__).resolve().parents[2]}/config/flags.yaml"
    kill_switch:
      flags_off: [phase_4_deployment]
      flags_on: [emergency_shutdown]
    """
    (ws / "opsconsole.yaml").write_text(textwrap.dedent(main))
    return ws


def actors(ws: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(ws / "state.db") as db:
        return db.execute("SELECT actor, origin, action FROM audit ORDER BY seq").fetchall()


def test_forged_user_cannot_pull_the_kill_switch_as_an_operator(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "viewer")
    w = ("--workspace", str(ws))
    p = cli("kill", "--reason", "forged", *w, env=FORGED, timeout=30)
    assert p.returncode == 4, (p.returncode, p.stdout, p.stderr)
    assert f"{ME} is viewer" in p.stderr
    assert not (ws / "flags" / "production.json").exists()  # nothing was written
    status = json.loads(cli("status", "--json", *w, env=FORGED).stdout)
    assert status["user"] == ME and status["role"] == "viewer"
    assert not status["kill_switch"]["engaged"]


def test_forged_user_cannot_approve_their_own_rollout(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "approver")
    w = ("--workspace", str(ws))
    p = cli("rollout", "start", "needs-approval", "--reason", "mine", *w)
    assert p.returncode == 0, p.stderr
    rid = p.stdout.split()[0]
    engine = spawn("engine", *w, env=FORGED)
    try:

        def awaiting() -> bool:
            rows = json.loads(cli("status", "--json", *w).stdout)["rollouts"]
            return bool(rows) and rows[0]["state"] == "awaiting_approval"

        wait_for(awaiting, 30, "the rollout awaiting approval")
    finally:
        engine.terminate()
        engine.wait(10)
    p = cli("rollout", "approve", rid, "--reason", "looks fine", *w, env=FORGED)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert f"{ME} started this rollout and cannot be its only approver" in p.stderr
    assert flag_file(ws, "staging")["flags"]["enable_new_checkout"]["enabled"] is True
    recorded = actors(ws)
    assert recorded and {a for a, _, _ in recorded} <= {ME, "engine"}, recorded
    assert "alice" not in {a for a, _, _ in recorded}


def test_kill_by_the_real_account_is_audited_under_its_name(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "operator")
    w = ("--workspace", str(ws))
    forged = FORGED | {"SSH_CONNECTION": "203.0.113.5 50022 10.0.0.1 22"}
    p = cli("kill", "--reason", "real", *w, env=forged, timeout=30)
    assert p.returncode == 0, p.stderr
    assert actors(ws)[-1] == (ME, "ssh 203.0.113.5:50022 (reported)", "kill_switch.engage")


@pytest.mark.parametrize("variable", ["SSH_CONNECTION", "SSH_CLIENT"])
def test_a_malformed_ssh_variable_is_not_recorded(tmp_path: Path, variable: str) -> None:
    ws = workspace(tmp_path, "operator")
    p = cli("kill", "--reason", "x", "--workspace", str(ws), env={variable: "evil; rm -rf / 1 2 3"})
    assert p.returncode == 0, p.stderr
    assert actors(ws)[-1][:2] == (ME, "local")
