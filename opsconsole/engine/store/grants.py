"""The least a console's PostgreSQL login needs: `opsconsole store grant LOGIN`.

A team's consoles and engines each connect with a login of their own (identity.py: the login is
who acts). That login gets, on the store's tables only:

- SELECT on every table, INSERT on every table the console appends to, UPDATE only where a row's
  state changes (rollouts, flags, schedules, outbox, improvements, backup runs, deploys, kv);
- on `audit`, `flag_history` and `verdict_history`: SELECT and INSERT, never UPDATE or DELETE;
- on `schema_version`: SELECT (the owner migrates, with `opsconsole store migrate`);
- no DELETE and no TRUNCATE anywhere (the console deletes no row), no DDL (it owns nothing and
  gets no CREATE on the schema), CONNECT on the database and USAGE on the schema.

The owner of the tables (the login that ran `store migrate`) runs the grant; the login itself must
exist (`CREATE ROLE alice LOGIN PASSWORD ...`, its password given by whoever administers the
server) and may not be a superuser, own the tables, or hold CREATEROLE: any of those would reach
past these grants, so the command refuses them. Advisory locks and LISTEN/NOTIFY need no grant.
A migration that adds a table needs the grant run again for every login.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import Login, StoreError

TABLE_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "schema_version": ("SELECT",),
    "rollouts": ("SELECT", "INSERT", "UPDATE"),
    "verdict_history": ("SELECT", "INSERT"),
    "flags": ("SELECT", "INSERT", "UPDATE"),
    "flag_history": ("SELECT", "INSERT"),
    "audit": ("SELECT", "INSERT"),
    "kv": ("SELECT", "INSERT", "UPDATE"),
    "flag_schedules": ("SELECT", "INSERT", "UPDATE"),
    "outbox": ("SELECT", "INSERT", "UPDATE"),
    "improvements": ("SELECT", "INSERT", "UPDATE"),
    "backup_runs": ("SELECT", "INSERT", "UPDATE"),
    "deploys": ("SELECT", "INSERT", "UPDATE"),
}
"""Every table of the schema with what a console login may do to it (a test checks that every
table the migrations create is here)."""


@dataclass(frozen=True)
class GrantReport:
    store: str
    login: str
    statements: list[str]


def grant_sql(login: str, database: str, schema: str = "public") -> list[str]:
    """The statements, as text, with the names quoted as identifiers."""
    from psycopg import sql

    who, db, sch = sql.Identifier(login), sql.Identifier(database), sql.Identifier(schema)
    out = [
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(sch, who),
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(sch, who),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, who),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sch, who),
    ]
    for table, privileges in TABLE_PRIVILEGES.items():
        out.append(
            sql.SQL("GRANT {} ON TABLE {}.{} TO {}").format(
                sql.SQL(", ").join(sql.SQL(p) for p in privileges), sch, sql.Identifier(table), who
            )
        )
    return [s.as_string(None) for s in out]


def grant_store(
    url: str,
    login: str,
    *,
    password_env: str | None = None,
    environ: Mapping[str, str] | None = None,
    dry_run: bool = False,
) -> GrantReport:
    """Give `login` the console's grants on the store at `url` (connected as the tables' owner or
    another login allowed to grant). With `dry_run`, only the statements. StoreError naming why when
    the login is missing, a superuser, holds CREATEROLE, or owns the store's tables."""
    import os

    import psycopg

    from .postgres import _first_line, parse_url

    scheme = url.partition("://")[0].lower()
    if scheme not in ("postgres", "postgresql"):
        raise StoreError("store grant: grants exist only on a PostgreSQL store (postgresql://...)")
    params, shown = parse_url(url, password_env, os.environ if environ is None else environ)
    if not login or "\x00" in login:
        raise StoreError("store grant: name the login to grant to")
    try:
        with psycopg.connect(**params, autocommit=True) as conn:
            statements = grant_sql(login, str(params["dbname"]))
            _refuse_unsafe(conn, login, shown)
            if not dry_run:
                with conn.transaction():
                    for statement in statements:
                        conn.execute(statement.encode())
    except psycopg.Error as exc:
        raise StoreError(f"store grant on {shown}: {_first_line(exc)}") from None
    return GrantReport(shown, login, statements)


def _refuse_unsafe(conn: Any, login: str, shown: str) -> None:
    row = conn.execute(
        "SELECT rolsuper, rolcreaterole, rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = %s", (login,)
    ).fetchone()
    if row is None:
        raise StoreError(
            f"store grant on {shown}: no role {login!r}; create it first (CREATE ROLE ... LOGIN PASSWORD ...)"
        )
    superuser, createrole, canlogin = bool(row[0]), bool(row[1]), bool(row[2])
    if superuser:
        raise StoreError(f"store grant on {shown}: {login!r} is a superuser; a console login must not be one")
    if createrole:
        raise StoreError(
            f"store grant on {shown}: {login!r} holds CREATEROLE (it could grant itself more); remove it first"
        )
    if not canlogin:
        raise StoreError(f"store grant on {shown}: {login!r} cannot log in (create it with LOGIN)")
    if conn.execute("SELECT pg_catalog.has_schema_privilege('public', 'public', 'CREATE')").fetchone()[0]:
        raise StoreError(
            f"store grant on {shown}: every role (PUBLIC) may create objects in schema public (a server "
            "older than PostgreSQL 15, or a changed default); run REVOKE CREATE ON SCHEMA public FROM PUBLIC"
        )
    owned = conn.execute(
        "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind = 'r' AND pg_catalog.pg_has_role(%s, c.relowner, 'USAGE')"
        " ORDER BY 1",
        (login,),
    ).fetchall()
    if owned:
        names = ", ".join(str(r[0]) for r in owned)
        raise StoreError(
            f"store grant on {shown}: {login!r} owns (or is a member of the owner of) {names}; an owner may "
            "alter and rewrite them whatever is granted: use a login of its own for the console"
        )


def store_login(
    url: str, *, password_env: str | None = None, environ: Mapping[str, str] | None = None
) -> Login | None:
    """Who a console would act as on the store at `url` (store.Login), read with one connection and
    without migrating anything (`config check`); None for a store that is not PostgreSQL. StoreError
    when the server cannot be reached or the session is not the login it authenticated."""
    if url.partition("://")[0].lower() not in ("postgres", "postgresql"):
        return None  # before any import: psycopg is an extra, absent where SQLite is all there is
    import os

    import psycopg

    from .postgres import _first_line, _login, parse_url

    params, shown = parse_url(url, password_env, os.environ if environ is None else environ)
    try:
        with psycopg.connect(**params, autocommit=True) as conn:
            return _login(conn, conn.info.user, shown)
    except psycopg.Error as exc:
        raise StoreError(f"cannot reach the PostgreSQL store {shown}: {_first_line(exc)}") from None
