"""Real PostgreSQL logins for the team-identity tests: a fresh database on the session's server
(migrated by the superuser, as a DBA would), logins created with CREATE ROLE ... LOGIN PASSWORD and
given the console's grants (`grant_store`). Each login's password reaches the store the way a
console's does: from the environment variable the configuration names (LOGIN_PASSWORD_ENV), never
in the URL. Login names carry a random suffix (roles are cluster-wide); `roles.logins` in the
configuration maps them to the people's names (alice, bob, carol)."""

from __future__ import annotations

import secrets
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from opsconsole.engine.store import open_store
from opsconsole.engine.store.grants import grant_store
from tests.pg.server import PASSWORD, PASSWORD_ENV, PgServer

LOGIN_PASSWORD_ENV = "OPSCONSOLE_STORE_PASSWORD"
PEOPLE = {"alice": "approver", "bob": "approver", "carol": "operator"}

PLAN = """
name: gated
phases:
  - name: review
    environment: staging
    flags: {enable_new_checkout: true}
    approval: {required: true, role: approver, distinct_approvers: 2}
  - name: after
    environment: staging
    flags: {new_checkout: 100}
"""


@dataclass
class Team:
    server: PgServer
    db: str
    suffix: str
    passwords: dict[str, str] = field(default_factory=dict)
    """login -> password"""

    def login(self, person: str) -> str:
        return f"{person}_{self.suffix}"

    def url(self, login: str | None = None, query: str = "") -> str:
        user = f"{login}@" if login else ""
        return f"postgresql://{user}{self.server.host}:{self.server.port}/{self.db}{query}"

    def environ(self, login: str) -> dict[str, str]:
        return {LOGIN_PASSWORD_ENV: self.passwords[login]}

    def superuser_environ(self) -> dict[str, str]:
        return {PASSWORD_ENV: PASSWORD}

    def create_login(self, login: str, *options: str) -> str:
        password = secrets.token_urlsafe(18)
        with self.server.connect() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} " + " ".join(options)).format(
                    sql.Identifier(login), sql.Literal(password)
                )
            )
        self.passwords[login] = password
        return login

    def config(self, tmp_path: Path, store: str | None = None) -> Path:
        """A configuration whose store URL names no user (each console's login comes from PGUSER or
        the URL it is given) and whose roles map the logins to people."""
        (tmp_path / "plans").mkdir(exist_ok=True)
        (tmp_path / "plans" / "gated.yaml").write_text(PLAN)
        users = ", ".join(f"{p}: {r}" for p, r in PEOPLE.items())
        logins = ", ".join(f"{self.login(p)}: {p}" for p in PEOPLE)
        main = f"""
        store: {store or self.url()}
        store_password_env: {LOGIN_PASSWORD_ENV}
        interval: 1s
        roles:
          default: viewer
          users: {{{users}}}
          logins: {{{logins}}}
        environments:
          staging:
            flags: {{kind: file, path: "${{WORKSPACE}}/flags/staging.json"}}
        plans: ["{tmp_path}/plans/*.yaml"]
        flags:
          enable_new_checkout: {{default: false}}
          new_checkout: {{type: percentage, default: 0}}
        kill_switch:
          flags_off: [enable_new_checkout]
        """
        path = tmp_path / "opsconsole.yaml"
        path.write_text(textwrap.dedent(main))
        return path

    def drop(self) -> None:
        self.server.drop(self.db)
        with self.server.connect() as conn:
            for login in self.passwords:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))


def make_team(server: PgServer) -> Team:
    """A migrated database and one granted login per person in PEOPLE."""
    team = Team(server, f"team_{secrets.token_hex(4)}", secrets.token_hex(3))
    with server.connect() as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0").format(
                sql.Identifier(team.db)
            )
        )
    owner = server.dsn(team.db)
    open_store(owner, password_env=PASSWORD_ENV, environ=team.superuser_environ()).close()
    for person in PEOPLE:
        login = team.create_login(team.login(person))
        grant_store(owner, login, password_env=PASSWORD_ENV, environ=team.superuser_environ())
    return team
