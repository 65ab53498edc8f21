"""`backup_before: TARGET`: before the phase starts the engine takes and verifies a backup in a thread;
a failed one holds the phase (not started, the reason shown) until an operator resumes (retries) or
aborts; the runner's tick and the kill switch never wait for it; a restarted runner neither starts
the phase without its backup nor takes a second one. Real files, the real store and the real runner."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsconsole.engine import Actor, Engine, Rejected, Runner, open_engine
from opsconsole.engine.backups.before import PhaseBackups
from opsconsole.engine.backups.model import BackupRun, RunStatus, Trigger
from opsconsole.engine.model import RolloutState, Verdict
from opsconsole.engine.rollout import backup_reason

from .conftest import REPO

S = RolloutState

PLAN = """\
name: guarded
phases:
  - name: staging
    environment: staging
    flags: {enable_new_checkout: true}
  - name: production
    environment: production
    backup_before: site
    flags: {enable_new_checkout: true}
    gates:
      - {kind: backup, target: site, max_age: 1h}
"""


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Callable[[str], Engine], Path]]:
    data = tmp_path / "data"
    ws = tmp_path / "ws"
    (tmp_path / "plan.yaml").write_text(PLAN)
    main = f"""\
    interval: 1s
    roles: {{default: viewer, users: {{bob: operator, root: admin}}}}
    environments:
      staging: {{flags: {{kind: file, path: "${{WORKSPACE}}/flags/staging.json"}}}}
      production: {{flags: {{kind: file, path: "${{WORKSPACE}}/flags/production.json"}}}}
    plans: ["{tmp_path}/plan.yaml"]
    flags: "{REPO}/config/flags.yaml"
    kill_switch: {{flags_on: [emergency_shutdown]}}
    backups:
      site: {{kind: files, paths: ["{data}"], state: true}}
    notifications:
      - {{kind: webhook, url: "http://127.0.0.1:9/hook", events: [backup_failed], timeout: 1s}}
    """
    cfg = tmp_path / "opsconsole.yaml"
    cfg.write_text(textwrap.dedent(main))
    engines: list[Engine] = []

    def make(user: str) -> Engine:
        engine = open_engine(str(cfg), ws, actor=Actor(user, "test"))
        engines.append(engine)
        return engine

    yield make, data
    for e in engines:
        e.close()


def tick_until(runner: Runner, done: Callable[[], bool], seconds: float = 20.0) -> float:
    """Tick (with a short pause for the backup thread) until `done()`; returns the slowest tick."""

    async def loop() -> float:
        slowest = 0.0
        deadline = time.monotonic() + seconds
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached")
            t0 = time.perf_counter()
            await runner.tick()
            slowest = max(slowest, time.perf_counter() - t0)
            await asyncio.sleep(0.02)
        return slowest

    return asyncio.run(loop())


def production_flag(ws: Path) -> object:
    path = ws / "flags" / "production.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    entry = doc.get("flags", doc).get("enable_new_checkout")
    return entry.get("enabled") if isinstance(entry, dict) else entry


def before_phase_runs(engine: Engine) -> list[BackupRun]:
    return [r for r in engine.backups("site") if r.trigger == Trigger.BEFORE_PHASE]


def audit(engine: Engine, action: str) -> list[dict[str, object]]:
    with engine.store.read() as tx:
        return [e.data for e in tx.list_audit() if e.action == action]


def test_backup_before_holds_a_phase_whose_backup_fails(setup) -> None:
    make, data = setup  # `data` does not exist: the backup fails
    bob = make("bob")
    ws = bob.workspace
    rid = bob.start_rollout("guarded", "test").id
    runner = Runner(bob)
    tick_until(runner, lambda: bob.rollout(rid).state is S.PAUSED)

    r = bob.rollout(rid)
    assert r.phase_index == 1 and r.awaiting_backup
    assert r.reason.startswith("backup before phase production failed: backup site-")
    assert f"{data}: no such file or directory" in r.reason
    assert production_flag(ws) in (None, False)  # the phase never started: none of its flags written
    [failed] = before_phase_runs(bob)
    assert failed.status == RunStatus.FAILED and failed.actor == "engine"
    [held] = audit(bob, "rollout.backup")
    assert held["ok"] is False and held["phase"] == "production" and held["run"] == failed.id
    # one message for one failure: the hold names the rollout, the phase and the run's reason
    with bob.store.read() as tx:
        sent = [n for n in tx.list_notifications() if n.event == "backup_failed"]
    assert len(sent) == 1 and f"rollout {rid}" in sent[0].body and failed.id in sent[0].body
    # held means held: more ticks change nothing, nothing else is tried, nothing promotes it
    tick_until(runner, lambda: True)
    for _ in range(3):
        asyncio.run(runner.tick())
    assert bob.rollout(rid).version == r.version and len(before_phase_runs(bob)) == 1
    with pytest.raises(Rejected):
        bob.command(rid, "promote", "")

    # the operator fixes the cause and resumes: the backup is taken again, then the phase starts
    data.mkdir()
    (data / "a.txt").write_text("alpha\n")
    resumed = bob.command(rid, "resume", "data directory restored")
    assert resumed.state is S.PROGRESSING and "retrying the backup of site" in resumed.reason
    tick_until(runner, lambda: bob.rollout(rid).state is S.COMPLETED)

    runs = before_phase_runs(bob)
    assert [x.status for x in runs] == [RunStatus.VERIFIED, RunStatus.FAILED]
    assert runs[0].reason == f"before phase production of rollout {rid}"
    assert production_flag(ws) is True
    oks = [d for d in audit(bob, "rollout.backup") if d["ok"]]
    assert len(oks) == 1 and oks[0]["run"] == runs[0].id
    [gate] = [v for v in bob.rollout(rid).verdicts if v.kind == "backup"]
    assert gate.status is Verdict.PASS and runs[0].id in gate.reason


def test_an_operator_can_abort_a_held_phase(setup) -> None:
    make, _ = setup
    bob = make("bob")
    rid = bob.start_rollout("guarded", "test").id
    runner = Runner(bob)
    tick_until(runner, lambda: bob.rollout(rid).state is S.PAUSED)
    assert bob.command(rid, "abort", "not today").state is S.ABORTED
    assert production_flag(bob.workspace) in (None, False)


def test_the_tick_and_the_kill_switch_never_wait_for_the_backup(setup, monkeypatch) -> None:
    make, data = setup
    data.mkdir()
    (data / "a.txt").write_text("alpha\n")
    release = threading.Event()
    started = threading.Event()
    take = PhaseBackups.take

    def slow_take(self: PhaseBackups, target: str, reason: str):  # type: ignore[no-untyped-def]
        started.set()
        release.wait(30)
        return take(self, target, reason)

    monkeypatch.setattr(PhaseBackups, "take", slow_take)
    bob, root = make("bob"), make("root")
    rid = bob.start_rollout("guarded", "test").id
    runner = Runner(bob)

    async def scenario() -> tuple[float, float]:
        slowest = 0.0
        while not started.is_set():
            t0 = time.perf_counter()
            await runner.tick()
            slowest = max(slowest, time.perf_counter() - t0)
            await asyncio.sleep(0.02)
        for _ in range(5):  # the backup hangs: ticks go on at their pace
            t0 = time.perf_counter()
            await runner.tick()
            slowest = max(slowest, time.perf_counter() - t0)
        t0 = time.perf_counter()
        await asyncio.to_thread(root.kill, "stop everything")
        kill_s = time.perf_counter() - t0
        release.set()
        while runner.phase_backups.busy((rid, 1)):
            await asyncio.sleep(0.02)
        for _ in range(3):
            await runner.tick()
        return slowest, kill_s

    slowest, kill_s = asyncio.run(scenario())
    assert slowest < 1.0 and kill_s < 2.0
    r = bob.rollout(rid)
    assert r.state is S.ABORTED and r.awaiting_backup  # the late backup did not start the phase
    assert production_flag(bob.workspace) in (None, False)
    assert not [d for d in audit(bob, "rollout.backup") if d["ok"]]


@pytest.mark.parametrize("left", ["running", "ok", "verified"])
def test_a_restarted_runner_neither_skips_nor_repeats_the_backup(setup, left: str) -> None:
    """The runner that ended left the phase waiting with its backup `running` (it died mid-backup),
    taken but not verified, or verified but not yet recorded on the rollout."""
    make, data = setup
    data.mkdir()
    (data / "a.txt").write_text("alpha\n")
    bob = make("bob")
    rid = bob.start_rollout("guarded", "test").id
    first = Runner(bob)
    tick_until(first, lambda: bob.rollout(rid).awaiting_backup)  # ends before it asks for the backup
    assert not before_phase_runs(bob)
    r = bob.rollout(rid)
    reason = backup_reason(r, bob.plan("guarded").phases[1])
    service = bob.backup_service
    if left == "running":
        dead = BackupRun(
            id="site-dead",
            target="site",
            kind="files",
            trigger=Trigger.BEFORE_PHASE,
            actor="engine",
            started_at=bob.clock(),
            reason=reason,
        )
        with bob.store.transaction() as tx:
            tx.insert_backup_run(dead)
    else:
        taken = service.run("site", Trigger.BEFORE_PHASE, reason, by_engine=True)
        if left == "verified":
            service.verify("site", taken.id, by_engine=True)

    second = Runner(bob)  # the restarted engine
    tick_until(second, lambda: not bob.rollout(rid).awaiting_backup)
    r = bob.rollout(rid)
    assert r.state is S.PROGRESSING and r.phase_index == 1
    runs = before_phase_runs(bob)
    verified = [x for x in runs if x.status == RunStatus.VERIFIED]
    assert len(verified) == 1 and verified[0].id in r.reason
    if left == "running":
        assert [x.id for x in runs if x.status == RunStatus.FAILED] == ["site-dead"]
        assert len(runs) == 2
        assert [d["run"] for d in audit(bob, "backup.interrupted")] == ["site-dead"]
    else:
        assert len(runs) == 1 and verified[0].id == taken.id  # no second backup
    assert production_flag(bob.workspace) is True


def test_resume_after_a_pause_mid_backup_takes_it_again(setup, monkeypatch) -> None:
    """Paused while its backup ran and failed: the resume that follows is a new attempt, not the
    old failure handed back."""
    make, data = setup  # missing: the first attempt fails
    release = threading.Event()
    started = threading.Event()
    take = PhaseBackups.take

    def slow_take(self: PhaseBackups, target: str, reason: str):  # type: ignore[no-untyped-def]
        started.set()
        release.wait(30)
        return take(self, target, reason)

    monkeypatch.setattr(PhaseBackups, "take", slow_take)
    bob = make("bob")
    rid = bob.start_rollout("guarded", "test").id
    runner = Runner(bob)

    async def pause_mid_backup() -> None:
        while not started.is_set():
            await runner.tick()
            await asyncio.sleep(0.02)
        await asyncio.to_thread(bob.command, rid, "pause", "hold on")
        release.set()
        while runner.phase_backups.busy((rid, 1)):
            await asyncio.sleep(0.02)
        for _ in range(3):
            await runner.tick()

    asyncio.run(pause_mid_backup())
    r = bob.rollout(rid)
    assert r.state is S.PAUSED and r.reason == "hold on"  # the failure came while paused: not applied
    assert [x.status for x in before_phase_runs(bob)] == [RunStatus.FAILED]
    data.mkdir()
    (data / "a.txt").write_text("alpha\n")
    time.sleep(0.01)  # the resume is later than the failed attempt began
    bob.command(rid, "resume", "")
    tick_until(runner, lambda: bob.rollout(rid).state is S.COMPLETED)
    assert [x.status for x in before_phase_runs(bob)] == [RunStatus.VERIFIED, RunStatus.FAILED]
