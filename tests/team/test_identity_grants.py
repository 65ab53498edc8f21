"""Least privilege (issue 15 item 7): a console login holding only `opsconsole store grant`'s grants
runs the console's commands (start, approve, flag set, kill, all-clear) and cannot alter the schema
or rewrite the audit table. What it can still do with direct table access is shown too: append rows,
which the hash chain catches unless the forger computes the chain (it is not keyed)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from opsconsole.engine.audit import event_hash
from opsconsole.engine.config import load_config
from opsconsole.engine.core import Engine
from opsconsole.engine.model import Actor
from opsconsole.engine.store import StoreError
from opsconsole.engine.store.grants import TABLE_PRIVILEGES, grant_store
from tests.pg.server import PASSWORD, PASSWORD_ENV, PgServer
from tests.team.logins import LOGIN_PASSWORD_ENV, Team, make_team

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def team(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Team]:
    for name in ("PGPASSWORD", "PGUSER", "PGOPTIONS", LOGIN_PASSWORD_ENV):
        monkeypatch.delenv(name, raising=False)
    t = make_team(pg_server)
    yield t
    t.drop()


def engine_as(team: Team, tmp_path: Path, person: str) -> Engine:
    login = team.login(person)
    ws = tmp_path / f"ws-{person}"
    cfg = replace(load_config(team.config(tmp_path), {"WORKSPACE": str(ws)}), store=team.url(login))
    return Engine(cfg, ws, Actor(person), environ=team.environ(login))


def as_login(team: Team, person: str) -> psycopg.Connection[tuple[object, ...]]:
    login = team.login(person)
    return psycopg.connect(team.url(login), password=team.passwords[login], autocommit=True)


def test_every_table_of_the_schema_has_its_grants(team: Team) -> None:
    with team.server.connect(team.db) as conn:
        tables = {
            str(r[0])
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        }
    assert tables == set(TABLE_PRIVILEGES)


def test_a_granted_login_runs_the_consoles_commands(team: Team, tmp_path: Path) -> None:
    carol, alice, bob = (engine_as(team, tmp_path, p) for p in ("carol", "alice", "bob"))
    try:
        carol.set_flag("staging", "enable_new_checkout", True, "try it")
        r = carol.start_rollout("gated", "go")
        carol.command(r.id, "pause", "hold on")
        carol.command(r.id, "resume", "go on")
        res = carol.kill("drill")
        assert res.recorded, res
        alice.all_clear("drill over")
        assert not bob.kill_state().engaged
        actors = [(e.actor, e.action) for e in bob.audit_events()]
        assert ("carol", "kill_switch.engage") in actors and ("alice", "kill_switch.all_clear") in actors, (
            actors
        )
        assert bob.verify_audit().ok
    finally:
        for e in (carol, alice, bob):
            e.close()


FORBIDDEN = [
    "ALTER TABLE audit ADD COLUMN note text",
    "ALTER TABLE rollouts DROP COLUMN state",
    "CREATE TABLE mine (x int)",
    "DROP TABLE flags",
    "UPDATE audit SET actor = 'bob'",
    "DELETE FROM audit",
    "TRUNCATE audit",
    "DELETE FROM rollouts",
    "UPDATE flag_history SET reason = 'nothing'",
    "INSERT INTO schema_version (version, applied_at) VALUES (99, 0)",
    "CREATE INDEX sneaky ON audit (actor)",
]


def test_a_granted_login_cannot_alter_the_schema_or_rewrite_history(team: Team) -> None:
    allowed = []
    with as_login(team, "alice") as conn:
        for statement in FORBIDDEN:
            try:
                conn.execute(statement.encode())
                allowed.append(statement)
            except psycopg.errors.InsufficientPrivilege:
                pass
    assert allowed == []


def test_what_direct_table_access_can_still_do(team: Team, tmp_path: Path) -> None:
    """Appending to the audit table is allowed (the console appends); a row with a wrong hash is
    caught by `audit --verify`, a row whose hash the forger computed from the chain is not."""
    carol = engine_as(team, tmp_path, "carol")
    try:
        carol.set_flag("staging", "enable_new_checkout", True, "real")
        with as_login(team, "carol") as conn:
            seq, prev = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()  # type: ignore[misc]
            at, data = 1.0e9, "{}"
            good = event_hash(str(prev), int(seq) + 1, at, "alice", "forged", "rollout.approval", "x", data)  # type: ignore[call-overload]
            conn.execute(
                "INSERT INTO audit VALUES (%s, %s, 'alice', 'forged', 'rollout.approval', 'x', %s, %s, %s)",
                (int(seq) + 1, at, data, prev, good),  # type: ignore[call-overload]
            )
        assert carol.verify_audit().ok  # a chained forgery passes: the chain is not keyed
        with as_login(team, "carol") as conn:
            conn.execute(
                "INSERT INTO audit VALUES (%s, 1.0e9, 'bob', 'forged', 'x', 'x', '{}', %s, 'bad')",
                (int(seq) + 2, good),  # type: ignore[call-overload]
            )
        res = carol.verify_audit()
        assert not res.ok and res.first_broken == int(seq) + 2, res
    finally:
        carol.close()


def test_grant_refuses_superusers_createrole_owners_and_unknown_logins(team: Team) -> None:
    owner, env = team.server.dsn(team.db), team.superuser_environ()
    su_like = team.create_login(f"su_{team.suffix}", "SUPERUSER")
    cr = team.create_login(f"cr_{team.suffix}", "CREATEROLE")
    for login, why in (
        (su_like, "is a superuser"),
        (cr, "holds CREATEROLE"),
        (team.server.user, "is a superuser"),
        (f"nobody_{team.suffix}", "no role"),
    ):
        with pytest.raises(StoreError, match=why):
            grant_store(owner, login, password_env=PASSWORD_ENV, environ=env)
    own = team.create_login(f"own_{team.suffix}")
    with team.server.connect(team.db) as conn:
        conn.execute(f'ALTER TABLE kv OWNER TO "{own}"')
    with pytest.raises(StoreError, match="owns .* kv"):
        grant_store(owner, own, password_env=PASSWORD_ENV, environ=env)
    with team.server.connect(team.db) as conn:
        conn.execute(f'ALTER TABLE kv OWNER TO "{team.server.user}"')
        conn.execute(f'DROP OWNED BY "{own}"')


def test_the_cli_prints_the_sql_and_applies_it(team: Team, tmp_path: Path) -> None:
    login = team.create_login(f"erin_{team.suffix}")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OWNER_PW": PASSWORD}
    base = [sys.executable, "-m", "opsconsole", "--workspace", str(tmp_path / "ws"), "store", "grant", login]
    url = ["--url", team.server.dsn(team.db), "--password-env", "OWNER_PW"]
    printed = subprocess.run(
        [*base, *url, "--print"], capture_output=True, text=True, cwd=REPO, env=env, timeout=60
    )
    assert printed.returncode == 0, printed.stderr
    assert f'GRANT SELECT, INSERT ON TABLE "public"."audit" TO "{login}";' in printed.stdout
    with team.server.connect(team.db) as conn:  # --print changed nothing
        assert conn.execute("SELECT has_table_privilege(%s, 'audit', 'SELECT')", (login,)).fetchone() == (
            False,
        )
    done = subprocess.run([*base, *url], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert done.returncode == 0 and "has the console's grants" in done.stdout, done.stderr
    assert PASSWORD not in printed.stdout + printed.stderr + done.stdout + done.stderr
    with team.server.connect(team.db) as conn:
        rows = conn.execute(
            "SELECT has_table_privilege(%s, 'audit', 'INSERT'), has_table_privilege(%s, 'audit', 'UPDATE'),"
            " has_table_privilege(%s, 'rollouts', 'DELETE')",
            (login, login, login),
        ).fetchone()
    assert rows == (True, False, False)
    refused = subprocess.run(
        [*base[:-1], team.server.user, *url], capture_output=True, text=True, cwd=REPO, env=env, timeout=60
    )
    assert refused.returncode != 0 and "is a superuser" in refused.stderr, refused
