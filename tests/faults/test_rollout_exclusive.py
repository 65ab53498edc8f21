"""One active rollout per flag and environment: two rollouts never fight over one canary flag.

Racing `rollout start` processes, a second plan driving the same flag, and the headless demo killed
with SIGKILL and run again (it must resume its rollout, not start a second one beside it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsconsole.engine.model import ACTIVE_STATES, RolloutState
from opsconsole.engine.resources import Resource, plan_resources

from .conftest import REPO, cli, engine_as, load_ws, wait_for, write_workspace

OTHER_PLANS = """
name: other-canary
phases:
  - name: canary
    environment: production
    strategy: {kind: canary, flag: new_checkout, steps: [0, 100], step_wait: 1h}
"""

SAME_PLAIN_FLAG = """
name: staging-toggle
phases:
  - name: toggle
    environment: staging
    flags: {enable_new_checkout: false}
"""

UNRELATED = """
name: unrelated
phases:
  - name: toggle
    environment: staging
    flags: {phase_4_deployment: true}
"""


def _workspace(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    ws = write_workspace(tmp_path, 1)  # nothing here observes the service: no port needed
    plans = tmp_path / "plans"
    (plans / "other.yaml").write_text(OTHER_PLANS)
    (plans / "toggle.yaml").write_text(SAME_PLAIN_FLAG)
    (plans / "unrelated.yaml").write_text(UNRELATED)
    return ws


def test_plan_resources_are_every_canary_and_plain_flag_of_every_phase(tmp_path):
    plans = load_ws(_workspace(tmp_path)).plans
    assert plan_resources(plans["fast"]) == {
        Resource("flag", "staging", "enable_new_checkout"),
        Resource("flag", "production", "new_checkout"),
    }
    assert plan_resources(plans["unrelated"]) == {Resource("flag", "staging", "phase_4_deployment")}


_RACER = """
import os, sys, time
from opsconsole.cli import main  # imported before the barrier: every racer starts warm
barrier = sys.argv[1]
deadline = time.monotonic() + 30
while not os.path.exists(barrier) and time.monotonic() < deadline:
    time.sleep(0.0005)
sys.exit(main(sys.argv[2:]))
"""


def _race(ws: Path, racers: int) -> list[tuple[str, str, int]]:
    """`opsconsole rollout start fast` in `racers` processes released at the same instant."""
    barrier = ws.parent / f"go-{ws.name}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(barrier), "rollout", "start", "fast"]
            + ["--reason", f"racer {i}", "--workspace", str(ws)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"PATH": "/usr/bin:/bin", "HOME": str(REPO)},
        )
        for i in range(racers)
    ]
    time.sleep(3.0)  # every racer has imported and is polling the barrier
    barrier.touch()
    return [p.communicate(timeout=60) + (p.returncode,) for p in procs]


def test_racing_starts_of_one_plan_give_exactly_one_rollout(tmp_path):
    racers = 5
    for round_ in range(5):  # a check outside the insert's transaction loses some of these rounds
        ws = _workspace(tmp_path / f"round{round_}")
        engine_as(ws, "bob").rollouts()  # the store exists: racers meet at the insert, not the schema
        results = _race(ws, racers)
        codes = sorted(code for _, _, code in results)
        assert codes == [0] + [1] * (racers - 1), results
        rollouts = engine_as(ws, "bob").rollouts()
        assert len(rollouts) == 1
        for _out, err, code in results:
            if code == 1:
                assert f"rollout {rollouts[0].id}" in err and "new_checkout" in err, err


def test_a_second_plan_on_the_same_flag_is_refused_naming_the_first(tmp_path):
    ws = _workspace(tmp_path)
    first = cli("rollout", "start", "fast", "--reason", "first", "--workspace", str(ws))
    assert first.returncode == 0, first.stderr
    rid = first.stdout.split()[0]

    canary = cli("rollout", "start", "other-canary", "--reason", "second", "--workspace", str(ws))
    assert canary.returncode == 1, canary.stdout + canary.stderr
    assert f"rollout {rid}" in canary.stderr and "flag new_checkout in production" in canary.stderr

    plain = cli("rollout", "start", "staging-toggle", "--reason", "third", "--workspace", str(ws))
    assert plain.returncode == 1
    assert f"rollout {rid}" in plain.stderr and "flag enable_new_checkout in staging" in plain.stderr

    ok = cli("rollout", "start", "unrelated", "--reason", "other flag", "--workspace", str(ws))
    assert ok.returncode == 0, ok.stderr

    # Once the first one is no longer active the flag is free again.
    engine_as(ws, "bob").command(rid, "abort", "make room")
    again = cli("rollout", "start", "other-canary", "--reason", "now free", "--workspace", str(ws))
    assert again.returncode == 0, again.stderr
    active = [r for r in engine_as(ws, "bob").rollouts() if r.state in ACTIVE_STATES]
    assert sorted(r.plan for r in active) == ["other-canary", "unrelated"]


def _demo(ws: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "opsconsole", "demo", "--headless", "--auto-approve"]
        + ["--workspace", str(ws), "--timeout", "150"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group: the SIGKILL takes every thread and child with it
    )


@pytest.mark.slow
def test_headless_demo_resumes_its_own_rollout_after_sigkill(tmp_path):
    ws = tmp_path / "w"
    first = _demo(ws)
    try:

        def in_canary() -> RolloutState | None:
            if not (ws / "opsconsole.yaml").exists() or not (ws / "state.db").exists():
                return None
            rs = engine_as(ws, "bob").rollouts()
            return rs[0].state if rs and rs[0].phase_index == 1 and rs[0].step_index >= 1 else None

        wait_for(in_canary, 90, "the demo's rollout stepping in production")
        # From another shell (no DEMO_PORT): the saved configuration probes the running demo.
        rid = engine_as(ws, "bob").rollouts()[0].id
        check = cli("gates", "check", rid, "--json", "--workspace", str(ws))
        health = next(v for v in json.loads(check.stdout) if v["kind"] == "health")
        assert health["status"] == "pass" and ":8780/" not in health["source"], health
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
    killed = engine_as(ws, "bob").rollouts()
    assert len(killed) == 1 and killed[0].state in ACTIVE_STATES
    rid, step = killed[0].id, killed[0].step_index

    second = _demo(ws)
    try:
        out, err = second.communicate(timeout=200)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    assert second.returncode == 0, err
    assert f"resuming rollout {rid}" in err
    doc = json.loads(out)
    assert doc["rollout"]["id"] == rid and doc["rollout"]["state"] == "completed"
    rollouts = engine_as(ws, "bob").rollouts()
    assert [r.id for r in rollouts] == [rid]
    canary_steps = [s["percent"] for s in doc["rollout"]["phases"][1]["steps"]]
    assert canary_steps == [0, 5, 10, 25, 50, 75, 100] and step >= 1
