"""Acceptance (issue 15): twenty people approving the same phase at the same moment, each from a
process and workspace of their own on the shared store, give exactly one promotion.

The approval model records distinct approvers; a phase needing all twenty gets twenty recorded
approvals, one transition into the next phase, and that transition's audit event names every
approver. A phase needing one approver gets one approval and nineteen clear refusals. Both on the
PostgreSQL store and on SQLite (several processes on one file). On PostgreSQL the twenty people are
twenty real logins (tests/store/people.py): the login is who acts, so one login could approve once.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import textwrap
import time
from pathlib import Path

import pytest

from opsconsole.engine.model import RolloutState
from opsconsole.engine.runner import Runner
from tests.pg.server import PgServer
from tests.store.approver import approve_in_process
from tests.store.people import PASSWORD_ENV, People, Person

APPROVERS = [f"approver{i:02d}" for i in range(20)]

PLAN = """
name: gated
phases:
  - name: review
    environment: staging
    flags: {{enable_new_checkout: true}}
    approval: {{required: true, role: approver, distinct_approvers: {need}}}
  - name: after
    environment: staging
    flags: {{new_checkout: 100}}
"""


def write_config(
    tmp_path: Path, store_url: str, need: int, *, logins: dict[str, str] | None = None, extra: str = ""
) -> Path:
    """`logins`: roles.logins (login -> person); `extra`: top-level lines added as they are."""
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "gated.yaml").write_text(PLAN.format(need=need))
    users = ", ".join(f"{u}: approver" for u in APPROVERS)
    mapped = ", ".join(f"{login}: {person}" for login, person in (logins or {}).items())
    main = f"""
    store: {store_url}
    {extra}
    interval: 1s
    roles:
      default: viewer
      users: {{starter: operator, {users}}}
      logins: {{{mapped}}}
    environments:
      staging:
        flags: {{kind: file, path: "${{WORKSPACE}}/flags/staging.json"}}
    plans: ["{tmp_path}/plans/*.yaml"]
    flags:
      enable_new_checkout: {{default: false}}
      new_checkout: {{type: percentage, default: 0}}
    """
    path = tmp_path / "opsconsole.yaml"
    path.write_text(textwrap.dedent(main))
    return path


def awaiting_approval(config: Path, ws: Path, starter: Person) -> str:
    engine = starter.engine(config, ws)
    r = engine.start_rollout("gated", "go")
    runner = Runner(engine)

    async def drive() -> None:
        try:
            for _ in range(10):
                await runner.tick()
                if engine.rollout(r.id).state is RolloutState.AWAITING_APPROVAL:
                    return
        finally:
            await runner.observer.close()

    asyncio.run(drive())
    assert engine.rollout(r.id).state is RolloutState.AWAITING_APPROVAL
    engine.close()
    return r.id


def approve_all_at_once(config: Path, tmp_path: Path, rollout_id: str, people: People) -> dict[str, str]:
    ctx = multiprocessing.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(
            target=approve_in_process,
            args=(str(config), str(tmp_path / f"ws-{p.name}"), p, rollout_id, ready, go, out),
        )
        for p in people.add(*APPROVERS)
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            ready.get(timeout=120)  # every engine open before anyone approves
        go.set()
        outcomes = dict(out.get(timeout=120) for _ in procs)
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    return outcomes


@pytest.mark.timeout(300)
def test_twenty_approvers_needed_twenty_at_once_one_promotion_naming_all(
    store_url: str, people: People, tmp_path: Path
) -> None:
    config = write_config(tmp_path, store_url, need=len(APPROVERS))
    ws = tmp_path / "ws-starter"
    (starter,) = people.add("starter")
    rollout_id = awaiting_approval(config, ws, starter)
    started = time.monotonic()
    outcomes = approve_all_at_once(config, tmp_path, rollout_id, people)
    elapsed = time.monotonic() - started
    assert outcomes == {u: "ok" for u in APPROVERS}, outcomes
    if store_url.startswith("postgresql://"):  # twenty logins, none of them the superuser
        assert len({people[u].login for u in APPROVERS}) == len(APPROVERS)

    engine = starter.engine(config, ws)
    assert engine.login_warning is None
    r = engine.rollout(rollout_id)
    assert r.phase_index == 1  # in the next phase (its approvals start empty again)
    events = engine.audit_events(target=f"rollout:{rollout_id}")
    approvals = [e for e in events if e.action == "rollout.approval"]
    assert sorted(e.actor for e in approvals) == APPROVERS
    promotions = [e for e in events if e.action == "rollout.transition" and e.data["phase"] == "after"]
    assert len(promotions) == 1, promotions
    (promotion,) = promotions
    assert promotion.data["reason"] == f"phase review approved by {', '.join(APPROVERS)}"
    assert approvals[-1].data["approvers"] == APPROVERS and approvals[-1].seq < promotion.seq
    assert engine.verify_audit().ok
    engine.close()
    print(f"20 approvals from 20 processes: {elapsed:.1f} s including process start")


@pytest.mark.timeout(300)
def test_one_approver_needed_twenty_at_once_one_wins_the_rest_are_refused(
    store_url: str, people: People, tmp_path: Path
) -> None:
    config = write_config(tmp_path, store_url, need=1)
    ws = tmp_path / "ws-starter"
    (starter,) = people.add("starter")
    rollout_id = awaiting_approval(config, ws, starter)
    outcomes = approve_all_at_once(config, tmp_path, rollout_id, people)
    winners = [u for u, o in outcomes.items() if o == "ok"]
    assert len(winners) == 1, outcomes
    refused = {u: o for u, o in outcomes.items() if u not in winners}
    assert all(o.startswith(f"refused: rollout {rollout_id} is progressing") for o in refused.values()), (
        refused
    )

    engine = starter.engine(config, ws)
    events = engine.audit_events(target=f"rollout:{rollout_id}")
    assert [e.actor for e in events if e.action == "rollout.approval"] == winners
    promotions = [e for e in events if e.action == "rollout.transition" and e.data["phase"] == "after"]
    assert len(promotions) == 1 and promotions[0].data["reason"] == f"phase review approved by {winners[0]}"
    assert engine.verify_audit().ok
    engine.close()


@pytest.mark.timeout(300)
def test_twenty_cli_approve_processes_at_once_promote_once(
    pg_url: str, pg_server: PgServer, tmp_path: Path
) -> None:
    """The same through the real command line: twenty `opsconsole rollout approve` processes of one
    login started together, each with a $USER of its own (one person: one approval counts, the rest
    are refused, exit 1)."""
    people = People(pg_url, pg_server)
    try:
        starter, me = people.add("starter", "approver00")
        assert me.login and me.url and me.password
        config = write_config(
            tmp_path,
            me.url,
            need=1,
            logins={me.login: "approver00"},
            extra=f"store_password_env: {PASSWORD_ENV}",
        )
        ws = tmp_path / "ws-starter"
        rollout_id = awaiting_approval(config, ws, starter)
        run_twenty_cli_approvals(config, tmp_path, rollout_id, me, starter, ws)
    finally:
        people.drop()


def run_twenty_cli_approvals(
    config: Path, tmp_path: Path, rollout_id: str, me: Person, starter: Person, ws: Path
) -> None:
    import subprocess
    import sys

    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        PASSWORD_ENV: me.password or "",
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opsconsole",
                "--config",
                str(config),
                "--workspace",
                str(tmp_path / f"cli-{i}"),
                "rollout",
                "approve",
                rollout_id,
                "--reason",
                f"console {i}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env, "USER": f"user{i}", "LOGNAME": f"user{i}"},
        )
        for i in range(20)
    ]
    results = [(p.wait(120), p.stderr.read() if p.stderr else "") for p in procs]
    for p in procs:
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()
    codes = sorted(code for code, _ in results)
    assert codes == [0] + [1] * 19, results
    assert all("refused:" in err for code, err in results if code == 1)

    engine = starter.engine(config, ws)
    events = engine.audit_events(target=f"rollout:{rollout_id}")
    approvals = [e for e in events if e.action == "rollout.approval"]
    assert [e.actor for e in approvals] == ["approver00"], approvals
    assert approvals[0].origin.endswith(f"login {me.login}"), approvals
    promotions = [e for e in events if e.action == "rollout.transition" and e.data["phase"] == "after"]
    assert len(promotions) == 1 and promotions[0].data["reason"] == "phase review approved by approver00"
    assert engine.verify_audit().ok
    engine.close()
