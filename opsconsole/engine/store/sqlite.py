"""The embedded store: one SQLite file in WAL mode, shared by the engine and any CLI at the same time.

Durability first: synchronous=FULL fsyncs every commit, because the kill switch reports success only
once its state is on disk. Writers take the database's write lock up front (BEGIN IMMEDIATE), so a
transaction never fails half-way because another process started writing; they wait for each other
up to BUSY_TIMEOUT_MS. WAL lets readers go on while someone writes, and readers here never queue
behind a writer: reads go through their own connection (query_only), so a write waiting for another
process's lock holds up neither the console's reads nor the kill switch's, and opening a database
whose schema is current takes no write lock at all.

Tx is written in portable SQL with `?` placeholders, executed only through `Tx._run`, which is the
one place a PostgreSQL adapter needs to change.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from .. import audit
from ..backups.model import BackupRun, run_from_row, run_to_body
from ..improvements.model import SORT_ORDER, Improvement, ImprovementStatus
from ..model import (
    ACTIVE_STATES,
    Actor,
    AuditEvent,
    FlagRecord,
    FlagSchedule,
    FlagValue,
    GateVerdict,
    Rollout,
    ScheduleState,
    ScheduleStep,
)
from . import Store, StoreBusy, StoreError, codec
from .schema import LATEST_VERSION, migrate, refuse_newer, version_on_disk

BUSY_TIMEOUT_MS = 5000
_KEYS_PER_READ = 200
"""(environment, name) pairs per read in Tx.set_flags: 400 parameters, far below either server's limit."""


ROWS_PER_STATEMENT = 200
"""Rows per multi-row INSERT: at most 1,800 parameters (SQLite allows 32,766, PostgreSQL 65,535)."""


class FlagChange(NamedTuple):
    """One flag value to store with Tx.set_flags, with who and why for its history."""

    environment: str
    name: str
    value: FlagValue
    actor: Actor
    reason: str


_ROLLOUT_SELECT = f"SELECT {', '.join(codec.ROLLOUT_COLUMNS)}, body FROM rollouts"
_IMPROVEMENT_SELECT = "SELECT environment, status, updated_at, version, body FROM improvements"
# The pane's order in SQL (what needs eyes first, then the best score), so 5,000 items come back
# sorted from one query; the statuses are ours, written into the statement as literals.
_IMPROVEMENT_ORDER = (
    " ORDER BY CASE status "
    + " ".join(f"WHEN '{s.value}' THEN {i}" for s, i in SORT_ORDER.items())
    + f" ELSE {len(SORT_ORDER)} END, quality DESC, id"
)
_BACKUP_SELECT = (
    "SELECT id, target, trigger, actor, status, started_at, ended_at, version, body FROM backup_runs"
)
_DEPLOY_SELECT = "SELECT id, service, phase, started_at, updated_at, body FROM deploys"
_AUDIT_COLUMNS = "seq, at, actor, origin, action, target, data, prev_hash, hash"
_SCHEDULE_COLUMNS = (
    "id, environment, flag, steps, next_index, state, created_by, created_origin, reason, created_at,"
    " updated_at, ended_reason"
)


class Tx:
    """One transaction. Methods take and return model dataclasses."""

    def __init__(self, conn: Any, writable: bool, where: str) -> None:
        self._conn = conn
        self.writable = writable
        self._where = where
        self._open = True
        self.audit_head: tuple[int, str, float] | None = None
        """The last event this transaction appended (seq, hash, at), for Store.after_audit_commit."""

    # ------------------------------------------------------------------------------ plumbing

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if not self._open:
            raise StoreError("a store transaction was used after it ended")
        try:
            return _Rows(self._conn.execute(sql, params), self._where)
        except sqlite3.Error as exc:
            raise _store_error(f"{self._where}: ", exc) from exc

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """One statement for many parameter rows (sqlite3's executemany; pipelined on PostgreSQL);
        returns the rows changed in all."""
        if not self._open:
            raise StoreError("a store transaction was used after it ended")
        try:
            return int(self._conn.executemany(sql, rows).rowcount)
        except sqlite3.Error as exc:
            raise _store_error(f"{self._where}: ", exc) from exc

    def _insert_rows(self, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
        """`head VALUES (?, ...), (?, ...) tail`: one multi-row statement (a round trip and a single
        statement for the server) per ROWS_PER_STATEMENT rows."""
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            one = f"({', '.join('?' for _ in chunk[0])})"
            self._run(
                f"{head} VALUES {', '.join(one for _ in chunk)}{tail}", [v for row in chunk for v in row]
            )

    def _writing(self, what: str) -> None:
        if not self.writable:
            raise StoreError(f"{what} needs a write transaction (Store.transaction()), not Store.read()")
        if not self._open:
            raise StoreError("a store transaction was used after it ended")

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._run(sql, params).fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------------------------ rollouts

    def get_rollout(self, rollout_id: str) -> Rollout | None:
        row = self._run(f"{_ROLLOUT_SELECT} WHERE id = ?", (rollout_id,)).fetchone()
        return None if row is None else codec.rollout_from_row(*row)

    def list_rollouts(self, active_only: bool = False, limit: int | None = None) -> list[Rollout]:
        """Newest first."""
        sql = _ROLLOUT_SELECT
        params: list[Any] = []
        if active_only:
            states = sorted(str(s) for s in ACTIVE_STATES)
            sql += f" WHERE state IN ({', '.join('?' for _ in states)})"
            params.extend(states)
        sql += " ORDER BY created_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [codec.rollout_from_row(*row) for row in self._run(sql, params).fetchall()]

    def insert_rollout(self, r: Rollout) -> None:
        self._writing("insert_rollout")
        if self._scalar("SELECT 1 FROM rollouts WHERE id = ?", (r.id,)) is not None:
            raise StoreError(f"a rollout with id {r.id!r} already exists")
        self._run(
            "INSERT INTO rollouts (id, plan, state, started_by, created_at, updated_at, version, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                r.id,
                r.plan,
                str(r.state),
                r.started_by,
                r.created_at,
                r.updated_at,
                r.version,
                codec.rollout_to_body(r),
            ),
        )

    def update_rollout(self, r: Rollout, expected_version: int) -> bool:
        """Write `r` as version expected_version + 1, only if the stored version is expected_version.
        False (and nothing written) when someone else got there first."""
        self._writing("update_rollout")
        cur = self._run(
            "UPDATE rollouts SET plan = ?, state = ?, started_by = ?, created_at = ?, updated_at = ?,"
            " version = ?, body = ? WHERE id = ? AND version = ?",
            (
                r.plan,
                str(r.state),
                r.started_by,
                r.created_at,
                r.updated_at,
                expected_version + 1,
                codec.rollout_to_body(r),
                r.id,
                expected_version,
            ),
        )
        return bool(cur.rowcount == 1)

    def update_rollouts(self, items: Sequence[tuple[Rollout, int]]) -> int:
        """update_rollout for many (rollout, expected_version) pairs in one statement; returns how
        many were written (a pair whose stored version moved on is not; inside a PostgreSQL
        pipeline the count is not known yet: 0)."""
        self._writing("update_rollouts")
        if not items:
            return 0
        return self._run_many(
            "UPDATE rollouts SET plan = ?, state = ?, started_by = ?, created_at = ?, updated_at = ?,"
            " version = ?, body = ? WHERE id = ? AND version = ?",
            [
                (
                    r.plan,
                    str(r.state),
                    r.started_by,
                    r.created_at,
                    r.updated_at,
                    expected + 1,
                    codec.rollout_to_body(r),
                    r.id,
                    expected,
                )
                for r, expected in items
            ],
        )

    # ------------------------------------------------------------------------------ verdict history

    def add_verdicts(self, rollout_id: str, phase: str, verdicts: Sequence[GateVerdict], at: float) -> None:
        self._writing("add_verdicts")
        last = self._scalar("SELECT MAX(seq) FROM verdict_history WHERE rollout_id = ?", (rollout_id,)) or 0
        for offset, verdict in enumerate(verdicts, start=1):
            self._run(
                "INSERT INTO verdict_history (rollout_id, seq, phase, at, body) VALUES (?, ?, ?, ?, ?)",
                (rollout_id, last + offset, phase, float(at), codec.verdict_to_text(verdict)),
            )

    def list_verdicts(self, rollout_id: str) -> list[tuple[str, GateVerdict]]:
        rows = self._run(
            "SELECT phase, body FROM verdict_history WHERE rollout_id = ? ORDER BY seq", (rollout_id,)
        ).fetchall()
        return [(phase, codec.verdict_from_text(body)) for phase, body in rows]

    # ------------------------------------------------------------------------------ flags

    def get_flag(self, environment: str, name: str) -> FlagRecord | None:
        row = self._run(
            "SELECT environment, name, value, updated_at, updated_by FROM flags WHERE environment = ? AND name = ?",
            (environment, name),
        ).fetchone()
        return None if row is None else _flag_record(row)

    def list_flags(self, environment: str | None = None) -> list[FlagRecord]:
        sql = "SELECT environment, name, value, updated_at, updated_by FROM flags"
        params: tuple[Any, ...] = ()
        if environment is not None:
            sql += " WHERE environment = ?"
            params = (environment,)
        return [
            _flag_record(row) for row in self._run(sql + " ORDER BY environment, name", params).fetchall()
        ]

    def set_flag(
        self, environment: str, name: str, value: FlagValue, actor: Actor, reason: str, at: float
    ) -> FlagValue | None:
        """Store a flag's value and its history; returns the value before (None if never set).
        Setting the value it already has changes nothing and adds no history."""
        self._writing("set_flag")
        if not isinstance(value, bool | int):
            raise StoreError(f"flag {environment}/{name}: value {value!r} is not a boolean or an integer")
        current = self.get_flag(environment, name)
        old = None if current is None else current.value
        # type() too: True == 1, but a boolean flag set to 1 is a change worth recording.
        if current is not None and type(old) is type(value) and old == value:
            return old
        text = codec.flag_value_to_text(value)
        if current is None:
            self._run(
                "INSERT INTO flags (environment, name, value, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)",
                (environment, name, text, float(at), actor.user),
            )
        else:
            self._run(
                "UPDATE flags SET value = ?, updated_at = ?, updated_by = ? WHERE environment = ? AND name = ?",
                (text, float(at), actor.user, environment, name),
            )
        seq = 1 + (
            self._scalar(
                "SELECT MAX(seq) FROM flag_history WHERE environment = ? AND name = ?", (environment, name)
            )
            or 0
        )
        self._run(
            "INSERT INTO flag_history (environment, name, seq, at, actor, origin, old_value, new_value, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                environment,
                name,
                seq,
                float(at),
                actor.user,
                actor.origin,
                None if current is None else codec.flag_value_to_text(old),
                text,
                reason,
            ),
        )
        return old

    def set_flags(self, changes: Sequence[FlagChange], at: float) -> list[FlagValue | None]:
        """set_flag for many changes, set-based: one read of every flag's value and last history seq,
        then one multi-row statement for the flags (an upsert) and one for their history. Applied in
        order (a flag changed twice gets two history rows); returns each change's value before it."""
        self._writing("set_flags")
        for c in changes:
            if not isinstance(c.value, bool | int):
                raise StoreError(
                    f"flag {c.environment}/{c.name}: value {c.value!r} is not a boolean or an integer"
                )
        keys = sorted({(c.environment, c.name) for c in changes})
        stored: dict[tuple[str, str], FlagValue | None] = {}
        seqs: dict[tuple[str, str], int] = {}
        for start in range(0, len(keys), _KEYS_PER_READ):
            chunk = keys[start : start + _KEYS_PER_READ]
            rows = self._run(
                "SELECT k.column1, k.column2, f.value, (SELECT MAX(h.seq) FROM flag_history h"
                " WHERE h.environment = k.column1 AND h.name = k.column2)"
                f" FROM (VALUES {', '.join('(?, ?)' for _ in chunk)}) AS k"
                " LEFT JOIN flags f ON f.environment = k.column1 AND f.name = k.column2",
                [part for key in chunk for part in key],
            ).fetchall()
            for environment, name, value, seq in rows:
                key = (str(environment), str(name))
                stored[key] = None if value is None else codec.flag_value_from_text(value)
                seqs[key] = int(seq or 0)
        current = dict(stored)
        final: dict[tuple[str, str], tuple[str, str]] = {}  # key -> (value text, updated_by)
        history: list[tuple[Any, ...]] = []
        olds: list[FlagValue | None] = []
        for c in changes:
            key = (c.environment, c.name)
            old = current.get(key)
            olds.append(old)
            # type() too: True == 1, but a boolean flag set to 1 is a change worth recording.
            if old is not None and type(old) is type(c.value) and old == c.value:
                continue
            text = codec.flag_value_to_text(c.value)
            seqs[key] = seqs.get(key, 0) + 1
            history.append(
                (
                    c.environment,
                    c.name,
                    seqs[key],
                    float(at),
                    c.actor.user,
                    c.actor.origin,
                    None if old is None else codec.flag_value_to_text(old),
                    text,
                    c.reason,
                )
            )
            current[key] = c.value
            final[key] = (text, c.actor.user)
        if final:
            # New and changed flags in one upsert (the primary key is (environment, name)).
            self._insert_rows(
                "INSERT INTO flags (environment, name, value, updated_at, updated_by)",
                [(e, n, text, float(at), by) for (e, n), (text, by) in final.items()],
                " ON CONFLICT (environment, name) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            )
        if history:
            self._insert_rows(
                "INSERT INTO flag_history (environment, name, seq, at, actor, origin, old_value, new_value,"
                " reason)",
                history,
            )
        return olds

    def flag_history(self, environment: str, name: str) -> list[dict[str, Any]]:
        """Oldest first: {at, actor, origin, old, new, reason}; old is None for the first setting."""
        rows = self._run(
            "SELECT at, actor, origin, old_value, new_value, reason FROM flag_history"
            " WHERE environment = ? AND name = ? ORDER BY seq",
            (environment, name),
        ).fetchall()
        return [
            {
                "at": at,
                "actor": actor,
                "origin": origin,
                "old": codec.flag_value_from_text(old),
                "new": codec.flag_value_from_text(new),
                "reason": reason,
            }
            for at, actor, origin, old, new, reason in rows
        ]

    def first_flag_changes(self) -> dict[str, float]:
        """When the store first recorded a change of each flag, in any environment."""
        rows = self._run("SELECT name, MIN(at) FROM flag_history GROUP BY name").fetchall()
        return {name: float(at) for name, at in rows}

    # ------------------------------------------------------------------------------ flag schedules

    def insert_schedule(
        self,
        environment: str,
        flag: str,
        steps: Sequence[ScheduleStep],
        actor: Actor,
        reason: str,
        at: float,
    ) -> FlagSchedule:
        """Store a pending schedule under the next free id (assigned under this transaction's lock)."""
        self._writing("insert_schedule")
        if not steps:
            raise StoreError(f"schedule for {environment}/{flag}: no steps")
        schedule_id = 1 + int(self._scalar("SELECT MAX(id) FROM flag_schedules") or 0)
        self._run(
            f"INSERT INTO flag_schedules ({_SCHEDULE_COLUMNS}, next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                schedule_id,
                environment,
                flag,
                codec.dumps([[float(s.at), s.value] for s in steps]),
                0,
                str(ScheduleState.PENDING),
                actor.user,
                actor.origin,
                reason,
                float(at),
                float(at),
                "",
                float(steps[0].at),
            ),
        )
        schedule = self.get_schedule(schedule_id)
        assert schedule is not None
        return schedule

    def get_schedule(self, schedule_id: int) -> FlagSchedule | None:
        row = self._run(
            f"SELECT {_SCHEDULE_COLUMNS} FROM flag_schedules WHERE id = ?", (int(schedule_id),)
        ).fetchone()
        return None if row is None else _schedule(row)

    def list_schedules(
        self, environment: str | None = None, active_only: bool = True, flag: str | None = None
    ) -> list[FlagSchedule]:
        """Oldest first."""
        sql = f"SELECT {_SCHEDULE_COLUMNS} FROM flag_schedules WHERE 1 = 1"
        params: list[Any] = []
        if active_only:
            sql += " AND state = ?"
            params.append(str(ScheduleState.PENDING))
        if environment is not None:
            sql += " AND environment = ?"
            params.append(environment)
        if flag is not None:
            sql += " AND flag = ?"
            params.append(flag)
        return [_schedule(row) for row in self._run(sql + " ORDER BY id", params).fetchall()]

    def due_schedules(self, now: float) -> list[FlagSchedule]:
        """Pending schedules whose next step is due at `now`: one lookup in flag_schedules_due."""
        rows = self._run(
            f"SELECT {_SCHEDULE_COLUMNS} FROM flag_schedules WHERE state = ? AND next_at <= ? ORDER BY id",
            (str(ScheduleState.PENDING), float(now)),
        ).fetchall()
        return [_schedule(row) for row in rows]

    def advance_schedule(self, schedule_id: int, next_index: int, at: float) -> FlagSchedule:
        """Record that every step before `next_index` is applied; past the last step it is done."""
        self._writing("advance_schedule")
        current = self.get_schedule(schedule_id)
        if current is None:
            raise StoreError(f"no schedule {schedule_id}")
        done = next_index >= len(current.steps)
        self._run(
            "UPDATE flag_schedules SET next_index = ?, next_at = ?, state = ?, updated_at = ?, ended_reason = ?"
            " WHERE id = ?",
            (
                min(next_index, len(current.steps)),
                None if done else float(current.steps[next_index].at),
                str(ScheduleState.DONE if done else ScheduleState.PENDING),
                float(at),
                f"all {len(current.steps)} steps applied" if done else "",
                int(schedule_id),
            ),
        )
        updated = self.get_schedule(schedule_id)
        assert updated is not None
        return updated

    def end_schedule(self, schedule_id: int, state: ScheduleState, reason: str, at: float) -> bool:
        """Cancel or stop a pending schedule; False (nothing written) when it is not pending."""
        self._writing("end_schedule")
        cur = self._run(
            "UPDATE flag_schedules SET state = ?, next_at = NULL, updated_at = ?, ended_reason = ?"
            " WHERE id = ? AND state = ?",
            (str(state), float(at), reason, int(schedule_id), str(ScheduleState.PENDING)),
        )
        return bool(cur.rowcount == 1)

    def stop_pending_schedules(self, reason: str, at: float) -> list[int]:
        """Stop every pending schedule (the kill switch); returns their ids."""
        self._writing("stop_pending_schedules")
        pending = str(ScheduleState.PENDING)
        ids = [
            int(row[0])
            for row in self._run("SELECT id FROM flag_schedules WHERE state = ? ORDER BY id", (pending,))
        ]
        if ids:
            self._run(
                "UPDATE flag_schedules SET state = ?, next_at = NULL, updated_at = ?, ended_reason = ?"
                " WHERE state = ?",
                (str(ScheduleState.STOPPED), float(at), reason, pending),
            )
        return ids

    # ------------------------------------------------------------------------------ audit

    def append_audit(
        self, at: float, actor: Actor, action: str, target: str, data: dict[str, Any]
    ) -> AuditEvent:
        """Chain one event after the last one. The write lock this transaction holds is what makes
        seq and prev_hash race-free."""
        self._writing("append_audit")
        last = self._run("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev_hash = (1, audit.GENESIS) if last is None else (int(last[0]) + 1, last[1])
        at = float(at) + 0.0  # as event_hash sees it (-0.0 would come back from SQLite as 0.0)
        data_text = audit.audit_data_text(data)
        digest = audit.event_hash(prev_hash, seq, at, actor.user, actor.origin, action, target, data_text)
        self._run(
            f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, at, actor.user, actor.origin, action, target, data_text, prev_hash, digest),
        )
        self.audit_head = (seq, digest, at)
        return AuditEvent(
            seq, at, actor.user, actor.origin, action, target, codec.loads(data_text), prev_hash, digest
        )

    def list_audit(
        self, target: str | None = None, since_seq: int = 0, limit: int | None = None
    ) -> list[AuditEvent]:
        """Events after `since_seq`, oldest first, at most `limit` of them."""
        sql = f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE seq > ?"
        params: list[Any] = [since_seq]
        if target is not None:
            sql += " AND target = ?"
            params.append(target)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        rows = self._run(sql, params).fetchall()
        return [
            AuditEvent(seq, at, actor, origin, action, target_, codec.loads(data), prev_hash, digest)
            for seq, at, actor, origin, action, target_, data, prev_hash, digest in rows
        ]

    def last_audit_seq(self) -> int:
        return int(self._scalar("SELECT MAX(seq) FROM audit") or 0)

    def audit_rows(self, batch: int = 1000) -> Iterator[tuple[Any, ...]]:
        """Every stored row as it is on disk, in seq order, for audit.verify_rows. Consume it inside
        the transaction."""
        cur = self._run(f"SELECT {_AUDIT_COLUMNS} FROM audit ORDER BY seq")
        while rows := cur.fetchmany(batch):
            yield from (tuple(row) for row in rows)

    # ------------------------------------------------------------------------------ outbox

    def enqueue_notification(self, event: str, url: str, body: str, timeout: float, at: float) -> int:
        """Add one notification to the outbox (pending, due now); returns its id."""
        self._writing("enqueue_notification")
        new_id = int(self._scalar("SELECT MAX(id) FROM outbox") or 0) + 1
        self._run(
            f"INSERT INTO outbox ({_OUTBOX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, '')",
            (new_id, event, url, body, float(timeout), _PENDING, float(at), float(at), float(at)),
        )
        return new_id

    def claim_notifications(
        self, now: float, margin: float, ids: Sequence[int] | None = None, limit: int = 20
    ) -> list[Outboxed]:
        """Take pending notifications that are due (or only `ids`): one more attempt each, and
        next_at moved past their timeout plus `margin`, so no other sender takes them meanwhile."""
        self._writing("claim_notifications")
        sql = f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE state = ? AND next_at <= ?"
        params: list[Any] = [_PENDING, float(now)]
        if ids is not None:
            if not ids:
                return []
            sql += f" AND id IN ({', '.join('?' * len(ids))})"
            params.extend(int(i) for i in ids)
        rows = self._run(sql + " ORDER BY id LIMIT ?", [*params, int(limit)]).fetchall()
        out = []
        for row in rows:
            item = _outboxed(row)
            self._run(
                "UPDATE outbox SET attempts = ?, next_at = ?, updated_at = ? WHERE id = ?",
                (item.attempts + 1, float(now + item.timeout + margin), float(now), item.id),
            )
            out.append(replace(item, attempts=item.attempts + 1))
        return out

    def finish_notification(self, item_id: int, state: str, error: str, next_at: float, at: float) -> None:
        """Record an attempt's outcome: delivered, failed for good, or pending until `next_at`."""
        self._writing("finish_notification")
        self._run(
            "UPDATE outbox SET state = ?, last_error = ?, next_at = ?, updated_at = ? WHERE id = ?",
            (state, error[:500], float(next_at), float(at), int(item_id)),
        )

    def notification_counts(self) -> dict[str, int]:
        """How many notifications are in each state (pending, delivered, failed)."""
        rows = self._run("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
        return {str(state): int(n) for state, n in rows}

    def notification_troubles(self, since: float, limit: int = 5) -> list[Outboxed]:
        """Notifications being retried after a failed attempt, and those that failed for good at or
        after `since`, the newest first."""
        rows = self._run(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox"
            " WHERE (state = ? AND last_error != '') OR (state = 'failed' AND updated_at >= ?)"
            " ORDER BY updated_at DESC, id DESC LIMIT ?",
            (_PENDING, float(since), int(limit)),
        ).fetchall()
        return [_outboxed(row) for row in rows]

    def list_notifications(self, ids: Sequence[int] | None = None) -> list[Outboxed]:
        rows = self._run(f"SELECT {_OUTBOX_COLUMNS} FROM outbox ORDER BY id").fetchall()
        items = [_outboxed(row) for row in rows]
        return items if ids is None else [i for i in items if i.id in set(ids)]

    # ------------------------------------------------------------------------------ improvements

    def get_improvement(self, environment: str, improvement_id: str) -> Improvement | None:
        row = self._run(
            f"{_IMPROVEMENT_SELECT} WHERE environment = ? AND id = ?", (environment, improvement_id)
        ).fetchone()
        return None if row is None else codec.improvement_from_row(*row)

    def list_improvements(
        self, environment: str | None = None, statuses: Sequence[ImprovementStatus] | None = None
    ) -> list[Improvement]:
        """In the pane's order: status (what needs eyes first), quality descending, id."""
        sql = f"{_IMPROVEMENT_SELECT} WHERE 1 = 1"
        params: list[Any] = []
        if environment is not None:
            sql += " AND environment = ?"
            params.append(environment)
        if statuses is not None:
            if not statuses:
                return []
            sql += f" AND status IN ({', '.join('?' * len(statuses))})"
            params.extend(str(s) for s in statuses)
        rows = self._run(sql + _IMPROVEMENT_ORDER, params).fetchall()
        return [codec.improvement_from_row(*row) for row in rows]

    def insert_improvements(self, items: Sequence[Improvement]) -> None:
        """Store new items (their `version` as given, normally 0). An id already stored in the same
        environment (or given twice) is refused with StoreError before anything is written."""
        self._writing("insert_improvements")
        seen: set[tuple[str, str]] = set()
        for environment in sorted({i.environment for i in items}):
            rows = self._run("SELECT id FROM improvements WHERE environment = ?", (environment,))
            seen.update((environment, row[0]) for row in rows)
        for item in items:
            if item.key in seen:
                raise StoreError(f"improvement {item.environment}/{item.id} already exists")
            seen.add(item.key)
        for item in items:
            body = codec.improvement_to_body(item)
            self._run(
                "INSERT INTO improvements (environment, id, status, quality, updated_at, version, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    item.environment,
                    item.id,
                    str(item.status),
                    float(item.proposal.quality_score),
                    float(item.updated_at),
                    int(item.version),
                    body,
                ),
            )
            codec.remember_improvement(item, body)

    def update_improvement(self, item: Improvement, expected_version: int) -> bool:
        """Write `item` as version expected_version + 1, only if the stored version is
        expected_version. False (and nothing written) when someone else got there first."""
        self._writing("update_improvement")
        body = codec.improvement_to_body(item)
        cur = self._run(
            "UPDATE improvements SET status = ?, quality = ?, updated_at = ?, version = ?, body = ?"
            " WHERE environment = ? AND id = ? AND version = ?",
            (
                str(item.status),
                float(item.proposal.quality_score),
                float(item.updated_at),
                expected_version + 1,
                body,
                item.environment,
                item.id,
                expected_version,
            ),
        )
        if cur.rowcount != 1:
            return False
        codec.remember_improvement(replace(item, version=expected_version + 1), body)
        return True

    # ------------------------------------------------------------------------------ backups

    def get_backup_run(self, run_id: str) -> BackupRun | None:
        row = self._run(f"{_BACKUP_SELECT} WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else _backup_run(row)

    def list_backup_runs(self, target: str | None = None, limit: int | None = None) -> list[BackupRun]:
        """Newest first (started_at, then id), in one query."""
        sql = _BACKUP_SELECT
        params: list[Any] = []
        if target is not None:
            sql += " WHERE target = ?"
            params.append(target)
        sql += " ORDER BY started_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_backup_run(row) for row in self._run(sql, params).fetchall()]

    def insert_backup_run(self, run: BackupRun) -> None:
        self._writing("insert_backup_run")
        if self._scalar("SELECT 1 FROM backup_runs WHERE id = ?", (run.id,)) is not None:
            raise StoreError(f"backup run {run.id} already exists")
        self._run(
            "INSERT INTO backup_runs (id, target, trigger, actor, status, started_at, ended_at, version, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.id,
                run.target,
                str(run.trigger),
                run.actor,
                str(run.status),
                float(run.started_at),
                None if run.ended_at is None else float(run.ended_at),
                int(run.version),
                codec.dumps(run_to_body(run)),
            ),
        )

    def update_backup_run(self, run: BackupRun, expected_version: int) -> bool:
        """Write `run` as version expected_version + 1, only if the stored version is
        expected_version; False (nothing written) when someone else changed it first."""
        self._writing("update_backup_run")
        cur = self._run(
            "UPDATE backup_runs SET status = ?, ended_at = ?, version = ?, body = ? WHERE id = ? AND version = ?",
            (
                str(run.status),
                None if run.ended_at is None else float(run.ended_at),
                expected_version + 1,
                codec.dumps(run_to_body(run)),
                run.id,
                expected_version,
            ),
        )
        return bool(cur.rowcount == 1)

    # ------------------------------------------------------------------------------ small state

    # ------------------------------------------------------------------------------ deploys

    def save_deploy(self, record: dict[str, Any], at: float) -> None:
        """Insert or replace one deploy's record (`id`, `service`, `phase` and `started_at` in it;
        the rest is kept as given). Plain JSON: image references, IDs, steps; never a secret."""
        self._writing("save_deploy")
        try:
            deploy_id, service, phase = str(record["id"]), str(record["service"]), str(record["phase"])
            started = float(record.get("started_at") or at)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"save_deploy: the record needs id, service and phase ({exc})") from exc
        body = json.dumps(record, sort_keys=True)
        updated = self._run(
            "UPDATE deploys SET phase = ?, updated_at = ?, body = ? WHERE id = ?",
            (phase, float(at), body, deploy_id),
        )
        if updated.rowcount == 0:
            self._run(
                "INSERT INTO deploys (id, service, phase, started_at, updated_at, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (deploy_id, service, phase, started, float(at), body),
            )

    def get_deploy(self, deploy_id: str) -> dict[str, Any] | None:
        row = self._run(f"{_DEPLOY_SELECT} WHERE id = ?", (deploy_id,)).fetchone()
        return None if row is None else _deploy(row)

    def list_deploys(self, service: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest first (by start, then last change)."""
        sql, params = _DEPLOY_SELECT, list[Any]()
        if service is not None:
            sql += " WHERE service = ?"
            params.append(service)
        sql += " ORDER BY started_at DESC, updated_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_deploy(row) for row in self._run(sql, params).fetchall()]

    def get_kv(self, key: str, default: Any = None) -> Any:
        text = self._scalar("SELECT value FROM kv WHERE key = ?", (key,))
        return default if text is None else codec.loads(text)

    def set_kv(self, key: str, value: Any, at: float) -> None:
        self._writing("set_kv")
        self._run(
            "INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (key, codec.dumps(codec.to_jsonable(value)), float(at)),
        )


def _deploy(row: tuple[Any, ...]) -> dict[str, Any]:
    try:
        body = json.loads(row[5])
    except ValueError as exc:
        raise StoreError(f"deploy {row[0]}: unreadable record ({exc})") from exc
    record: dict[str, Any] = body if isinstance(body, dict) else {}
    record.update(id=row[0], service=row[1], phase=row[2], started_at=row[3], updated_at=row[4])
    return record


def _backup_run(row: tuple[Any, ...]) -> BackupRun:
    id_, target, trigger, actor, status, started_at, ended_at, version, body = row
    return run_from_row(id_, target, trigger, actor, status, started_at, ended_at, version, codec.loads(body))


def _schedule(row: tuple[Any, ...]) -> FlagSchedule:
    (
        sid,
        environment,
        flag,
        steps,
        next_index,
        state,
        created_by,
        origin,
        reason,
        created_at,
        updated_at,
        ended,
    ) = row
    return FlagSchedule(
        id=int(sid),
        environment=environment,
        flag=flag,
        steps=tuple(ScheduleStep(float(at), value) for at, value in codec.loads(steps)),
        next_index=int(next_index),
        state=ScheduleState(state),
        created_by=created_by,
        created_origin=origin,
        reason=reason,
        created_at=created_at,
        updated_at=updated_at,
        ended_reason=ended,
    )


_OUTBOX_COLUMNS = (
    "id, event, url, body, timeout, state, attempts, created_at, next_at, updated_at, last_error"
)
_PENDING = "pending"


@dataclass(frozen=True)
class Outboxed:
    """One notification in the outbox."""

    id: int
    event: str
    url: str
    body: str
    timeout: float
    state: str  # pending | delivered | failed
    attempts: int
    created_at: float
    next_at: float
    updated_at: float
    last_error: str


def _outboxed(row: tuple[Any, ...]) -> Outboxed:
    i, event, url, body, timeout, state, attempts, created, next_at, updated, error = row
    return Outboxed(
        int(i),
        event,
        url,
        body,
        float(timeout),
        state,
        int(attempts),
        float(created),
        float(next_at),
        float(updated),
        error,
    )


def _flag_record(row: tuple[Any, ...]) -> FlagRecord:
    environment, name, value, updated_at, updated_by = row
    parsed = codec.flag_value_from_text(value)
    if parsed is None:
        raise StoreError(f"flag {environment}/{name}: the stored value is null")
    return FlagRecord(environment, name, parsed, updated_at, updated_by)


class _Rows:
    """A cursor whose fetches fail as StoreError too: SQLite reads pages as it steps through rows, so
    a damaged page in the middle of a table surfaces in fetchall(), not in execute()."""

    def __init__(self, cursor: sqlite3.Cursor, where: str) -> None:
        self._cursor = cursor
        self._where = where

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        return self._guard(self._cursor.fetchone)

    def fetchall(self) -> list[Any]:
        rows: list[Any] = self._guard(self._cursor.fetchall)
        return rows

    def fetchmany(self, size: int) -> list[Any]:
        rows: list[Any] = self._guard(self._cursor.fetchmany, size)
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())

    def _guard(self, fetch: Any, *args: Any) -> Any:
        try:
            return fetch(*args)
        except sqlite3.Error as exc:
            raise _store_error(f"{self._where}: ", exc) from exc


class _Channel:
    """One connection and who is using it: a transaction at a time, nested ones in the same thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn: sqlite3.Connection | None = conn
        self.lock = threading.RLock()
        self.active: Tx | None = None
        self.owner: int | None = None
        """The thread running `active`."""

    def mine(self) -> Tx | None:
        """This thread's open transaction on this connection, if any."""
        return self.active if self.owner == threading.get_ident() else None


class SqliteStore(Store):
    def __init__(self, path: str, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._depth = 0
        self.applied: list[int] = []
        """The migrations this open applied (empty when the schema was already current)."""
        writer = _connect(path, read_only, self.applied)
        try:
            # A private in-memory database exists once per connection: it cannot have a reader.
            reader = writer if path == ":memory:" or read_only else _connect(path, True)
        except BaseException:
            writer.close()
            raise
        self._writer = _Channel(writer)
        self._reader = self._writer if reader is writer else _Channel(reader)

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    @contextmanager
    def transaction(self, timeout: float | None = None) -> Iterator[Tx]:
        # `timeout` bounds the whole wait (this process's other threads, then other processes) for
        # callers that must not wait the full busy timeout, such as the kill switch's record.
        if self.read_only:
            raise StoreError(f"{self.path}: this store is open read-only; a write needs a writable session")
        if self._reader is not self._writer and self._reader.mine() is not None:
            raise StoreError("cannot start a write transaction inside a read transaction (Store.read())")
        channel = self._writer
        if not channel.lock.acquire(timeout=-1 if timeout is None else timeout):
            raise StoreError(f"{self.path}: still in use by another task of this process after {timeout:g} s")
        try:
            if channel.active is None:
                after = ""
                if timeout is not None:
                    self._connection(channel).execute(f"PRAGMA busy_timeout = {max(1, int(timeout * 1000))}")
                    after = f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"
                try:
                    # Once BEGIN holds the lock, the rest of the transaction waits as usual.
                    yield from self._top_level(channel, "BEGIN IMMEDIATE", writable=True, after_begin=after)
                finally:
                    if after and channel.conn is not None:
                        channel.conn.execute(after)
            elif not channel.active.writable:
                raise StoreError("cannot start a write transaction inside a read transaction (Store.read())")
            else:
                yield from self._savepoint(channel.active)
        finally:
            channel.lock.release()

    @contextmanager
    def read(self) -> Iterator[Tx]:
        # Inside this thread's own transaction: read what it sees, through a handle that cannot write.
        outer = self._writer.mine() or self._reader.mine()
        if outer is not None:
            view = Tx(outer._conn, writable=False, where=self.path)
            try:
                yield view
            finally:
                view._open = False
            return
        with self._reader.lock:
            yield from self._top_level(self._reader, "BEGIN", writable=False)

    def pragmas(self) -> dict[str, Any]:
        """The connection's durability settings, for diagnostics (synchronous 2 means FULL)."""
        with self._writer.lock:
            conn = self._connection(self._writer)
            return {
                name: conn.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "busy_timeout")
            }

    def close(self) -> None:
        for channel in {id(c): c for c in (self._reader, self._writer)}.values():
            with channel.lock:
                if channel.conn is not None:
                    channel.conn.close()
                    channel.conn = None

    # ------------------------------------------------------------------------------ internals

    def _connection(self, channel: _Channel) -> sqlite3.Connection:
        if channel.conn is None:
            raise StoreError(f"the store {self.path} is closed")
        return channel.conn

    def _top_level(
        self, channel: _Channel, begin: str, writable: bool, after_begin: str = ""
    ) -> Iterator[Tx]:
        conn = self._connection(channel)
        try:
            conn.execute(begin)
        except sqlite3.Error as exc:
            raise _store_error(f"{self.path}: cannot start a transaction: ", exc) from exc
        if after_begin:
            conn.execute(after_begin)
        tx = Tx(conn, writable, where=self.path)
        channel.active, channel.owner = tx, threading.get_ident()
        try:
            try:
                yield tx
            except BaseException:
                _rollback(conn)
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise _store_error(f"{self.path}: commit failed, nothing was written: ", exc) from exc
        finally:
            tx._open = False
            channel.active, channel.owner = None, None
        if tx.audit_head is not None and self.after_audit_commit is not None:
            self.after_audit_commit(*tx.audit_head)

    def _savepoint(self, outer: Tx) -> Iterator[Tx]:
        self._depth += 1
        name = f"nested_{self._depth}"
        conn = outer._conn
        head = outer.audit_head
        try:
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield outer
            except BaseException:
                conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                conn.execute(f"RELEASE SAVEPOINT {name}")
                outer.audit_head = head  # its events are undone: not the head to anchor
                raise
            conn.execute(f"RELEASE SAVEPOINT {name}")
        finally:
            self._depth -= 1


def _connect(path: str, query_only: bool, applied: list[int] | None = None) -> sqlite3.Connection:
    """A connection with the store's settings, the schema brought up to date if it is behind (the
    only case that takes the write lock while opening)."""
    try:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the SQLite store {path}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Asking first: switching to WAL needs an exclusive lock, finding it on (the usual case) none.
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        version = version_on_disk(conn)
        refuse_newer(version)
        if version < LATEST_VERSION:
            done = migrate(conn, begin="BEGIN IMMEDIATE")
            if applied is not None:
                applied.extend(done)
        if query_only:
            conn.execute("PRAGMA query_only = ON")
    except sqlite3.Error as exc:
        conn.close()
        raise _store_error(f"cannot prepare the SQLite store {path}: ", exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may already have rolled back by itself (some I/O errors, SQLITE_FULL).
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _explain(exc: sqlite3.Error) -> str:
    text = str(exc)
    if _is_busy(exc):
        return f"{text} (another process holds the write lock and kept it past the wait)"
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # the primary code of an extended one
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in text:
        return f"{text}: the database file is damaged; restore it from a backup"
    return text


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _store_error(prefix: str, exc: sqlite3.Error) -> StoreError:
    kind = StoreBusy if _is_busy(exc) else StoreError
    return kind(prefix + _explain(exc))
