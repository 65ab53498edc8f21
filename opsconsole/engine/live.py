"""Live updates on the shared PostgreSQL store: what another process committed, seen here at once.

Every committed write transaction of a PostgreSQL store sends a notice on `CHANNEL` naming the
tables it wrote and its audit head (store/postgres.py). A `LiveFeed` listens on a connection of its
own, in a thread of its own (never the event loop), and turns each notice from another process into
the engine bus events the console's panes already react to; a notice that changed flags or the kill
switch first re-exports this host's flag files from the store (each host writes its own configured
files from the shared state). Notices sent by this very store are skipped: its own commands already
published their events and wrote their files.

A notice can be missed: the listening connection dropped (a server restart, pg_terminate_backend, a
network cut) or the server is unreachable for a while. So the feed reconnects with backoff and, on
every (re)connection, refreshes everything once; and every `RESYNC_EVERY` seconds it reads the audit
head, and if something was recorded that no notice announced, refreshes everything too. The same
periodic read says who leads (the session holding the leader's advisory lock, leader.py) and how many
consoles are attached (their listening connections, by application_name), for the header.

With a SQLite store there is nothing to listen to: one engine per workspace, and the console reads
the same file (`start` returns None).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .leader import LEADER_LOCK

if TYPE_CHECKING:
    from .core import Engine

log = logging.getLogger(__name__)

RESYNC_EVERY = 3.0
"""Seconds between checks of the audit head (and of the leader and the consoles attached)."""
WAIT = 0.25
"""The longest the listening thread waits for a notice before looking at its stop flag and clocks."""
COALESCE = 0.02
"""After a notice, how long more are gathered into one refresh (a burst of commits is one reload)."""
BACKOFF_FIRST = 0.2
BACKOFF_MAX = 5.0
"""Reconnection waits: doubling from the first to the most."""
CONSOLE_ROLE = "console"
STATEMENT_TIMEOUT_MS = 5000
"""The longest one of the feed's reads may take before it gives up and reconnects."""

KINDS: dict[str, str] = {
    "flags": "flags",
    "flag_history": "flags",
    "flag_schedules": "schedules",
    "kv": "kill_switch",
    "rollouts": "poll",
    "verdict_history": "poll",
    "improvements": "improvements",
    "backup_runs": "backups",
}
"""Table written -> the bus event that makes a console read it again. The audit chain and the
outbox come with the changes above (the header's notification note is read with the team status)."""
EXPORTS = frozenset({"flags", "kv"})
"""Tables whose change can change what this host's flag files say (values, the kill switch)."""

_STATUS_SQL = """
SELECT
  (SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid
    LIMIT 1),
  (SELECT count(DISTINCT application_name) FROM pg_stat_activity
    WHERE datname = current_database() AND application_name LIKE %s),
  (SELECT MAX(seq) FROM audit)
"""


@dataclass(frozen=True)
class TeamStatus:
    """What the header says about the team: who leads, how many consoles look, whether we listen."""

    connected: bool = False
    leader: str = ""
    """The leading process as its connection names itself ("host pid 12"), empty when none leads."""
    leader_is_me: bool = False
    consoles: int = 0
    error: str = ""
    me: str = "this process"
    """How the header names the leader when it is this process ("this console", "this engine")."""

    def text(self) -> str:
        if not self.connected:
            return f"live: reconnecting ({self.error})" if self.error else "live: connecting"
        leader = self.me if self.leader_is_me else (self.leader or "none")
        plural = "" if self.consoles == 1 else "s"
        return f"leader: {leader} │ {self.consoles} console{plural}"


@dataclass
class LiveStats:
    notices: int = 0
    """Notices from other processes handled."""
    own: int = 0
    refreshes: int = 0
    """Full refreshes (after a (re)connection, or a change no notice announced)."""
    reconnects: int = 0
    exports: int = 0
    last_error: str = ""


class LiveFeed:
    """One listening connection and its thread. `start()`, then `stop()` (blocking: from a thread)."""

    def __init__(
        self,
        engine: Engine,
        role: str = CONSOLE_ROLE,
        *,
        resync_every: float = RESYNC_EVERY,
        export: bool = True,
        backoff_first: float = BACKOFF_FIRST,
    ) -> None:
        from .store.postgres import PostgresStore, application_name, parse_url

        store = engine.store
        if not isinstance(store, PostgresStore):
            raise TypeError("live updates need the PostgreSQL store")
        self.engine = engine
        self.role = role
        self.resync_every = resync_every
        self.backoff_first = backoff_first
        self.export = export and not engine.authz.read_only
        self._origin = store.origin
        params, self.shown = parse_url(engine.config.store, engine.config.store_password_env, engine.environ)
        params["application_name"] = application_name(role)
        # The feed's own queries are tiny: one that hangs means the server (or the path to it) is
        # in trouble, and the feed should reconnect rather than wait on it. A dead network is
        # noticed within seconds (unacknowledged data), not at the keepalives' 25 s.
        params["options"] = f"{params.get('options', '')} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip()
        params.setdefault("tcp_user_timeout", str(STATEMENT_TIMEOUT_MS))
        self._params = params
        self._me = (f"@{socket.gethostname()}:{os.getpid()}", f"{socket.gethostname()} pid {os.getpid()}")
        self.status = TeamStatus()
        self.stats = LiveStats()
        self.seen_seq: int | None = None
        """The newest audit seq this feed knows the console has seen (a notice or a refresh)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self.connected = threading.Event()
        """Set while listening (tests wait on it)."""

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> LiveFeed:
        self._thread = threading.Thread(target=self._run, name=f"opsconsole-live-{self.role}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def backend_pid(self) -> int | None:
        """The server process of the listening connection (tests end it to see the feed recover)."""
        conn = self._conn
        return None if conn is None or conn.closed else int(conn.info.backend_pid)

    # ------------------------------------------------------------------------------ the thread

    def _run(self) -> None:
        import psycopg

        backoff = self.backoff_first
        while not self._stop.is_set():
            try:
                self._conn = psycopg.connect(**self._params, autocommit=True)
                self._conn.execute(f"LISTEN {_channel()}")
                self.connected.set()
                backoff = self.backoff_first
                # Anything committed while we were not listening (or before we first did).
                self._check(full=True)
                self._listen()
            except psycopg.Error as exc:
                self._lost(exc)
            except Exception as exc:  # a bug must not end live updates silently
                log.exception("live updates: unexpected error")
                self._lost(exc)
            finally:
                self.connected.clear()
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        self._conn.close()
                    self._conn = None
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, max(BACKOFF_MAX, self.backoff_first))

    def _lost(self, exc: BaseException) -> None:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        self.stats.reconnects += 1
        self.stats.last_error = first
        self._set_status(TeamStatus(connected=False, error=first))

    def _listen(self) -> None:
        conn = self._conn
        due = time.monotonic() + self.resync_every
        while not self._stop.is_set():
            wait = max(0.0, min(WAIT, due - time.monotonic()))
            notices = list(conn.notifies(timeout=wait, stop_after=1))
            if notices:
                notices += conn.notifies(timeout=COALESCE)
                self._handle(n.payload for n in notices)
            if time.monotonic() >= due:
                self._check(full=False)
                due = time.monotonic() + self.resync_every

    def _handle(self, payloads: Iterable[str]) -> None:
        tables: set[str] = set()
        for payload in payloads:
            try:
                notice = json.loads(payload)
                origin, written, seq = str(notice["o"]), notice["t"], notice["s"]
            except (ValueError, KeyError, TypeError):
                continue  # not ours (someone NOTIFYing by hand): nothing to say about it
            if isinstance(seq, int) and (self.seen_seq is None or seq > self.seen_seq):
                self.seen_seq = seq
            if origin == self._origin:
                self.stats.own += 1
                continue
            self.stats.notices += 1
            tables.update(str(t) for t in written)
        if tables:
            self._refresh(tables)

    def _check(self, full: bool) -> None:
        """Who leads, how many consoles, and whether something was recorded that no notice said."""
        holder, consoles, head = self._conn.execute(
            _STATUS_SQL,
            ((LEADER_LOCK >> 32) & 0xFFFFFFFF, LEADER_LOCK & 0xFFFFFFFF, f"opsconsole {CONSOLE_ROLE} %"),
        ).fetchone()
        leader = _leader_name(holder)
        self._set_status(
            TeamStatus(
                connected=True,
                leader=leader,
                leader_is_me=bool(holder) and any(mark in str(holder) for mark in self._me),
                consoles=int(consoles or 0),
                me=f"this {self.role}",
            )
        )
        head = int(head or 0)
        if full or self.seen_seq is None or head > self.seen_seq:
            self.seen_seq = head
            self.stats.refreshes += 1
            self._refresh(None)

    # ------------------------------------------------------------------------------ effects

    def _refresh(self, tables: set[str] | None) -> None:
        """Tell the console what to read again (None: everything); flag files first."""
        bus = self.engine.bus
        exported = False
        if self.export and (tables is None or tables & EXPORTS):
            exported = self._export(tables is None)
        if tables is None:
            bus.publish("poll", live=True)
            return
        kinds = {KINDS[t] for t in tables if t in KINDS}
        if exported:
            kinds.discard("flags")  # export_flags published it
        if "poll" in kinds:
            kinds = {"poll"} | (kinds & {"flags", "kill_switch"})
        for kind in sorted(kinds):
            bus.publish(kind, live=True)

    def _export(self, only_if_behind: bool) -> bool:
        from .store import StoreError

        engine = self.engine
        try:
            if only_if_behind and not engine.flag_files_behind():
                return False
            engine.export_flags()
        except (OSError, StoreError) as exc:
            # The runner (or the next notice) writes them again; say it, as the runner does.
            engine.bus.publish("warning", message=f"flag files could not be written from the store: {exc}")
            return False
        self.stats.exports += 1
        return True

    def _set_status(self, status: TeamStatus) -> None:
        if status != self.status:
            self.status = status
            self.engine.bus.publish("team", status=status)


def start(engine: Engine, role: str = CONSOLE_ROLE, **kwargs: Any) -> LiveFeed | None:
    """A started feed when the engine's store is PostgreSQL, else None."""
    if engine.config.store.partition("://")[0].lower() not in ("postgres", "postgresql"):
        return None  # without importing the PostgreSQL store's module on a SQLite console
    return LiveFeed(engine, role, **kwargs).start()


def _channel() -> str:
    from .store.postgres import CHANNEL

    return CHANNEL


def _leader_name(application_name: object) -> str:
    """ "opsconsole-leader host pid 12" (or "opsconsole engine user@host:12") as "host pid 12"."""
    if not application_name:
        return ""
    name = str(application_name)
    for prefix in ("opsconsole-leader ", "opsconsole "):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name
