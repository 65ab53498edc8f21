"""A real PostgreSQL 15 server for the tests, one per session on a free 127.0.0.1 port, its data
directory in the session's temp dir, started only when a test asks for `pg_server`.

pytest-postgresql drives pg_ctl; as root (CI) it drives tests/pg/pg_ctl_unshared, which runs pg_ctl
in a user namespace because postgres refuses to run as root. Where the binaries are missing the
tests skip with the reason, except in CI, where that is a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from pytest_postgresql import factories

PG_BIN = Path(os.environ.get("OPSCONSOLE_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_CTL = Path(__file__).with_name("pg_ctl_unshared")
PASSWORD = "pg-test-Secret-7731"
"""The server's superuser password; tests check that no message ever carries it."""
PASSWORD_ENV = "OPSCONSOLE_TEST_PGPASSWORD"

_pg_proc = factories.postgresql_proc(
    executable=str(PG_CTL), host="127.0.0.1", port=None, user="postgres", password=PASSWORD
)


def _missing() -> str | None:
    for name in ("initdb", "pg_ctl", "postgres", "pg_dump", "pg_restore"):
        if not os.access(PG_BIN / name, os.X_OK):
            return f"PostgreSQL 15 binaries missing: no {PG_BIN / name} (make system-deps installs them)"
    if os.geteuid() == 0 and shutil.which("unshare") is None:
        return "unshare (util-linux) is missing: as root, postgres can run only in a user namespace"
    return None


@dataclass(frozen=True)
class PgServer:
    """How to reach the session's server."""

    host: str
    port: int
    user: str

    def dsn(self, dbname: str) -> str:
        """A DSN without the password (the code under test takes it from PASSWORD_ENV)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def environ(self) -> dict[str, str]:
        """The environment a backup call gets: ours, with the password in PASSWORD_ENV."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env[PASSWORD_ENV] = PASSWORD
        env["OPSCONSOLE_PG_BIN"] = str(PG_BIN)
        return env

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, password=PASSWORD, dbname=dbname, autocommit=True
        )

    def databases(self) -> set[str]:
        with self.connect() as conn:
            return {str(row[0]) for row in conn.execute("SELECT datname FROM pg_database").fetchall()}

    def drop(self, dbname: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> PgServer:
    reason = _missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs a real PostgreSQL: {reason}", pytrace=False)
        pytest.skip(reason)
    proc = request.getfixturevalue("_pg_proc")
    return PgServer(host=str(proc.host), port=int(proc.port), user=str(proc.user))


SAMPLE_COUNTS = {
    "public.customers": 120,
    "public.orders": 1_500,
    "public.empty": 0,
    "audit.events": 333,
}
"""The rows `sample_db` holds, by "schema.table"."""


def seed(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Tables in two schemas, with a foreign key, an index and an empty table."""
    conn.execute(
        """
        CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
        CREATE TABLE orders (id int PRIMARY KEY, customer int REFERENCES customers, total numeric);
        CREATE INDEX orders_customer ON orders (customer);
        CREATE TABLE empty (id int);
        CREATE SCHEMA audit;
        CREATE TABLE audit.events (at timestamptz DEFAULT now(), what text);
        INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 120) g;
        INSERT INTO orders SELECT g, 1 + g % 120, g * 1.5 FROM generate_series(1, 1500) g;
        INSERT INTO audit.events (what) SELECT 'event ' || g FROM generate_series(1, 333) g;
        """
    )


@pytest.fixture
def sample_db(pg_server: PgServer) -> Iterator[str]:
    """A fresh database holding SAMPLE_COUNTS; dropped after the test with whatever it made."""
    name = f"shop_{secrets.token_hex(4)}"
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with pg_server.connect(name) as conn:
        seed(conn)
    before = pg_server.databases()
    yield name
    for db in pg_server.databases() - before | {name}:
        pg_server.drop(db)
