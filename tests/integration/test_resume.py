"""A runner killed with SIGKILL and started again resumes every rollout from the store at the same
phase and step, with no step repeated or skipped."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from .conftest import REPO, engine_as, write_workspace

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


def start_engine(ws: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "opsconsole", "engine", "--workspace", str(ws)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(predicate, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_sigkill_then_restart_resumes_exactly_where_it_was(tmp_path, service):
    ws = write_workspace(tmp_path, service.port, plan=PLAN)
    eng = engine_as(ws, "bob")
    rid = eng.start_rollout("steps", "resume test").id
    kills = []
    # kill the runner at three different points: mid-staging or early canary, and later steps
    for target_step in (1, 3, 4):
        proc = start_engine(ws)
        try:
            wait_for(
                lambda t=target_step: eng.rollout(rid).phase_index == 1 and eng.rollout(rid).step_index >= t
            )
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        r = eng.rollout(rid)
        kills.append((r.phase_index, r.step_index, r.version))
        time.sleep(0.3)  # the dead runner must not move anything
        assert (r.phase_index, r.step_index, r.version) == (
            (x := eng.rollout(rid)).phase_index,
            x.step_index,
            x.version,
        )
    proc = start_engine(ws)
    try:
        done = wait_for(lambda: eng.rollout(rid) if not eng.rollout(rid).active else None)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert done.state == "completed", out
    steps = [
        e.data["percent"]
        for e in eng.audit_events(target=f"rollout:{rid}")
        if e.action == "rollout.transition" and e.data["phase"] == "canary" and e.data["to"] == "progressing"
    ]
    assert steps == STEPS, (steps, kills)  # every step once, in order, none skipped
    doc = json.loads((ws / "flags" / "production.json").read_text())
    assert doc["flags"]["new_checkout"]["rollout_percentage"] == 100
    assert eng.verify_audit().ok
