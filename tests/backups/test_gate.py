"""The `backup` gate kind ("a verified backup of TARGET younger than max_age") and the phase option
`backup_before`: how config check reads them, how the gate judges, and what it reads from a real
store (runs taken and verified by the real service on real files)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from opsconsole.engine import Engine
from opsconsole.engine.backups.model import BackupRun, RunStatus, Trigger
from opsconsole.engine.gates import evaluate
from opsconsole.engine.model import (
    ENGINE_ACTOR,
    Actor,
    GateMemory,
    GateSpec,
    Observation,
    Phase,
    Plan,
    Rollout,
    RolloutState,
    Verdict,
)
from opsconsole.engine.observe import Observer
from opsconsole.engine.rollout import BackupDone, Evaluate, Rejected, SetFlags, Tick, decide, new_rollout

from ..unit.test_config import MAIN, PLAN, issues_of, load, only_issue

BACKUPS = MAIN + "backups:\n  workspace: {kind: files, state: true}\n  orders: {kind: files, paths: [/srv]}\n"
GATE = GateSpec(kind="backup", name="backup-workspace", target="workspace", max_age=3600.0)
NOW = 1_800_000_000.0


def plan_with(lines: str) -> str:
    return PLAN + lines


# ------------------------------------------------------------------------------------------ config


def test_gate_and_backup_before_parse(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        BACKUPS,
        plan=plan_with(
            "    backup_before: workspace\n    gates:\n      - {kind: backup, target: workspace, max_age: 24h}\n"
        ),
    )
    phase = cfg.plans["checkout"].phases[1]
    assert phase.backup_before == "workspace"
    [spec] = phase.gates
    assert (spec.kind, spec.name, spec.target, spec.max_age) == (
        "backup",
        "backup-workspace",
        "workspace",
        86400.0,
    )


def test_an_unknown_gate_target_is_named_with_a_suggestion(tmp_path: Path) -> None:
    issue = only_issue(
        issues_of(
            tmp_path,
            BACKUPS,
            plan=plan_with("    gates:\n      - {kind: backup, target: workspce, max_age: 1h}\n"),
        )
    )
    assert issue.message == "unknown backup target 'workspce' (did you mean 'workspace'?)"
    assert issue.key.endswith("phases[1].gates[0].target")


def test_an_unknown_backup_before_is_named_with_a_suggestion(tmp_path: Path) -> None:
    issue = only_issue(issues_of(tmp_path, BACKUPS, plan=plan_with("    backup_before: order\n")))
    assert issue.message == "unknown backup target 'order' (did you mean 'orders'?)"
    assert issue.key.endswith("phases[1].backup_before")


def test_a_target_without_a_backups_section_says_so(tmp_path: Path) -> None:
    issue = only_issue(issues_of(tmp_path, MAIN, plan=plan_with("    backup_before: workspace\n")))
    assert "there is no backups: section" in issue.message


@pytest.mark.parametrize(
    ("gate", "expected"),
    [
        ("{kind: backup, target: workspace}", "max_age"),
        ("{kind: backup, max_age: 1h}", "target"),
        ("{kind: backup, target: workspace, max_age: soon}", "max_age"),
        ("{kind: backup, target: workspace, max_age: 1h, tenant: x}", "tenant"),
    ],
)
def test_gate_mistakes_are_reported_where_they_are(tmp_path: Path, gate: str, expected: str) -> None:
    issues = issues_of(tmp_path, BACKUPS, plan=plan_with(f"    gates:\n      - {gate}\n"))
    assert any(i.key.endswith(expected) for i in issues), "\n".join(map(str, issues))


def test_a_backup_check_cannot_guard(tmp_path: Path) -> None:
    plan = plan_with("      - {kind: backup, target: workspace, max_age: 1h}\n")  # under guards:
    issue = only_issue(issues_of(tmp_path, BACKUPS, plan=plan))
    assert "cannot guard" in issue.message


# ------------------------------------------------------------------------------------------ judging


def judge(obs: Observation, spec: GateSpec = GATE) -> tuple[Verdict, str]:
    verdict, _ = evaluate(spec, obs, GateMemory(), NOW)
    return verdict.status, verdict.reason


def test_a_young_verified_backup_passes() -> None:
    status, reason = judge(Observation(value=120.0, source="workspace-1", at=NOW))
    assert status is Verdict.PASS
    assert reason.startswith("verified backup workspace-1 of workspace taken ")
    assert reason.endswith("UTC (max age 1h)")


def test_an_old_backup_fails_naming_target_age_and_the_newest_run() -> None:
    obs = Observation(value=7300.0, source="workspace-1", at=NOW, detail="workspace-2 failed: disk full")
    status, reason = judge(obs)
    assert status is Verdict.FAIL
    assert reason == (
        "verified backup workspace-1 of workspace is 2h1m old, over max_age 1h; "
        "newest run: workspace-2 failed: disk full"
    )


def test_no_verified_backup_fails_with_the_newest_runs_status() -> None:
    status, reason = judge(
        Observation(value=float("inf"), at=NOW, detail="workspace-3 verify_failed: corrupt")
    )
    assert status is Verdict.FAIL
    assert reason == "no verified backup of workspace; newest run: workspace-3 verify_failed: corrupt"


def test_a_backup_running_is_waited_for() -> None:
    obs = Observation(value=float("inf"), at=NOW, detail="workspace-4 running", counts=(("running", 1.0),))
    assert judge(obs)[0] is Verdict.PENDING


def test_no_backup_yet_is_unknown_and_says_so() -> None:
    status, reason = judge(Observation(error="no backup of workspace yet", source="backups", at=NOW))
    assert status is Verdict.UNKNOWN
    assert "no backup of workspace yet" in reason


# ------------------------------------------------------------------------------------------ observing


def observe(engine: Engine, spec: GateSpec) -> Observation:
    phase = Phase(name="p", environment="production", gates=(spec,))
    rollout = Rollout(id="r", plan="x", state=RolloutState.PROGRESSING, started_by="oscar", created_at=0.0)
    observer = Observer(engine.config)

    async def read() -> Observation:
        await observer.read_backup_runs(engine, [phase])
        return await observer.observe(spec, rollout, phase, engine.clock())

    return asyncio.run(read())


def test_the_gate_reads_the_store(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    spec = GateSpec(kind="backup", name="b", target="site", max_age=3600.0)
    status, reason = judge(observe(engine, spec), spec)
    assert status is Verdict.UNKNOWN and "no backup of site yet" in reason

    run = engine.run_backup("site")
    status, reason = judge(observe(engine, spec), spec)
    assert status is Verdict.FAIL and reason == f"no verified backup of site; newest run: {run.id} ok"

    engine.verify_backup("site", run.id)
    obs = observe(engine, spec)
    assert obs.source == run.id and 0 <= (obs.value or 0) < 60
    status, reason = judge(obs, spec)
    assert status is Verdict.PASS and run.id in reason


def test_a_failed_newer_run_is_named_beside_the_verified_one(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    good = engine.verify_backup("site", engine.run_backup("site").id)
    # An old verified backup and a newer failed one, as the store holds them.
    failed = BackupRun(
        id="site-failed",
        target="site",
        kind="files",
        trigger=Trigger.MANUAL,
        actor="oscar",
        started_at=engine.clock() + 1,
        status=RunStatus.FAILED,
        reason="no space left on device",
    )
    with engine.store.transaction() as tx:
        tx.insert_backup_run(failed)
    spec = GateSpec(kind="backup", name="b", target="site", max_age=1.0)
    obs = observe(engine, spec)
    obs = Observation(value=5.0, source=obs.source, at=obs.at, detail=obs.detail)  # aged past max_age
    status, reason = judge(obs, spec)
    assert status is Verdict.FAIL
    assert reason == (
        f"verified backup {good.id} of site is 5s old, over max_age 1s; "
        "newest run: site-failed failed: no space left on device"
    )


def test_a_verified_backup_behind_many_failed_ones_is_still_found(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    good = engine.verify_backup("site", engine.run_backup("site").id)
    start = engine.clock() + 1
    with engine.store.transaction() as tx:
        for i in range(25):  # more than a tick reads first
            tx.insert_backup_run(
                BackupRun(
                    id=f"site-failed-{i:02d}",
                    target="site",
                    kind="files",
                    trigger=Trigger.SCHEDULE,
                    actor="engine",
                    started_at=start + i,
                    status=RunStatus.FAILED,
                    reason="disk full",
                )
            )
    obs = observe(engine, GateSpec(kind="backup", name="b", target="site", max_age=3600.0))
    assert obs.source == good.id and obs.detail == "site-failed-24 failed: disk full"


# ------------------------------------------------------------------------------------------ the state machine


def test_a_first_phase_with_backup_before_writes_nothing_until_its_backup() -> None:
    checklist = GateSpec(kind="checklist", name="c", items=("ready",))
    phase = Phase(
        name="prod", environment="production", flags={"f": True}, gates=(checklist,), backup_before="site"
    )
    plan = Plan(name="p", phases=(phase,))
    r = new_rollout(plan, "r1", Actor("bob", "test"), NOW, "go").rollout
    waiting = decide(plan, r, Evaluate(), NOW + 1)
    assert waiting.rollout.awaiting_backup and waiting.rollout.state is RolloutState.PROGRESSING
    assert not waiting.actions and "waits for its backup of site" in waiting.rollout.reason
    with pytest.raises(Rejected):
        decide(plan, waiting.rollout, Tick(Actor("bob", "test"), "ready"), NOW + 2)
    assert decide(plan, waiting.rollout, Evaluate(), NOW + 2).rollout == waiting.rollout
    started = decide(plan, waiting.rollout, BackupDone("site-1", True), NOW + 3)
    assert not started.rollout.awaiting_backup and started.rollout.phase_started_at == NOW + 3
    assert started.actions == (SetFlags("production", {"f": True}),)
    assert [rec.action for rec in started.records] == ["rollout.backup", "rollout.transition"]
    assert started.records[0].actor == ENGINE_ACTOR
