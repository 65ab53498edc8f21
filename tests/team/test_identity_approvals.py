"""Distinct approvers are distinct logins (issue 15 item 7): two console processes of one login
approving a phase that needs two approvers count once, whatever their $USER or OS account say;
two processes of two logins promote it. Each approval is a separate `opsconsole` process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from opsconsole.engine.config import load_config
from opsconsole.engine.core import Engine
from opsconsole.engine.model import Actor, RolloutState
from opsconsole.engine.runner import Runner
from tests.pg.server import PgServer
from tests.team.logins import LOGIN_PASSWORD_ENV, Team, make_team

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def team(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Team]:
    for name in ("PGPASSWORD", "PGUSER", "PGOPTIONS", LOGIN_PASSWORD_ENV):
        monkeypatch.delenv(name, raising=False)
    t = make_team(pg_server)
    yield t
    t.drop()


def awaiting_approval(team: Team, config: Path, ws: Path) -> str:
    """carol (operator) starts the rollout; her engine ticks it to awaiting approval."""
    carol = team.login("carol")
    cfg = load_config(config, {"WORKSPACE": str(ws)})
    engine = Engine(replace(cfg, store=team.url(carol)), ws, Actor("carol"), environ=team.environ(carol))
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


def approve_at_once(
    team: Team, config: Path, tmp_path: Path, rid: str, who: list[tuple[str, str]]
) -> list[str]:
    """One `opsconsole rollout approve` process per (login, $USER), started together; their outputs."""
    procs = []
    for i, (login, user) in enumerate(who):
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "USER": user,
            "LOGNAME": user,
            "PGUSER": login,
            LOGIN_PASSWORD_ENV: team.passwords[login],
        }
        ws = tmp_path / f"ws-{i}"
        cmd = [sys.executable, "-m", "opsconsole", "--config", str(config), "--workspace", str(ws)]
        procs.append(
            subprocess.Popen(
                [*cmd, "rollout", "approve", rid, "--reason", f"{user} looked"],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        outs.append(f"rc={p.returncode} {out.strip()}")
    return outs


def read(team: Team, config: Path, tmp_path: Path, rid: str) -> tuple[RolloutState, int, list[str], bool]:
    carol = team.login("carol")
    ws = tmp_path / "ws-reader"
    cfg = replace(load_config(config, {"WORKSPACE": str(ws)}), store=team.url(carol))
    engine = Engine(cfg, ws, Actor("carol"), read_only=True, environ=team.environ(carol))
    try:
        r = engine.rollout(rid)
        approvals = [
            e.actor for e in engine.audit_events(target=f"rollout:{rid}") if e.action == "rollout.approval"
        ]
        return r.state, r.phase_index, approvals, engine.verify_audit().ok
    finally:
        engine.close()


@pytest.mark.timeout(300)
def test_two_sessions_of_one_login_count_once(team: Team, tmp_path: Path) -> None:
    config = team.config(tmp_path)
    rid = awaiting_approval(team, config, tmp_path / "ws-starter")
    alice = team.login("alice")
    # One person, two consoles; the second claims to be bob through $USER: still alice.
    outs = approve_at_once(team, config, tmp_path, rid, [(alice, "alice"), (alice, "bob")])
    state, phase, approvals, ok = read(team, config, tmp_path, rid)
    assert state is RolloutState.AWAITING_APPROVAL and phase == 0, outs
    assert set(approvals) == {"alice"}, (approvals, outs)
    assert sorted(o.split()[0] for o in outs) == ["rc=0", "rc=1"], outs
    assert any("alice already approved phase review" in o for o in outs), outs
    assert ok


@pytest.mark.timeout(300)
def test_two_logins_are_two_approvers(team: Team, tmp_path: Path) -> None:
    config = team.config(tmp_path)
    rid = awaiting_approval(team, config, tmp_path / "ws-starter")
    # Both processes run as the same OS account with the same $USER: the logins decide.
    outs = approve_at_once(
        team, config, tmp_path, rid, [(team.login("alice"), "root"), (team.login("bob"), "root")]
    )
    assert all(o.startswith("rc=0") for o in outs), outs
    state, phase, approvals, ok = read(team, config, tmp_path, rid)
    assert phase == 1 and state is not RolloutState.AWAITING_APPROVAL, (state, outs)
    assert sorted(approvals) == ["alice", "bob"], approvals
    assert ok
