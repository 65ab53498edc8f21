"""`opsconsole store migrate` and `opsconsole store copy`: bring a store's schema up to date, and move
a workspace's whole history from one store to another (typically SQLite to PostgreSQL for a team).

The copy is row for row, as stored: audit rows keep their seq, time, text and hashes, so the chain
verifies on the destination exactly as on the source (checked before the copy commits). It runs in
one write transaction on the destination, which must be empty: nothing is merged or overwritten, and
a failure half-way leaves the destination as it was.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import StoreError, open_store
from .schema import MIGRATIONS

TABLES: tuple[str, ...] = (
    "rollouts",
    "verdict_history",
    "flags",
    "flag_history",
    "flag_schedules",
    "audit",
    "kv",
    "outbox",
    "improvements",
    "backup_runs",
    "deploys",
)
"""Every table of the schema that holds data, in the order they are copied (schema_version is the
destination's own, written by its migrations)."""
BATCH = 500


@dataclass(frozen=True)
class MigrateReport:
    where: str
    version: int
    applied: list[int]


@dataclass(frozen=True)
class CopyReport:
    source: str
    destination: str
    rows: dict[str, int] = field(default_factory=dict)
    audit_events: int = 0
    audit_head: str | None = None


def _shown(url: str) -> str:
    from .postgres import shown_url

    return shown_url(url)


def migrate_store(
    url: str, password_env: str | None = None, environ: Mapping[str, str] | None = None
) -> MigrateReport:
    """Open the store at `url`, which applies whatever migrations it lacks; says which."""
    store = open_store(url, password_env=password_env, environ=environ)
    try:
        applied = list(getattr(store, "applied", []))  # both stores record it
        with store.read() as tx:
            version = int(tx._scalar("SELECT MAX(version) FROM schema_version") or 0)
    finally:
        store.close()
    return MigrateReport(_shown(url), version, applied)


def copy_store(
    source: str,
    destination: str,
    *,
    source_password_env: str | None = None,
    destination_password_env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> CopyReport:
    """Copy every row of `source` into the empty store at `destination` (created and migrated if
    new). StoreError, naming the table, when the destination already holds data; StoreError when the
    copied audit chain does not verify (then nothing is written)."""
    from .. import audit

    if _same(source, destination):
        raise StoreError("store copy: --from and --to are the same store")
    scheme, _, rest = source.partition("://")
    if scheme.lower() == "sqlite" and rest.startswith("/") and not Path(rest[1:]).is_file():
        # Opening would create an empty database, and the copy would copy nothing.
        raise StoreError(f"store copy: there is no SQLite store at {rest[1:]} (--from)")
    src = open_store(source, read_only=True, password_env=source_password_env, environ=environ)
    try:
        dst = open_store(destination, password_env=destination_password_env, environ=environ)
    except BaseException:
        src.close()
        raise
    shown_dst = _shown(destination)
    rows: dict[str, int] = {}
    try:
        with src.read() as stx, dst.transaction() as dtx:
            for table in TABLES:
                if dtx._scalar(f"SELECT 1 FROM {table} LIMIT 1") is not None:
                    raise StoreError(
                        f"store copy: the destination {shown_dst} is not empty (table {table} has rows); "
                        "copy into a new database"
                    )
            for table in TABLES:
                rows[table] = _copy_table(stx, dtx, table)
            result = audit.verify_rows(dtx.audit_rows())
            if not result.ok:
                raise StoreError(
                    f"store copy: the audit chain does not verify on {shown_dst} after copying "
                    f"(event {result.first_broken}: {result.problem}); nothing was written"
                )
            last = dtx.list_audit(since_seq=result.checked - 1, limit=1) if result.checked else []
    finally:
        src.close()
        dst.close()
    return CopyReport(_shown(source), shown_dst, rows, result.checked, last[0].hash if last else None)


def _copy_table(stx: Any, dtx: Any, table: str) -> int:
    columns = _columns(table)
    cur = stx._run(f"SELECT {', '.join(columns)} FROM {table}")
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    count = 0
    dtx._writing("store copy")
    for row in _batches(cur):
        dtx._run(insert, row)
        count += 1
    return count


def _batches(cur: Any) -> Iterator[tuple[Any, ...]]:
    while batch := cur.fetchmany(BATCH):
        yield from (tuple(row) for row in batch)


_COLUMNS: dict[str, list[str]] = {}


def _columns(table: str) -> list[str]:
    """The table's columns as the migrations create them (the same in both databases)."""
    if not _COLUMNS:
        import re

        for _, statements in MIGRATIONS:
            for statement in statements:
                m = re.match(r"\s*CREATE TABLE (\w+) \((.*)\)\s*$", statement, re.S)
                if m is None:
                    continue
                names = []
                for line in m.group(2).split(",\n"):
                    word = line.strip().split()[0] if line.strip() else ""
                    if word and word.upper() != "PRIMARY":
                        names.append(word)
                _COLUMNS[m.group(1)] = names
    try:
        return _COLUMNS[table]
    except KeyError:
        raise StoreError(f"store copy: no table {table} in the schema") from None


def _same(a: str, b: str) -> bool:
    return a.strip().rstrip("/") == b.strip().rstrip("/")
