"""Leadership on a shared PostgreSQL store: which engine runs the gates.

Several engines (and consoles, which run one too) may point at one PostgreSQL database; one of them
evaluates gates and applies actions. That one holds a session-level advisory lock (`LEADER_LOCK`) on
a connection of its own, opened for nothing else: the lock lives exactly as long as that session.
A leader that exits cleanly unlocks it; one that is killed (SIGKILL, a crash) has its socket closed
by the kernel, the server ends the session and the lock is free at once; a host that vanishes
without closing anything is noticed by the server's TCP keepalives on that session (set here) in
about 25 s.
The others try again about every second (`RETRY`).

Taking over needs nothing handed over: the rollouts' state machine is in the store, every step a
committed transaction that checks the rollout's version (Tx.update_rollout), flag changes are
written in the same transaction as the step and files exported from the store, and notifications
are queued in the outbox in that transaction too. So the new leader's first tick reads exactly what
was committed and goes on from there; a step committed by the old leader is never decided again
(its version moved), and a step it did not commit was never applied.

A leader that loses its connection (the server restarted, a partition) stops ticking at the next
check and competes for the lock again like the others. The few actions it might still commit in
between are fenced by the rollout version: a stale decision meets a newer version and is dropped.

With SQLite there is no leadership to hold: one engine per workspace, by the lock file (runner.py).
psycopg is imported only here and only when the store is PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .store import StoreError

if TYPE_CHECKING:
    from .core import Engine

LEADER_LOCK = 0x6F707363_6F6E0003
"""The advisory lock key the leading engine holds for its session (bigint; "opscon" + 3)."""
RETRY = 1.0
"""Seconds between a follower's attempts to take the lock."""
APP_PREFIX = "opsconsole-leader"
"""The leader connection's application_name starts with this, then host and pid (for --check)."""


def is_postgres(url: str) -> bool:
    scheme = url.partition("://")[0].lower()
    return scheme in ("postgres", "postgresql")


def _lock_parts() -> tuple[int, int]:
    """pg_locks shows a bigint advisory key as classid (high 32 bits) and objid (low 32 bits)."""
    return (LEADER_LOCK >> 32) & 0xFFFFFFFF, LEADER_LOCK & 0xFFFFFFFF


@dataclass(frozen=True)
class Holder:
    """Who holds leadership, as the server sees it."""

    backend_pid: int
    name: str  # "host pid N", from the leader connection's application_name

    def text(self) -> str:
        return self.name or f"backend {self.backend_pid}"


class Leadership:
    """The leader lock on a dedicated connection. Blocking calls (psycopg): run them in a thread."""

    def __init__(self, url: str, password_env: str | None, environ: Mapping[str, str]) -> None:
        from .store.postgres import parse_url

        params, self.shown = parse_url(url, password_env, environ)
        self.me = f"{socket.gethostname()} pid {os.getpid()}"
        params["application_name"] = f"{APP_PREFIX} {self.me}"[:63]
        # The server must notice a leader host that vanished without closing its socket (power
        # off, a partition), or the lock would stay with that dead session for the OS default of
        # two hours: the server's keepalives on this session probe after 10 s idle, every 5 s,
        # and give up after 3 (about 25 s), as the client's do (parse_url).
        keepalive = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
        params["options"] = f"{params.get('options', '')} {keepalive}".strip()
        self._params = params
        self._conn: Any = None
        self._lock = threading.Lock()
        self.held = False

    # --------------------------------------------------------------------------------- the lock

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this process holds it (now or already).
        StoreError when the server cannot be reached."""
        import psycopg

        with self._lock:
            if self.held and self._alive():
                return True
            self.held = False
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(**self._params, autocommit=True)
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)).fetchone()
            except psycopg.Error as exc:
                self._drop()
                raise StoreError(f"leadership on {self.shown}: {_first_line(exc)}") from None
            self.held = bool(row and row[0])
            return self.held

    def check(self) -> bool:
        """Still the leader? A round trip on the lock's own session: a session that is gone took the
        lock with it."""
        with self._lock:
            if not self.held:
                return False
            if not self._alive():
                self.held = False
                self._drop()
            return self.held

    def release(self) -> None:
        """Unlock and close: another engine may take over at once."""
        import psycopg

        with self._lock:
            if self._conn is not None and not self._conn.closed and self.held:
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (LEADER_LOCK,))
            self.held = False
            self._drop()

    def _alive(self) -> bool:
        import psycopg

        if self._conn is None or self._conn.closed:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None


def current_holder(url: str, password_env: str | None, environ: Mapping[str, str]) -> Holder | None:
    """The session holding leadership on this database, or None when no engine leads.
    StoreError when the server cannot be reached."""
    import psycopg

    from .store.postgres import parse_url

    params, shown = parse_url(url, password_env, environ)
    classid, objid = _lock_parts()
    try:
        with psycopg.connect(**params, autocommit=True) as conn:
            row = conn.execute(
                "SELECT l.pid, coalesce(a.application_name, '') FROM pg_locks l "
                "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.objsubid = 1 "
                "AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                (classid, objid),
            ).fetchone()
    except psycopg.Error as exc:
        raise StoreError(f"cannot reach the PostgreSQL store {shown}: {_first_line(exc)}") from None
    if row is None:
        return None
    name = str(row[1])
    return Holder(int(row[0]), name.removeprefix(APP_PREFIX).strip())


@dataclass(frozen=True)
class WhoRuns:
    """Which engine runs the rollouts, as `opsconsole status` and the schedules' note tell it: on
    SQLite the workspace's lock file, on PostgreSQL the database (who holds the leader lock)."""

    running: bool | None  # None: the database could not be asked
    pid: int | None = None  # the engine's OS pid when it runs on this host
    leader: str = ""  # PostgreSQL: the leader as the server names it ("host pid N")
    error: str = ""
    shared: bool = False  # a PostgreSQL store: the database was (or was to be) asked

    def text(self) -> str:
        """For `opsconsole status`: "running (pid 12)", "running (leader: db1 pid 12)", ..."""
        if self.running is None:
            return f"unknown (cannot ask the store who leads: {self.error})"
        if not self.running:
            where = "no engine holds leadership on the store; " if self.shared else ""
            return f"not running ({where}start one with `opsconsole engine`)"
        if self.leader:
            return f"running (leader: {self.leader})"
        return f"running (pid {self.pid})" if self.pid is not None else "running"


def who_runs(engine: Engine) -> WhoRuns:
    """Who runs this workspace's rollouts. On PostgreSQL the database says (pg_locks: the session
    holding LEADER_LOCK), whatever host it is on; the workspace's lock file is SQLite's."""
    from .runner import Runner

    config = engine.config
    if not is_postgres(config.store):
        pid = Runner.holder(engine.workspace)
        return WhoRuns(pid is not None, pid if pid is None or pid > 0 else None)
    try:
        holder = current_holder(config.store, config.store_password_env, engine.environ)
    except StoreError as exc:
        return WhoRuns(None, error=_first_line(exc), shared=True)
    if holder is None:
        return WhoRuns(False, shared=True)
    host, _, os_pid = holder.name.rpartition(" pid ")
    local = os_pid.isdigit() and host == socket.gethostname()
    return WhoRuns(True, int(os_pid) if local else None, holder.text(), shared=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check(engine: Engine) -> tuple[bool, str]:
    """`opsconsole engine --check`: (True, who leads) when the store answers and an engine holds
    leadership (on SQLite: the workspace's lock file), else (False, why). One line either way."""
    from .runner import Runner

    try:
        with engine.store.read() as tx:
            tx.get_kv("kill_switch")
    except StoreError as exc:
        return False, f"the store does not answer: {_first_line(exc)}"
    config = engine.config
    if not is_postgres(config.store):
        pid = Runner.holder(engine.workspace)
        if pid is None:
            return False, f"no engine is running on {engine.workspace}"
        who = f"engine pid {pid}" if pid > 0 else "an engine (its pid not yet written)"
        return True, f"{who} is running on {engine.workspace}; the store answers"
    try:
        holder = current_holder(config.store, config.store_password_env, engine.environ)
    except StoreError as exc:
        return False, str(exc)
    if holder is None:
        return False, "no engine holds leadership on the store (the store answers)"
    return True, f"leader: {holder.text()}; the store answers"
