"""People on the store under test, each acting as themselves: on SQLite the caller's name (the OS
account in production), on PostgreSQL a real login of their own (CREATE ROLE ... LOGIN PASSWORD,
given the console's grants) that `roles.logins` maps to the person's name. The person acting on a
PostgreSQL store is the authenticated login, never the name a caller hands the Engine, so a test
that wants twenty approvers needs twenty logins. Each login's password reaches the store from the
environment the engine is given (PASSWORD_ENV), never in the URL. Kept free of pytest: approver
processes (approver.py) open their engines through `Person.engine`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

PASSWORD_ENV = "OPSCONSOLE_TEST_LOGIN_PASSWORD"


@dataclass(frozen=True)
class Person:
    """How one person opens an engine on the store: `login` is None on SQLite."""

    name: str
    login: str | None = None
    url: str | None = None
    password: str | None = None

    def engine(self, config: Path | str, ws: Path | str, **kw: Any) -> Any:
        from opsconsole.engine.config import load_config
        from opsconsole.engine.core import Engine
        from opsconsole.engine.model import Actor

        cfg = load_config(config, {"WORKSPACE": str(ws)})
        if self.login is None:
            return Engine(cfg, Path(ws), Actor(self.name, "test"), **kw)
        cfg = replace(
            cfg, store=self.url, store_password_env=PASSWORD_ENV, logins={**cfg.logins, self.login: self.name}
        )
        # The caller's name is not who acts: the login is; it is named here only as a caller would.
        return Engine(cfg, Path(ws), Actor(self.name, "test"), environ={PASSWORD_ENV: self.password}, **kw)


class People:
    """Logins for people on one store URL; `drop()` removes them (roles are cluster-wide)."""

    def __init__(self, store_url: str, server: Any = None) -> None:
        self.store_url = store_url
        self.server = server  # tests.pg.server.PgServer, None for SQLite
        self.suffix = secrets.token_hex(3)
        self.people: dict[str, Person] = {}

    def add(self, *names: str) -> list[Person]:
        if self.server is None:
            for name in names:
                self.people.setdefault(name, Person(name))
            return [self.people[n] for n in names]
        from psycopg import sql

        from opsconsole.engine.store import open_store
        from opsconsole.engine.store.grants import grant_store
        from tests.pg.server import PASSWORD

        db = self.store_url.rsplit("/", 1)[1]
        # The owner (the superuser here, a DBA in production) migrates before anyone is granted.
        open_store(self.store_url, password_env="PGTEST", environ={"PGTEST": PASSWORD}).close()
        for name in names:
            if name in self.people:
                continue
            login, password = f"{name}_{self.suffix}", secrets.token_urlsafe(18)
            with self.server.connect() as conn:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(login), sql.Literal(password)
                    )
                )
            url = f"postgresql://{login}@{self.server.host}:{self.server.port}/{db}"
            self.people[name] = Person(name, login, url, password)
            grant_store(self.store_url, login, password_env="PGTEST", environ={"PGTEST": PASSWORD})
        return [self.people[n] for n in names]

    def __getitem__(self, name: str) -> Person:
        return self.people[name]

    def drop(self) -> None:
        if self.server is None:
            return
        from psycopg import sql

        db = self.store_url.rsplit("/", 1)[1]
        logins = [p.login for p in self.people.values() if p.login]
        if not logins:
            return
        with self.server.connect(db) as conn:  # their grants go first, or the roles cannot be dropped
            conn.execute(
                sql.SQL("DROP OWNED BY {}").format(sql.SQL(", ").join(sql.Identifier(x) for x in logins))
            )
        with self.server.connect() as conn:
            for login in logins:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))
