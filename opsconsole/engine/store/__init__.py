"""Persistence: where rollouts, flags, verdict history, the audit chain and small state live.

`open_store(url)` picks the backend; everything else talks to a `Store` and the `Tx` its
transactions yield. The SQL is one portable dialect (schema.py, and Tx in sqlite.py), so the
PostgreSQL store (postgres.py) shares the schema and the queries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sqlite import Tx


class StoreError(Exception):
    """The store cannot do what was asked: unreachable, locked too long, damaged, unknown URL, misuse."""


class StoreBusy(StoreError):
    """Another writer held the database's write lock for longer than we wait: a passing state, worth
    trying again, not a broken store."""


@dataclass(frozen=True)
class Login:
    """Who the PostgreSQL server says this store's connections are: `session_user` (the login the
    server authenticated; SET ROLE never changes it), `current_user` (whose privileges run the SQL:
    SET ROLE and `-c role=` change it) and whether the login is a superuser. None for SQLite, which
    authenticates nobody."""

    session_user: str
    current_user: str
    superuser: bool


class Store(ABC):
    """A database the engine keeps its state in. Safe to share between threads; several processes
    may open the same database at once.

    Do not await (or start another transaction from another coroutine) inside a transaction: the
    transaction holds the store's lock for its whole duration.
    """

    login: Login | None = None
    """The authenticated PostgreSQL login this store's connections run as; None for SQLite."""

    after_audit_commit: Callable[[int, str, float], None] | None = None
    """Called with the new head (seq, hash, time) after each committed transaction that appended
    audit events; the engine anchors it outside the database."""

    @abstractmethod
    def transaction(self, timeout: float | None = None) -> AbstractContextManager[Tx]:
        """A write transaction holding the database's write lock: commits when the block ends,
        rolls back when it raises. Nested in another transaction of the same thread, it is a
        savepoint (its writes are undone alone if it raises). With `timeout`, StoreError after that
        many seconds of waiting for the lock instead of the store's usual busy timeout."""

    @abstractmethod
    def read(self) -> AbstractContextManager[Tx]:
        """A read transaction: one consistent snapshot of what is committed (or, inside this thread's
        write transaction, of what it wrote so far); writing through it raises StoreError. It never
        waits for a writer, in this process or another."""

    @abstractmethod
    def close(self) -> None: ...

    @contextmanager
    def exclusive(self, name: str) -> Iterator[str | None]:
        """Hold the lock `name` (say "deploy:web") for the block, across every process that shares
        this store: yields None when it is held here, else who holds it ("host pid N"), and the
        block must then do nothing. SQLite lives on one host, where the caller's file locks already
        serve, so this store always yields None; PostgreSQL holds a session advisory lock on a
        connection of its own for the block (store/postgres.py). StoreError: cannot be asked."""
        yield None

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_store(
    url: str,
    read_only: bool = False,
    *,
    password_env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Store:
    """`sqlite:///relative/path.db` or `sqlite:////absolute/path.db` (SQLAlchemy's spelling: the
    path is what follows `sqlite:///`; relative paths are relative to the working directory), or
    `postgresql://user@host[:port]/db` (its password from the variable `password_env` names in
    `environ`, else libpq's PGPASSWORD or pgpass file; a URL carrying one is refused).
    Creates the file and its directories and brings the schema up to date if it is behind.
    A read-only store refuses write transactions and never takes the database's write lock once
    the schema is current, so it opens and reads while another process writes."""
    from ..redact import redact_url

    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if sep and scheme == "sqlite":
        if not rest.startswith("/") or len(rest) < 2:
            raise StoreError(
                f"store URL {redact_url(url)!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        from .sqlite import SqliteStore

        return SqliteStore(rest[1:], read_only=read_only)
    if sep and scheme in ("postgres", "postgresql"):
        from .postgres import PostgresStore

        return PostgresStore(url, read_only=read_only, password_env=password_env, environ=environ)
    # Only the scheme is echoed: a database URL can carry a password.
    shown = f"scheme {scheme!r}" if sep else "a URL without a scheme"
    raise StoreError(f"store URL has {shown}; use sqlite:///path/to/state.db or postgresql://user@host/db")


def __getattr__(name: str) -> Any:
    # Tx lives with the SQL; importing it lazily keeps `import opsconsole.engine.store` cheap.
    if name == "Tx":
        from .sqlite import Tx

        return Tx
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
