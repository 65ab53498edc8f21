"""Issue 15 item 7: with a PostgreSQL store the person acting is the login the server
authenticated (`session_user` on the store's own connection), mapped to a role in the configuration;
never a name the client sends. Real logins on the session's server (tests/team/logins.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from opsconsole.engine.authz import Forbidden
from opsconsole.engine.config import load_config
from opsconsole.engine.core import Engine
from opsconsole.engine.identity import acting, os_user
from opsconsole.engine.model import Actor, Config
from opsconsole.engine.store import Login, StoreError
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


def config_for(team: Team, tmp_path: Path, url: str) -> Config:
    path = team.config(tmp_path)
    return replace(load_config(path, {"WORKSPACE": str(tmp_path / "ws")}), store=url)


def engine_as(team: Team, tmp_path: Path, login: str, claimed: Actor, query: str = "") -> Engine:
    cfg = config_for(team, tmp_path, team.url(login, query))
    return Engine(cfg, tmp_path / "ws", claimed, environ=team.environ(login))


def test_the_login_acts_whatever_name_the_caller_gives(team: Team, tmp_path: Path) -> None:
    carol = team.login("carol")
    engine = engine_as(team, tmp_path, carol, Actor("alice", "local"))  # a caller claiming alice
    try:
        assert engine.store.login == Login(carol, carol, False)
        assert engine.actor.user == "carol" and engine.role == "operator"
        assert engine.actor.origin == f"local, login {carol}"
        engine.set_flag("staging", "enable_new_checkout", True, "try")  # operator may
        r = engine.start_rollout("gated", "go")
        with pytest.raises(Forbidden, match="carol is operator, needs approver"):
            engine.approve(r.id, "alice would approve")
        events = engine.audit_events()
        assert {e.actor for e in events} == {"carol"}, events
        assert engine.verify_audit().ok
    finally:
        engine.close()


def test_an_unmapped_login_is_its_own_name_with_the_default_role(team: Team, tmp_path: Path) -> None:
    from opsconsole.engine.store.grants import grant_store
    from tests.pg.server import PASSWORD_ENV

    dave = team.create_login(f"dave_{team.suffix}")
    grant_store(team.server.dsn(team.db), dave, password_env=PASSWORD_ENV, environ=team.superuser_environ())
    engine = engine_as(team, tmp_path, dave, Actor("alice", "local"))
    try:
        assert engine.actor.user == dave and engine.role == "viewer"
    finally:
        engine.close()


def test_user_and_os_account_do_not_change_who_acts_from_the_cli(team: Team, tmp_path: Path) -> None:
    """A console process whose $USER, LOGNAME and OS account say alice, logged in as carol: carol
    acts (and may not approve); there is no flag that names the user."""
    carol = team.login("carol")
    config = team.config(tmp_path)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "USER": "alice",
        "LOGNAME": "alice",
        "USERNAME": "alice",
        "PGUSER": carol,
        LOGIN_PASSWORD_ENV: team.passwords[carol],
    }
    ws = str(tmp_path / "ws")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opsconsole", "--config", str(config), "--workspace", ws, *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            env=env,
        )

    started = cli("rollout", "start", "gated", "--reason", "go")
    assert started.returncode == 0, started.stderr
    rid = started.stdout.split()[0]
    refused = cli("rollout", "approve", rid, "--reason", "I am alice")
    assert refused.returncode != 0 and "carol is operator, needs approver" in refused.stderr, refused
    assert cli("--user", "alice", "status").returncode == 2  # no option names the user
    log = cli("--json", "audit")
    assert log.returncode == 0, log.stderr
    events = json.loads(log.stdout)
    assert [(e["actor"], e["action"]) for e in events] == [("carol", "rollout.start")], events
    assert events[0]["origin"] == f"local, login {carol}"
    assert team.passwords[carol] not in started.stdout + started.stderr + refused.stderr + log.stdout


def test_set_role_changes_privileges_never_who_acts(team: Team, tmp_path: Path) -> None:
    """`-c role=` in the connection options is SET ROLE at connect: current_user becomes alice's
    role (carol is a member of it), session_user stays carol, and carol acts."""
    alice, carol = team.login("alice"), team.login("carol")
    with team.server.connect() as conn:
        conn.execute(f'GRANT "{alice}" TO "{carol}"')
    engine = engine_as(team, tmp_path, carol, Actor("alice", "local"), query=f"?options=-c%20role%3D{alice}")
    try:
        assert engine.store.login == Login(carol, alice, False)
        assert engine.actor.user == "carol" and engine.role == "operator"
    finally:
        engine.close()


def test_session_authorization_is_refused(team: Team, tmp_path: Path) -> None:
    """Only a superuser may change session_user (SET SESSION AUTHORIZATION); a console login cannot,
    at connect or later; a superuser session that did is refused by the store."""
    alice, carol = team.login("alice"), team.login("carol")
    opts = f"?options=-c%20session_authorization%3D{alice}"
    with pytest.raises(StoreError) as err:
        engine_as(team, tmp_path, carol, Actor("alice", "local"), query=opts)
    assert team.passwords[carol] not in str(err.value)
    with psycopg.connect(team.url(carol), password=team.passwords[carol], autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f'SET SESSION AUTHORIZATION "{alice}"')
        assert conn.execute("SELECT session_user").fetchone() == (carol,)
    # A superuser's startup option is ignored (session_user stays the login); SET SESSION
    # AUTHORIZATION later does change it, and the store refuses such a session.
    from opsconsole.engine.store.postgres import _login

    su = team.server.user
    with team.server.connect(team.db) as conn:
        assert _login(conn, su, "db") == Login(su, su, True)
        conn.execute(f'SET SESSION AUTHORIZATION "{alice}"')
        with pytest.raises(StoreError, match=f"runs as '{alice}' but authenticated as '{su}'"):
            _login(conn, su, "db")


def test_a_superuser_session_acts_as_its_login_and_is_warned(team: Team, tmp_path: Path) -> None:
    """No exception for a superuser: it acts as its login (viewer unless roles.logins/users say
    otherwise), whatever name the caller gives, and the engine carries the warning the CLI shows."""
    su = team.server.user
    cfg = replace(config_for(team, tmp_path, team.url(su)), store_password_env="PGTEST_SU")
    engine = Engine(
        cfg,
        tmp_path / "ws",
        Actor("alice", "local"),
        environ={"PGTEST_SU": team.superuser_environ().popitem()[1]},
    )
    try:
        assert engine.store.login is not None and engine.store.login.superuser
        assert engine.actor == Actor(su, f"local, login {su}") and engine.role == "viewer"
        assert engine.login_warning == (
            f"the store's login {su} is a PostgreSQL superuser: it can rewrite anything, the audit log "
            "included; connect consoles with their own non-superuser logins (opsconsole store grant)"
        )
    finally:
        engine.close()
    carol = engine_as(team, tmp_path, team.login("carol"), Actor("carol", "local"))
    try:
        assert carol.login_warning is None
    finally:
        carol.close()
    # roles.logins maps a superuser login like any other.
    assert acting(Actor("alice"), Login(su, su, True), {su: "dba"}) == Actor("dba", f"local, login {su}")


def test_sqlite_keeps_the_os_account(tmp_path: Path) -> None:
    me = Actor(os_user(), "local")
    assert acting(me, None, {os_user(): "someone"}) == me  # no login: the OS account, as before


def test_roles_logins_in_the_configuration(tmp_path: Path) -> None:
    from opsconsole.engine.config import ConfigError

    path = tmp_path / "opsconsole.yaml"
    path.write_text("roles:\n  users: {alice: approver}\n  logins: {ops_alice: alice, ops_bob: ''}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, {"WORKSPACE": str(tmp_path)})
    assert "roles.logins.ops_bob" in str(err.value) and "must not be empty" in str(err.value)
    path.write_text("roles:\n  users: {alice: approver}\n  logins: {ops_alice: alice}\n")
    cfg = load_config(path, {"WORKSPACE": str(tmp_path)})
    assert cfg.logins == {"ops_alice": "alice"}
    me = Actor("x", "local")
    assert acting(me, Login("ops_alice", "ops_alice", False), cfg.logins) == Actor(
        "alice", "local, login ops_alice"
    )
