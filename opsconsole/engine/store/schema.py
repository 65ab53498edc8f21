"""The one schema both stores share, as numbered migrations.

Only SQL that SQLite and PostgreSQL both accept: portable types (TEXT, BIGINT, DOUBLE PRECISION;
booleans as INTEGER 0/1), no AUTOINCREMENT or SERIAL (sequence numbers are assigned inside the writing
transaction), no dialect-only clauses. Times are POSIX seconds in DOUBLE PRECISION, which gives back
the exact double that was written in both databases (the audit hash relies on that).
Never edit a released migration: append a new one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import StoreError

SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT NOT NULL PRIMARY KEY,
    applied_at DOUBLE PRECISION NOT NULL
)
"""

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """
            CREATE TABLE rollouts (
                id TEXT NOT NULL PRIMARY KEY,
                plan TEXT NOT NULL,
                state TEXT NOT NULL,
                started_by TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                version BIGINT NOT NULL,
                body TEXT NOT NULL
            )
            """,
            "CREATE INDEX rollouts_by_state ON rollouts (state)",
            "CREATE INDEX rollouts_by_created ON rollouts (created_at)",
            """
            CREATE TABLE verdict_history (
                rollout_id TEXT NOT NULL,
                seq BIGINT NOT NULL,
                phase TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (rollout_id, seq)
            )
            """,
            """
            CREATE TABLE flags (
                environment TEXT NOT NULL,
                name TEXT NOT NULL,
                value TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                updated_by TEXT NOT NULL,
                PRIMARY KEY (environment, name)
            )
            """,
            # old_value / new_value rather than old / new: those are keywords in SQL:2016.
            """
            CREATE TABLE flag_history (
                environment TEXT NOT NULL,
                name TEXT NOT NULL,
                seq BIGINT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                actor TEXT NOT NULL,
                origin TEXT NOT NULL,
                old_value TEXT,
                new_value TEXT NOT NULL,
                reason TEXT NOT NULL,
                PRIMARY KEY (environment, name, seq)
            )
            """,
            """
            CREATE TABLE audit (
                seq BIGINT NOT NULL PRIMARY KEY,
                at DOUBLE PRECISION NOT NULL,
                actor TEXT NOT NULL,
                origin TEXT NOT NULL,
                action TEXT NOT NULL,
                target TEXT NOT NULL,
                data TEXT NOT NULL,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL
            )
            """,
            "CREATE INDEX audit_by_target ON audit (target, seq)",
            """
            CREATE TABLE kv (
                key TEXT NOT NULL PRIMARY KEY,
                value TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )
            """,
        ],
    ),
    (
        2,
        [
            # Scheduled flag changes. `steps` is JSON [[at, value], ...]; `next_at` repeats the time
            # of steps[next_index] (NULL once nothing is pending) so the runner's every-tick question
            # "is anything due?" is one lookup in flag_schedules_due.
            """
            CREATE TABLE flag_schedules (
                id BIGINT NOT NULL PRIMARY KEY,
                environment TEXT NOT NULL,
                flag TEXT NOT NULL,
                steps TEXT NOT NULL,
                next_index BIGINT NOT NULL,
                next_at DOUBLE PRECISION,
                state TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_origin TEXT NOT NULL,
                reason TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                ended_reason TEXT NOT NULL
            )
            """,
            "CREATE INDEX flag_schedules_due ON flag_schedules (state, next_at)",
            "CREATE INDEX flag_schedules_by_flag ON flag_schedules (environment, flag)",
            # The first recorded change of each flag dates flags without a `created` date (stale.py).
            "CREATE INDEX flag_history_by_name ON flag_history (name, at)",
        ],
    ),
    (
        3,
        [
            # The notification outbox: a notification is written here with the event it reports and
            # sent from here, so a short-lived process that exits before the POST loses nothing.
            # `state` is pending | delivered | failed; `next_at` is when a pending one may be tried
            # (a sender claims it by moving next_at past its own timeout).
            """
            CREATE TABLE outbox (
                id BIGINT NOT NULL PRIMARY KEY,
                event TEXT NOT NULL,
                url TEXT NOT NULL,
                body TEXT NOT NULL,
                timeout DOUBLE PRECISION NOT NULL,
                state TEXT NOT NULL,
                attempts BIGINT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                next_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                last_error TEXT NOT NULL
            )
            """,
            "CREATE INDEX outbox_due ON outbox (state, next_at)",
        ],
    ),
    (
        4,
        [
            # The improvement queue. Columns hold what is filtered or compared (status, version) and
            # what the pane sorts on (quality); the rest of the record is JSON in `body`, so a field
            # added to the record needs no migration. Ids are the agent's, unique per environment.
            """
            CREATE TABLE improvements (
                environment TEXT NOT NULL,
                id TEXT NOT NULL,
                status TEXT NOT NULL,
                quality DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                version BIGINT NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (environment, id)
            )
            """,
            "CREATE INDEX improvements_by_status ON improvements (status, environment)",
        ],
    ),
    (
        5,
        [
            # Backup runs, kept after their copy is pruned (the history is the evidence). Columns hold
            # what is filtered or ordered on and the compare-and-set version; the rest (size, sha256,
            # locations, member manifest or row counts, verification) is JSON in `body`.
            """
            CREATE TABLE backup_runs (
                id TEXT NOT NULL PRIMARY KEY,
                target TEXT NOT NULL,
                trigger TEXT NOT NULL,
                actor TEXT NOT NULL,
                status TEXT NOT NULL,
                started_at DOUBLE PRECISION NOT NULL,
                ended_at DOUBLE PRECISION,
                version BIGINT NOT NULL,
                body TEXT NOT NULL
            )
            """,
            "CREATE INDEX backup_runs_by_target ON backup_runs (target, started_at)",
        ],
    ),
    (
        6,
        [
            # Docker deploys' progress, written before each step that changes containers (as the
            # workspace journal file is), so every console on the same store sees a deploy, its steps
            # and its rollback image. The record (phase, image IDs, steps with times, outcome) is
            # JSON in `body`; never an environment value.
            """
            CREATE TABLE deploys (
                id TEXT NOT NULL PRIMARY KEY,
                service TEXT NOT NULL,
                phase TEXT NOT NULL,
                started_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                body TEXT NOT NULL
            )
            """,
            "CREATE INDEX deploys_by_service ON deploys (service, started_at)",
        ],
    ),
]

LATEST_VERSION = MIGRATIONS[-1][0]


def migrate(conn: Any, begin: str = "BEGIN", clock: Callable[[], float] = time.time) -> list[int]:
    """Apply the missing migrations in order, each in its own transaction; returns those applied.

    `conn` is a DB-API connection in autocommit mode (the caller's driver must not open transactions
    by itself); `begin` is the statement that starts a transaction holding the write lock
    ("BEGIN IMMEDIATE" in SQLite), so two processes opening a new database at once apply each
    migration exactly once: the second sees the version the first recorded.
    """
    conn.execute(SCHEMA_VERSION_TABLE)
    applied = []
    for version, statements in MIGRATIONS:
        conn.execute(begin)
        try:
            current = current_version(conn)
            refuse_newer(current)
            if current < version:
                for statement in statements:
                    conn.execute(statement)
                # Literal values: the only statement here with parameters, and they are ours.
                conn.execute(
                    f"INSERT INTO schema_version (version, applied_at) VALUES ({int(version)}, {float(clock())!r})"
                )
                applied.append(version)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return applied


def refuse_newer(version: int) -> None:
    if version > LATEST_VERSION:
        raise StoreError(
            f"the database has schema version {version}, newer than this opsconsole knows "
            f"({LATEST_VERSION}); upgrade opsconsole"
        )


def version_on_disk(conn: Any) -> int:
    """The schema version with a plain read (0 for a new database), so that opening a current
    database never needs the write lock: migrate() is for when this is behind."""
    try:
        return current_version(conn)
    except Exception as exc:
        if "no such table" in str(exc) or "does not exist" in str(exc):
            return 0
        raise


def current_version(conn: Any) -> int:
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0
