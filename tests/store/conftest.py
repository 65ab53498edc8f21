"""Every store kind the engine can run on, each test on a fresh database: a SQLite file in tmp, or a
new database on the session's PostgreSQL server (`pg_server` from tests/pg/server.py, registered for the whole session in tests/conftest.py).

`store_url` is the URL a configuration would hold; the PostgreSQL password reaches the store the
way it does in production, from the environment (PGPASSWORD here), never in the URL.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from opsconsole.engine.store import Store, open_store
from tests.pg.server import PASSWORD, PgServer
from tests.store.people import People

STORE_KINDS = ["sqlite", "postgresql"]


def fresh_pg_database(server: PgServer, prefix: str = "store") -> str:
    name = f"{prefix}_{secrets.token_hex(5)}"
    with server.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty PostgreSQL database's URL (no password in it); dropped after the test."""
    server: PgServer = request.getfixturevalue("pg_server")
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    name = fresh_pg_database(server)
    yield server.dsn(name)
    server.drop(name)


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state/opsconsole.db"  # tmp_path is absolute: sqlite:////…
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def people(request: pytest.FixtureRequest, store_url: str) -> Iterator[People]:
    """People acting on `store_url`: on PostgreSQL each one a login of their own (tests/store/people.py)."""
    server = request.getfixturevalue("pg_server") if store_url.startswith("postgresql://") else None
    p = People(store_url, server)
    yield p
    p.drop()


@pytest.fixture
def opener(store_url: str) -> Iterator[Callable[[], Store]]:
    """Opens another Store on the same database, as a second process would."""
    opened: list[Store] = []

    def open_one() -> Store:
        opened.append(open_store(store_url))
        return opened[-1]

    yield open_one
    for s in opened:
        s.close()


@pytest.fixture
def store(opener: Callable[[], Store]) -> Store:
    return opener()


def raw_execute(store_url: str, statement: str, *params: Any) -> int:
    """Run one statement on the database behind the store's back (`?` placeholders); its rowcount."""
    if store_url.startswith("sqlite:///"):
        raw = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        with raw:
            count = raw.execute(statement, params).rowcount
        raw.close()
        return count
    import psycopg

    with psycopg.connect(store_url, password=PASSWORD, autocommit=True) as conn:
        return conn.execute(statement.replace("?", "%s"), params).rowcount  # type: ignore[arg-type]


def raw_rows(store_url: str, query: str) -> list[tuple[Any, ...]]:
    """The rows of one query run behind the store's back."""
    if store_url.startswith("sqlite:///"):
        raw = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        rows = raw.execute(query).fetchall()
        raw.close()
        return rows
    import psycopg

    with psycopg.connect(store_url, password=PASSWORD, autocommit=True) as conn:
        return [tuple(row) for row in conn.execute(query).fetchall()]  # type: ignore[arg-type]
