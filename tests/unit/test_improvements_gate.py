"""The `improvements` gate kind: the seed's phase criteria over the improvement queue ("5+
improvements deployed successfully", "<20% rollback rate"), parsed from a plan and judged purely."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsconsole.engine.gates import evaluate
from opsconsole.engine.model import GateMemory, GateSpec, Observation, Verdict

from .test_config import MAIN, PLAN, issues_of, load, only_issue

QUEUE = MAIN + "improvements:\n  production: {proposals: proposals.yaml}\n"

SEED = GateSpec(kind="improvements", name="improvements", min_kept=5, max_rollback_rate=0.2)


def counts(deployed: float, kept: float, rolled_back: float) -> Observation:
    return Observation(
        value=kept,
        counts=(("deployed", deployed), ("kept", kept), ("rolled_back", rolled_back)),
        source="improvements",
    )


def judge(spec: GateSpec, obs: Observation) -> tuple[Verdict, str]:
    verdict, _ = evaluate(spec, obs, GateMemory(), 1000.0)
    return verdict.status, verdict.reason


def test_passes_with_enough_kept_and_a_low_rollback_rate() -> None:
    status, reason = judge(SEED, counts(deployed=6, kept=5, rolled_back=1))
    assert status is Verdict.PASS
    assert reason == "6 deployed, 5 kept, 1 rolled back (rollback rate 16.67%)"


def test_waits_while_too_few_are_kept() -> None:
    status, reason = judge(SEED, counts(deployed=3, kept=3, rolled_back=0))
    assert status is Verdict.PENDING
    assert "waiting for 2 more kept" in reason


def test_a_rollback_rate_at_the_limit_fails() -> None:
    status, reason = judge(SEED, counts(deployed=10, kept=8, rolled_back=2))
    assert status is Verdict.FAIL
    assert "rollback rate over 20%" in reason


def test_a_rate_is_not_judged_before_min_deployed() -> None:
    spec = GateSpec(kind="improvements", name="i", min_deployed=10, max_rollback_rate=0.1)
    status, reason = judge(spec, counts(deployed=2, kept=1, rolled_back=1))
    assert status is Verdict.PENDING
    assert "8 more deployed" in reason


def test_nothing_deployed_is_pending_not_a_pass() -> None:
    spec = GateSpec(kind="improvements", name="i", max_rollback_rate=0.2)
    assert judge(spec, counts(0, 0, 0))[0] is Verdict.PENDING


def test_an_unread_queue_is_unknown_and_holds() -> None:
    obs = Observation(error="improvement queue not read yet", source="improvements")
    assert judge(SEED, obs)[0] is Verdict.UNKNOWN


def test_plan_gate_parses(tmp_path: Path) -> None:
    plan = (
        PLAN
        + "    gates:\n      - {kind: improvements, min_kept: 5, max_rollback_rate: 20%, tenant: meetmind-prod}\n"
    )
    cfg = load(tmp_path, QUEUE, plan=plan)
    spec = cfg.plans["checkout"].phases[1].gates[0]
    assert (spec.kind, spec.min_kept, spec.max_rollback_rate, spec.tenant) == (
        "improvements",
        5,
        0.2,
        "meetmind-prod",
    )


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ("{kind: improvements}", "an improvements check needs min_kept, min_deployed or max_rollback_rate"),
        ("{kind: improvements, min_kept: 5, source: prodution}", "unknown environment 'prodution'"),
        ("{kind: improvements, min_kept: -1}", "min_kept"),
        ("{kind: improvements, min_kept: 1, query: x}", "'query' does not apply to an improvements check"),
    ],
)
def test_plan_gate_errors_name_the_problem(tmp_path: Path, gate: str, message: str) -> None:
    issue = only_issue(issues_of(tmp_path, QUEUE, plan=PLAN + f"    gates:\n      - {gate}\n"))
    assert message in str(issue)


def test_a_gate_on_an_environment_without_a_queue_is_named(tmp_path: Path) -> None:
    issue = only_issue(
        issues_of(tmp_path, plan=PLAN + "    gates:\n      - {kind: improvements, min_kept: 5}\n")
    )
    assert "environment 'production' has no improvement queue" in str(issue)
