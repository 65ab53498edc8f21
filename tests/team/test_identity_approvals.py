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

from opsconsole.engine import Rejected
from opsconsole.engine.config import load_config
from opsconsole.engine.core import Engine
from opsconsole.engine.model import Actor, RolloutState
from opsconsole.engine.runner import Runner
from tests.pg.server import PASSWORD, PgServer
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


def console_env(team: Team, tmp_path: Path, login: str, user: str) -> dict[str, str]:
    """A console process's environment: logged in as `login` (its password from the variable the
    configuration names), with `user` as $USER and LOGNAME."""
    password = PASSWORD if login == team.server.user else team.passwords[login]
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "USER": user,
        "LOGNAME": user,
        "PGUSER": login,
        LOGIN_PASSWORD_ENV: password,
    }


def approve_at_once(
    team: Team, config: Path, tmp_path: Path, rid: str, who: list[tuple[str, str]]
) -> list[str]:
    """One `opsconsole rollout approve` process per (login, $USER), started together; their outputs."""
    procs = []
    for i, (login, user) in enumerate(who):
        env = console_env(team, tmp_path, login, user)
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


def as_dba(team: Team, tmp_path: Path) -> Path:
    """The team's configuration with the server's superuser mapped to a person, dba, who approves."""
    config = team.config(tmp_path)
    su = team.server.user
    text = config.read_text().replace("users: {", "users: {dba: approver, ")
    config.write_text(text.replace("logins: {", f"logins: {{{su}: dba, "))
    return config


@pytest.mark.timeout(300)
def test_two_superuser_sessions_with_different_names_are_one_approver(team: Team, tmp_path: Path) -> None:
    """A superuser is no exception: its two sessions are one person, whatever name each caller gives
    (before, each acted as the name it was given: alice and bob promoted the phase between them)."""
    config = as_dba(team, tmp_path)
    rid = awaiting_approval(team, config, tmp_path / "ws-starter")
    su = team.server.user
    sessions = []
    for claimed in ("alice", "bob"):
        ws = tmp_path / f"ws-{claimed}"
        cfg = replace(load_config(config, {"WORKSPACE": str(ws)}), store=team.url(su))
        sessions.append(Engine(cfg, ws, Actor(claimed, "local"), environ={LOGIN_PASSWORD_ENV: PASSWORD}))
    try:
        assert [e.actor for e in sessions] == [Actor("dba", f"local, login {su}")] * 2
        assert all(e.login_warning and "is a PostgreSQL superuser" in e.login_warning for e in sessions)
        sessions[0].approve(rid, "alice says yes")
        with pytest.raises(Rejected, match="dba already approved phase review"):
            sessions[1].approve(rid, "bob says yes")
    finally:
        for e in sessions:
            e.close()
    state, phase, approvals, ok = read(team, config, tmp_path, rid)
    assert state is RolloutState.AWAITING_APPROVAL and phase == 0 and approvals == ["dba"] and ok


@pytest.mark.timeout(300)
def test_two_superuser_consoles_with_different_user_count_once_and_are_warned(
    team: Team, tmp_path: Path
) -> None:
    """The same through the command line, $USER alice and bob: one approval; `config check`, every
    command's stderr and `status` say the login is a superuser."""
    config = as_dba(team, tmp_path)
    rid = awaiting_approval(team, config, tmp_path / "ws-starter")
    su = team.server.user
    outs = approve_at_once(team, config, tmp_path, rid, [(su, "alice"), (su, "bob")])
    state, phase, approvals, ok = read(team, config, tmp_path, rid)
    assert state is RolloutState.AWAITING_APPROVAL and phase == 0, outs
    assert approvals == ["dba"] and ok, (approvals, outs)
    assert sorted(o.split()[0] for o in outs) == ["rc=0", "rc=1"], outs
    assert any("dba already approved phase review" in o for o in outs), outs
    warning = f"warning: the store's login {su} is a PostgreSQL superuser: it can rewrite anything"
    assert all(warning in o for o in outs), outs

    def cli(login: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [
            sys.executable,
            "-m",
            "opsconsole",
            "--config",
            str(config),
            "--workspace",
            str(tmp_path / "ws"),
        ]
        return subprocess.run(
            [*cmd, *args],
            cwd=REPO,
            env=console_env(team, tmp_path, login, "alice"),
            capture_output=True,
            text=True,
            timeout=120,
        )

    checked = cli(su, "config", "check")
    assert checked.returncode == 0 and f"{config}: {warning[len('warning: ') :]}" in checked.stderr, checked
    assert len(checked.stderr.splitlines()) == 1, checked.stderr  # one line
    status = cli(su, "status")
    assert status.returncode == 0 and warning in status.stdout and "user: dba (approver)" in status.stdout, (
        status
    )
    # An ordinary login: no warning anywhere.
    carol = team.login("carol")
    for args in (("config", "check"), ("status",)):
        res = cli(carol, *args)
        assert res.returncode == 0 and "PostgreSQL superuser" not in res.stdout + res.stderr, res
    assert PASSWORD not in checked.stderr + status.stdout + status.stderr + "".join(outs)
