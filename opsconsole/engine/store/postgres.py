"""The shared store: one PostgreSQL database, for a team whose consoles and engines run on several
machines. Same schema (schema.py) and same queries (Tx in sqlite.py) as the embedded store.

The differences from SQLite are few and named here:

- Placeholders: Tx writes `?`; psycopg wants `%s` (`_pg_sql`). The SQL holds no literal `%`.
- The write lock (`WRITE_LOCK`): SQLite's BEGIN IMMEDIATE makes a write transaction the only writer
  from its first statement, which is what lets Tx check state and then write (the next audit seq, a
  rollout's approvals, the next schedule id). Here a write transaction takes the same guarantee
  explicitly: its first statement is `pg_advisory_xact_lock(WRITE_LOCK)`, held until commit or
  rollback, at READ COMMITTED so every statement after the lock sees everything committed before it.
  Writers queue for at most the busy timeout (`lock_timeout`), then StoreBusy, as in SQLite.
- Reads: REPEATABLE READ READ ONLY, one snapshot, never waiting for a writer (MVCC).
- Migrations: schema.migrate under a session advisory lock (`MIGRATE_LOCK`), so two processes
  opening a new database at once apply each migration once.
- Change notices: a write transaction that changed tables sends, as its last statement before
  COMMIT, a NOTIFY on `CHANNEL` naming them (`_notice`). PostgreSQL delivers it only if the
  transaction commits, after the commit, to every session listening (live.py, in every console and
  engine), so another process learns within milliseconds what to read again.
- Text: PostgreSQL refuses NUL characters in TEXT (a StoreError naming that; SQLite stores them),
  and sorts names by the database's collation: create it with LC_COLLATE 'C' (or C.UTF-8) so lists
  come back in SQLite's byte order. Numbers and times round-trip exactly in both.

The password never travels in the URL (a URL with one is refused): it comes from the environment
variable the caller names, else libpq's own PGPASSWORD or pgpass file. No message carries it; the
URL shown is the redacted one. psycopg and psycopg_pool are imported only when this store is opened.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from ..model import Rollout
from ..redact import redact_url
from . import Login, Store, StoreBusy, StoreError, codec
from .schema import LATEST_VERSION, migrate, refuse_newer, version_on_disk
from .sqlite import BUSY_TIMEOUT_MS, ROWS_PER_STATEMENT, Tx

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

WRITE_LOCK = 0x6F707363_6F6E0001
"""The advisory lock key every write transaction holds (bigint; "opscon" + 1)."""
MIGRATE_LOCK = 0x6F707363_6F6E0002
"""The advisory lock key held while migrations are checked and applied."""
CONNECT_TIMEOUT = 5.0
"""The longest opening a connection may take: an unreachable server is an error in seconds."""
IDLE_IN_TRANSACTION_MS = 60_000
"""The server ends a session idle inside a transaction this long (the engine never waits inside one)."""
POOL_MAX = 4
"""Connections each of a store's two pools (readers, writers) keeps at most: one per transaction
running at the same time in this process."""

CHANNEL = "opsconsole_changes"
"""The NOTIFY channel of committed changes; its payload is `notice_payload`'s small JSON."""
ORIGIN = uuid.uuid4().hex[:12]
"""Names this process in its notices (with the store's own number), so a listener can tell its own."""

_BUSY_STATES = {"40001", "40P01", "55P03", "57014"}
"""serialization_failure, deadlock_detected, lock_not_available, query_canceled (lock_timeout)."""
_SQL_CACHE: dict[str, str] = {}
_WRITTEN: dict[str, str | None] = {}
"""SQL -> the table it writes (None: a read)."""
_WRITE = re.compile(r"\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(\w+)", re.IGNORECASE)


def _pg_sql(sql: str) -> str:
    """Tx's `?` placeholders as psycopg's `%s`."""
    out = _SQL_CACHE.get(sql)
    if out is None:
        out = _SQL_CACHE[sql] = sql.replace("?", "%s")
    return out


def parse_url(url: str, password_env: str | None, environ: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    """Connection keywords for `url` (postgresql://user@host[:port]/db) and the URL as shown.
    A password in the URL is refused: it would be shown and logged wherever the URL is."""
    shown = shown_url(url)
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # pragma: no cover - part of every install that uses this store
        raise StoreError("the PostgreSQL store needs psycopg: install opsconsole[postgres]") from None
    try:
        params = {k: v for k, v in conninfo_to_dict(url).items() if v is not None}
    except Exception:
        raise StoreError(
            f"store URL {shown!r}: not a PostgreSQL URL (postgresql://user@host[:port]/db)"
        ) from None
    if "password" in params:
        raise StoreError(
            f"store URL {shown!r} carries a password, which would be shown and logged; put it in an "
            "environment variable (store_password_env, or PGPASSWORD) or a pgpass file"
        )
    if not params.get("dbname"):
        raise StoreError(f"store URL {shown!r} names no database (postgresql://user@host[:port]/db)")
    if password_env:
        if password_env not in environ:
            raise StoreError(f"store URL {shown!r}: the password variable {password_env} is not set")
        params["password"] = environ[password_env]
    params.setdefault("connect_timeout", str(int(CONNECT_TIMEOUT)))
    # A server that vanishes without closing the connection (a partition, a dead host) is noticed
    # in about 25 s rather than never.
    params.setdefault("keepalives", "1")
    params.setdefault("keepalives_idle", "10")
    params.setdefault("keepalives_interval", "5")
    params.setdefault("keepalives_count", "3")
    # The write lock is a transaction's: a process frozen inside one (stopped, swapped out) loses it,
    # and its transaction, after a minute instead of holding every other writer up for ever.
    params.setdefault("options", f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}")
    params.setdefault("application_name", application_name("store"))
    return params, shown


def application_name(role: str) -> str:
    """What pg_stat_activity shows for a connection of this process: `opsconsole ROLE user@host:pid`
    (the server keeps 63 bytes). The operating-system user: the database login is session_user."""
    import getpass

    try:
        user = getpass.getuser()
    except Exception:  # no user name (a container without passwd entry)
        user = str(os.getuid())
    return f"opsconsole {role} {user}@{socket.gethostname()}:{os.getpid()}"[:63]


def shown_url(url: str) -> str:
    """The URL as messages show it: the user name kept (a store URL names a login, not a token),
    a password and secret-looking parameters masked."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not sep or not at or ":" in userinfo or "/" in userinfo or "?" in userinfo:
        return redact_url(url)
    masked = redact_url(f"{scheme}://{host}")
    return masked.replace("://", f"://{userinfo}@", 1)


class PgTx(Tx):
    """Tx over a psycopg connection: the same queries, `?` turned into `%s`. Remembers the tables
    its statements write, for the notice sent before commit."""

    def __init__(self, conn: Any, writable: bool, where: str) -> None:
        super().__init__(conn, writable, where)
        self.written: set[str] = set()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        import psycopg

        if not self._open:
            raise StoreError("a store transaction was used after it ended")
        self._note_write(sql)
        try:
            return self._conn.execute(_pg_sql(sql), tuple(params))
        except psycopg.Error as exc:
            raise _store_error(f"{self._where}: ", exc) from exc

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """psycopg's executemany: the rows go in one pipeline, a single round trip."""
        import psycopg

        if not self._open:
            raise StoreError("a store transaction was used after it ended")
        self._note_write(sql)
        try:
            cur = self._conn.cursor()
            cur.executemany(_pg_sql(sql), [tuple(row) for row in rows])
            return int(cur.rowcount)
        except psycopg.Error as exc:
            raise _store_error(f"{self._where}: ", exc) from exc

    def update_rollouts(self, items: Sequence[tuple[Rollout, int]]) -> int:
        """One UPDATE ... FROM (VALUES ...) per ROWS_PER_STATEMENT rollouts: a single statement for the
        server, where executemany is one per rollout (SQLite keeps executemany: UPDATE FROM needs
        SQLite 3.33)."""
        self._writing("update_rollouts")
        written = 0
        for start in range(0, len(items), ROWS_PER_STATEMENT):
            chunk = items[start : start + ROWS_PER_STATEMENT]
            one = (
                "(CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS DOUBLE PRECISION),"
                " CAST(? AS DOUBLE PRECISION), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT),"
                " CAST(? AS BIGINT))"
            )
            cur = self._run(
                "UPDATE rollouts SET plan = v.column1, state = v.column2, started_by = v.column3,"
                " created_at = v.column4, updated_at = v.column5, version = v.column6 + 1, body = v.column7"
                f" FROM (VALUES {', '.join(one for _ in chunk)}) AS v"
                " WHERE rollouts.id = v.column8 AND rollouts.version = v.column9",
                [
                    value
                    for r, expected in chunk
                    for value in (
                        r.plan,
                        str(r.state),
                        r.started_by,
                        r.created_at,
                        r.updated_at,
                        expected,
                        codec.rollout_to_body(r),
                        r.id,
                        expected,
                    )
                ],
            )
            written += max(0, int(cur.rowcount))
        return written

    def _note_write(self, sql: str) -> None:
        if self.writable:
            table = _WRITTEN.get(sql, "")
            if table == "":
                match = _WRITE.match(sql)
                table = _WRITTEN[sql] = match.group(1).lower() if match else None
            if table is not None:
                self.written.add(table)

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Statements inside go to the server without waiting for each answer until one is read
        (psycopg's pipeline mode): a round trip per read instead of per statement, for a transaction
        of many small writes (the kill switch's aborts). A write's row count is not known inside.
        Any error, whenever the server reports it, is a StoreError."""
        import psycopg

        try:
            with self._conn.pipeline():
                yield
        except psycopg.Error as exc:
            raise _store_error(f"{self._where}: ", exc) from exc


class _Local(threading.local):
    conn: psycopg.Connection[Any] | None = None
    tx: PgTx | None = None
    depth: int = 0


class PostgresStore(Store):
    def __init__(
        self,
        url: str,
        read_only: bool = False,
        password_env: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        params, self.shown = parse_url(url, password_env, os.environ if environ is None else environ)
        self.origin = f"{ORIGIN}.{next(_STORES)}"
        """This store's name in the notices it sends (live.py ignores its own)."""
        self.read_only = read_only
        self._local = _Local()
        try:
            from psycopg_pool import ConnectionPool
        except ImportError:  # pragma: no cover
            raise StoreError(
                "the PostgreSQL store needs psycopg_pool: install opsconsole[postgres]"
            ) from None
        self._params = params
        self.applied = self._prepare(params)
        """The migrations this open applied (empty when the schema was already current)."""
        # Two pools, as the SQLite store has two connections: a reader never waits for a connection
        # that writers queueing for the write lock hold, in this process or another.
        self._writers: ConnectionPool[Any] | None = None
        self._readers: ConnectionPool[Any] | None = None
        try:
            self._readers = _pool(ConnectionPool, params, "opsconsole-read", self.shown)
            if not read_only:
                self._writers = _pool(ConnectionPool, params, "opsconsole-write", self.shown)
        except StoreError:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({self.shown!r})"

    def _prepare(self, params: dict[str, Any]) -> list[int]:
        """Connect once, check the schema version and apply what is missing."""
        import psycopg

        try:
            conn = psycopg.connect(**params, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot reach the PostgreSQL store {self.shown}: {_first_line(exc)}") from None
        try:
            self.login = _login(conn, conn.info.user, self.shown)
            version = version_on_disk(conn)
            refuse_newer(version)
            if version >= LATEST_VERSION:
                return []
            conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
            try:
                return migrate(conn)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))
        except psycopg.Error as exc:
            raise _store_error(f"cannot prepare the PostgreSQL store {self.shown}: ", exc) from exc
        finally:
            conn.close()

    @contextmanager
    def transaction(self, timeout: float | None = None) -> Iterator[Tx]:
        if self.read_only:
            raise StoreError(f"{self.shown}: this store is open read-only; a write needs a writable session")
        outer = self._local.tx
        if outer is not None:
            if not outer.writable:
                raise StoreError("cannot start a write transaction inside a read transaction (Store.read())")
            yield from self._savepoint(outer)
            return
        wait = BUSY_TIMEOUT_MS / 1000 if timeout is None else max(0.001, timeout)
        begin = [
            "BEGIN ISOLATION LEVEL READ COMMITTED",
            f"SET LOCAL lock_timeout = {max(1, int(wait * 1000))}",
            f"SELECT pg_advisory_xact_lock({WRITE_LOCK})",
            "SET LOCAL lock_timeout = 0" if timeout is None else "",
        ]
        assert self._writers is not None  # a writable store has its writers' pool
        yield from self._top_level(self._writers, begin, writable=True, wait=wait)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[str | None]:
        """A session advisory lock keyed by `name`, on a connection opened for it alone (the lock
        lives exactly as long as that session: a holder that dies or loses the server frees it).
        Never waits: when another session holds it, yields who (from its application_name)."""
        import psycopg

        key = named_lock(name)
        params = {**self._params, "application_name": application_name("lock")}
        try:
            conn = psycopg.connect(**params, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot reach the PostgreSQL store {self.shown}: {_first_line(exc)}") from None
        try:
            try:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                holder = None if row and row[0] else _lock_holder(conn, key)
            except psycopg.Error as exc:
                raise _store_error(f"lock {name} on {self.shown}: ", exc) from None
            try:
                yield holder
            finally:
                if holder is None:
                    with suppress(psycopg.Error):
                        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        finally:
            conn.close()  # the session ends, and every lock it held with it

    @contextmanager
    def read(self) -> Iterator[Tx]:
        outer = self._local.tx
        if outer is not None:
            view = PgTx(outer._conn, writable=False, where=self.shown)
            try:
                yield view
            finally:
                view._open = False
            return
        assert self._readers is not None
        yield from self._top_level(
            self._readers,
            ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"],
            writable=False,
            wait=BUSY_TIMEOUT_MS / 1000,
        )

    def close(self) -> None:
        for pool in (self._readers, self._writers):
            if pool is not None:
                pool.close()

    # ------------------------------------------------------------------------------ internals

    def _top_level(
        self, pool: ConnectionPool[Any], begin: list[str], writable: bool, wait: float
    ) -> Iterator[Tx]:
        import psycopg

        conn = self._begin(pool, begin, wait)
        tx: PgTx | None = None
        try:
            tx = PgTx(conn, writable, where=self.shown)
            self._local.tx, self._local.conn = tx, conn
            try:
                yield tx
            except BaseException:
                _rollback(conn)
                raise
            try:
                with conn.pipeline():  # the notice and the commit in one round trip
                    if writable and tx.written:
                        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self._notice(tx)))
                    conn.execute("COMMIT")
            except psycopg.Error as exc:
                _rollback(conn)
                raise _store_error(f"{self.shown}: commit failed, nothing was written: ", exc) from exc
        finally:
            if tx is not None:
                tx._open = False
            self._local.tx, self._local.conn = None, None
            pool.putconn(conn)
        if tx.audit_head is not None and self.after_audit_commit is not None:
            self.after_audit_commit(*tx.audit_head)

    def _notice(self, tx: PgTx) -> str:
        """What the commit changed, for other processes: the tables written and the audit head."""
        return notice_payload(self.origin, tx.written, tx.audit_head[0] if tx.audit_head else None)

    def _begin(self, pool: ConnectionPool[Any], begin: list[str], wait: float) -> Any:
        """A pooled connection with the transaction begun. A connection the server dropped while it
        sat in the pool (a restart, a failover) fails its BEGIN: it is discarded and a fresh one
        tried (as many times as the pool may hold), so a connection needs no test query before every
        transaction."""
        import psycopg
        from psycopg_pool import PoolClosed, PoolTimeout

        for attempt in range(POOL_MAX + 1):
            failed_before = pool.get_stats().get("connections_errors", 0)
            try:
                conn = pool.getconn(timeout=wait)
            except PoolTimeout:
                if pool.get_stats().get("connections_errors", 0) > failed_before:
                    # The pool tried to connect while we waited and could not: the server is down,
                    # not busy (a kill switch says which; the runner reports store_error).
                    raise StoreError(
                        f"{self.shown}: the PostgreSQL server is unreachable (no connection within {wait:g} s)"
                    ) from None
                raise StoreBusy(
                    f"{self.shown}: no connection to the store within {wait:g} s (the server is "
                    f"unreachable, or {POOL_MAX} transactions of this process are running)"
                ) from None
            except PoolClosed:
                raise StoreError(f"the store {self.shown} is closed") from None
            try:
                # One round trip for the lot: BEGIN, the lock's wait and the write lock (pipelined;
                # an error, the lock's timeout included, is raised when the pipeline ends).
                with conn.pipeline():
                    for statement in filter(None, begin):
                        conn.execute(statement)
                return conn
            except psycopg.Error as exc:
                _rollback(conn)
                pool.putconn(conn)  # a broken one is discarded by the pool
                if conn.closed and attempt < POOL_MAX:
                    continue
                raise _store_error(f"{self.shown}: cannot start a transaction: ", exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _savepoint(self, outer: PgTx) -> Iterator[Tx]:
        import psycopg

        self._local.depth += 1
        name = f"nested_{self._local.depth}"
        conn = outer._conn
        head = outer.audit_head
        try:
            try:
                conn.execute(f"SAVEPOINT {name}")
            except psycopg.Error as exc:
                raise _store_error(f"{self.shown}: ", exc) from exc
            try:
                yield outer
            except BaseException:
                conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                conn.execute(f"RELEASE SAVEPOINT {name}")
                outer.audit_head = head  # its events are undone: not the head to anchor
                raise
            conn.execute(f"RELEASE SAVEPOINT {name}")
        finally:
            self._local.depth -= 1


def named_lock(name: str) -> int:
    """The advisory key (a signed bigint) for a named lock: the first 8 bytes of its sha256, so
    two names collide with odds of one in 2**64 (and never with the fixed keys above, unless so)."""
    digest = hashlib.sha256(f"opsconsole:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_holder(conn: Any, key: int) -> str:
    """Who holds the advisory lock `key`: "user@host:pid" from its session's application_name
    (`opsconsole lock NAME user@host:pid`), else the server's backend pid."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    row = conn.execute(
        "SELECT l.pid, coalesce(a.application_name, '') FROM pg_locks l "
        "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.objsubid = 1 "
        "AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        ((unsigned >> 32) & 0xFFFFFFFF, unsigned & 0xFFFFFFFF),
    ).fetchone()
    if row is None:
        return "another session (gone since)"
    said = str(row[1]).rsplit(" ", 1)[-1] if str(row[1]).startswith("opsconsole ") else ""
    return said or f"PostgreSQL backend {row[0]}"


def _login(conn: Any, user: str, shown: str) -> Login:
    """Who the server says this connection is. `session_user` is the authenticated login and stays
    so through SET ROLE; only a superuser can change it (SET SESSION AUTHORIZATION; the
    `session_authorization` startup option has no effect). pg_stat_activity keeps the login the
    backend authenticated: a session whose session_user is another (or not the `user` libpq logged
    in as) is refused: the console acts as the authenticated login or not at all."""
    row = conn.execute(
        "SELECT session_user, current_user, r.rolsuper, a.usename"
        " FROM pg_catalog.pg_roles r, pg_catalog.pg_stat_activity a"
        " WHERE r.rolname = session_user AND a.pid = pg_catalog.pg_backend_pid()"
    ).fetchone()
    session_user, current_user, superuser, authenticated = str(row[0]), str(row[1]), bool(row[2]), str(row[3])
    if session_user != authenticated or authenticated != user:
        raise StoreError(
            f"the PostgreSQL store {shown}: this session runs as {session_user!r} but authenticated as "
            f"{authenticated!r} (SET SESSION AUTHORIZATION); the console acts only as the login it authenticated"
        )
    return Login(session_user, current_user, superuser)


_STORES = itertools.count(1)


def notice_payload(origin: str, tables: set[str], seq: int | None) -> str:
    """`{"o": origin, "t": [tables], "s": audit seq or null}`: a few dozen bytes (NOTIFY allows 8000)."""
    return json.dumps({"o": origin, "t": sorted(tables), "s": seq}, separators=(",", ":"))


def _pool(
    cls: type[ConnectionPool[Any]], params: dict[str, Any], name: str, shown: str
) -> ConnectionPool[Any]:
    pool = cls(
        kwargs={**params, "autocommit": True},
        min_size=1,
        max_size=POOL_MAX,
        open=False,
        timeout=BUSY_TIMEOUT_MS / 1000,
        reconnect_timeout=60.0,
        name=name,
    )
    try:
        pool.open(wait=True, timeout=CONNECT_TIMEOUT)
    except Exception as exc:
        pool.close()
        raise StoreError(
            f"cannot reach the PostgreSQL store postgresql://{shown}: {_first_line(exc)}"
        ) from None
    return pool


def _rollback(conn: Any) -> None:
    import psycopg

    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
    except psycopg.Error:
        pass  # a broken connection: the pool checks it and replaces it


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _store_error(prefix: str, exc: Exception) -> StoreError:
    import psycopg

    state = getattr(exc, "sqlstate", None)
    if state in _BUSY_STATES:
        what = {
            "40001": "a concurrent write conflicted; try again",
            "40P01": "a deadlock with another writer; try again",
        }.get(state, "another process holds the store's write lock and kept it past the wait")
        return StoreBusy(f"{prefix}{_first_line(exc)} ({what})")
    if isinstance(exc, psycopg.OperationalError):
        return StoreError(f"{prefix}the PostgreSQL server is unreachable or went away: {_first_line(exc)}")
    return StoreError(prefix + _first_line(exc))
