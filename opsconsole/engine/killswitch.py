"""The emergency path.

Order matters, and nothing on the way to the safe files touches the database:
1. an intent line goes to the kill journal in the workspace (appended, fsynced), so every process
   that exports flag files from now on knows the switch is engaged, whatever the store says;
2. the safe state is patched into every flag file (atomic, fsynced) from configuration alone, with
   the canaries of active rollouts taken from a small cache file the engine keeps beside the store;
3. the store records the engagement, aborts every active rollout and appends one audit event in one
   transaction, and marks the journal line as recorded;
4. notifications go last: written to the store's outbox with the record, sent from there.
A locked, unreachable or full store therefore never delays the files: the journal line waits, and
any engine (a running one on its next tick) records it when the store is back. On a full disk a
small reserve file kept in the workspace is given up so the files and the journal line still fit.

The journal is data to check, not truth: a line that is malformed, has unknown fields or an
impossible time is set aside with a warning naming the file and line, and never engages anything.
A replayed line is recorded as replayed, with its hash.

Steps 1 and 2 also exist on plain data in killfast.py, for a fresh `opsconsole kill` process; the
journal line, the export lock and the reserve are that module's, shared.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .fsutil import write_atomic
from .killfast import CANARY_CACHE as CANARY_CACHE
from .killfast import JOURNAL as JOURNAL
from .killfast import LOCK_WAIT as LOCK_WAIT
from .killfast import RESERVE as RESERVE
from .killfast import append_journal as _append_line
from .killfast import export_lock as export_lock
from .killfast import with_room as _with_room
from .killfast import write_all as write_all
from .model import ACTIVE_STATES, Actor, Config, KillSwitchSpec, Rollout
from .rollout import Command, Decision, Rejected, decide
from .targets import dotenv, flagd, flagfile
from .targets import notify as notifier
from .units import iso_utc

if TYPE_CHECKING:
    from .core import Engine

KV_KEY = "kill_switch"
JOURNAL_DONE_KEY = "kill_switch.journal_done"
"""Hashes of journal lines already recorded (or set aside), so a line is never recorded twice."""
IMPROVEMENTS_KEY = "improvements.paused"
AUTONOMY_SUSPENDED_KEY = "improvements.autonomy_suspended"
"""When the kill switch last suspended autonomous improvements; `improvements.autonomy_resumed.<env>`
says when each environment's was resumed (suspended while that is older)."""
SET_ASIDE = "kill-journal.set-aside.jsonl"
RESERVE_BYTES = 512 * 1024
"""Given up on a full disk so the safe files fit: the largest flag file is written whole before the
old one is freed, so this must exceed one environment's largest export."""
RECORD_WAIT = 2.0
"""How long the store may keep the kill switch waiting for its record; the journal holds it after."""
NOTIFY_WAIT = 2.0
"""How long a short-lived process (the CLI) waits for its notifications before it exits; what is
not sent by then stays in the outbox for the next engine."""
FUTURE_SKEW = 300.0
MAX_AGE = 30 * 86400.0
_DONE_KEPT = 1000
_JOURNAL_FIELDS = {"id", "at", "user", "origin", "reason", "zero"}
TRUTHY = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class KillState:
    engaged: bool
    source: str = "none"  # store | journal | none
    by: str = ""
    at: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class KillResult:
    at: float
    files: list[str]
    aborted: list[str]
    recorded: bool  # False: the store was unreachable; the event waits in the journal
    already_engaged: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str = ""
    journaled: bool = True  # False: not even the journal could be written (the files still were)
    store: str = "ok"  # ok | busy (locked by another writer) | down (unreachable or failing)

    def store_note(self) -> str:
        """What a person is told about the store when it did not record the kill ("" when it did)."""
        if self.recorded:
            return ""
        what = {"busy": "the store is busy (locked)", "down": "the store is down (unreachable)"}
        return what.get(self.store, "the store did not record it")


def store_trouble(exc: BaseException) -> str:
    """How the store failed the kill switch's record: `busy` (another writer held it past the wait)
    or `down` (unreachable, failing, or not even opened)."""
    from .store import StoreBusy

    return "busy" if isinstance(exc, StoreBusy | TimeoutError) else "down"


@dataclass(frozen=True)
class JournalEntry:
    """One valid, not yet recorded engagement in the journal."""

    id: str
    at: float
    user: str
    origin: str
    reason: str
    zero: dict[str, list[str]]
    line: int
    sha256: str


@dataclass(frozen=True)
class JournalProblem:
    line: int
    sha256: str
    text: str
    problem: str

    def warning(self, path: Path) -> str:
        return f"{path}:{self.line}: kill journal line set aside ({self.problem}); it engages nothing"


@dataclass(frozen=True)
class ImprovementsPause:
    """The improvement queue's pause: set by the kill switch (when it is configured to pause
    improvements), lifted by the all-clear."""

    paused: bool
    by: str = ""
    at: float | None = None


def improvements_pause(stored: Mapping[str, Any] | None) -> ImprovementsPause:
    if not stored or not stored.get("paused"):
        return ImprovementsPause(False)
    at = stored.get("at")
    return ImprovementsPause(True, str(stored.get("by", "")), at if isinstance(at, int | float) else None)


def state_from(stored: Mapping[str, Any] | None, pending: Iterable[JournalEntry] = ()) -> KillState:
    """The switch's state from the store's record and the journal's unrecorded engagements."""
    if stored and stored.get("engaged"):
        return KillState(True, "store", stored.get("by", ""), stored.get("at"), stored.get("reason", ""))
    for e in pending:
        return KillState(True, "journal", e.user, e.at, f"{e.reason} (not yet recorded in the store)")
    return KillState(False)


# ---------------------------------------------------------------------------------------- journal


def read_journal(
    workspace: Path, done: Iterable[str] = (), now: float | None = None
) -> tuple[list[JournalEntry], list[JournalProblem]]:
    """The journal's unrecorded engagements and its bad lines (both skipping hashes in `done`).
    Never raises for what the file holds: a command must not fail because of one bad line."""
    path = workspace / JOURNAL
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], [JournalProblem(0, "", "", f"cannot read it: {exc.strerror or exc}")]
    if not raw:
        return [], []
    done_set = set(done)
    now = time.time() if now is None else now
    entries: list[JournalEntry] = []
    problems: list[JournalProblem] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        digest = hashlib.sha256(line).hexdigest()
        if digest in done_set:
            continue
        text = line.decode("utf-8", "replace")
        entry, problem = _parse_line(text, number, digest, now)
        if entry is not None:
            entries.append(entry)
        else:
            problems.append(JournalProblem(number, digest, text[:500], problem))
    return entries, problems


def _parse_line(text: str, number: int, digest: str, now: float) -> tuple[JournalEntry | None, str]:
    try:
        obj = json.loads(text)
    except ValueError as exc:
        return None, f"not JSON: {exc}"
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    unknown = sorted(set(obj) - _JOURNAL_FIELDS)
    if unknown:
        return None, f"unknown fields {', '.join(map(repr, unknown))}"
    missing = sorted(_JOURNAL_FIELDS - {"zero", "origin"} - set(obj))
    if missing:
        return None, f"missing fields {', '.join(map(repr, missing))}"
    at, user, reason = obj["at"], obj["user"], obj["reason"]
    if not isinstance(at, int | float) or isinstance(at, bool):
        return None, "'at' is not a time"
    if at > now + FUTURE_SKEW:
        return None, f"time {_iso(at)} is in the future"
    if at < now - MAX_AGE:
        return None, f"time {_iso(at)} is more than {MAX_AGE / 86400:g} days ago"
    if not isinstance(user, str) or not user.strip() or not isinstance(reason, str):
        return None, "'user' and 'reason' must be text"
    zero = obj.get("zero", {})
    if not isinstance(zero, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v)
        for k, v in zero.items()
    ):
        return None, "'zero' must map environments to flag names"
    origin = obj.get("origin", "")
    return (
        JournalEntry(
            str(obj["id"]),
            float(at),
            user,
            origin if isinstance(origin, str) else "",
            reason,
            zero,
            number,
            digest,
        ),
        "",
    )


def _iso(at: float) -> str:
    return iso_utc(max(0.0, min(at, 32503680000.0)), "seconds")


def append_journal(
    workspace: Path, actor: Actor, reason: str, at: float, zero: Mapping[str, set[str]]
) -> str:
    """Append one engagement to the journal (fsynced); returns the line's hash."""
    return _append_line(workspace, actor.user, actor.origin, reason, at, zero)


def _unrecorded(engine: Engine, tx: Any = None) -> tuple[list[JournalEntry], list[JournalProblem]]:
    """The journal's lines the store has neither recorded nor set aside (cheap when it is empty)."""
    try:
        if (engine.workspace / JOURNAL).stat().st_size == 0:
            return [], []
    except OSError:
        return [], []
    if tx is None:
        with engine.store.read() as rtx:
            done = rtx.get_kv(JOURNAL_DONE_KEY, []) or []
    else:
        done = tx.get_kv(JOURNAL_DONE_KEY, []) or []
    return read_journal(engine.workspace, done, engine.clock())


def pending(engine: Engine, tx: Any = None) -> list[JournalEntry]:
    """Valid journal engagements the store has not recorded yet."""
    return _unrecorded(engine, tx)[0]


def journal_warnings(engine: Engine) -> list[str]:
    """Warnings for the journal's bad lines not set aside yet, without setting them aside (for a
    session that records nothing: a read-only one, or the kill switch's own)."""
    path = engine.workspace / JOURNAL
    return [p.warning(path) if p.sha256 else f"{path}: {p.problem}" for p in _unrecorded(engine)[1]]


# ---------------------------------------------------------------------------------------- canaries


def canary_flags(config: Config, active: Iterable[Rollout] | None) -> dict[str, set[str]]:
    """Flags to send to 0%, per environment: the canaries of active rollouts' current phases, or,
    when nobody can say which rollouts are active, every canary flag any plan drives."""
    out: dict[str, set[str]] = {}
    if active is None:
        phases = [p for plan in config.plans.values() for p in plan.phases]
    else:
        phases = []
        for r in active:
            plan = config.plans.get(r.plan)
            if plan is not None and r.state in ACTIVE_STATES:
                phases.append(plan.phases[min(r.phase_index, len(plan.phases) - 1)])
    for phase in phases:
        s = phase.strategy
        if s is not None and s.kind == "canary" and s.flag:
            out.setdefault(phase.environment, set()).add(s.flag)
    return out


def cached_canaries(
    config: Config, workspace: Path, every_canary: dict[str, set[str]] | None = None
) -> dict[str, set[str]]:
    """The active canaries as the engine last saw them, without the store. A missing or unreadable
    cache means nobody can say: then every canary any plan drives goes to 0 (the safe side;
    `every_canary` when the caller knows it without the plans)."""
    try:
        obj = json.loads((workspace / CANARY_CACHE).read_bytes())
        return {str(env): {str(n) for n in names} for env, names in obj["canaries"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return every_canary if every_canary is not None else canary_flags(config, None)


def write_canary_cache(workspace: Path, canaries: Mapping[str, set[str]]) -> None:
    body = {"canaries": {env: sorted(v) for env, v in sorted(canaries.items()) if v}}
    data = (json.dumps(body, sort_keys=True) + "\n").encode()
    path = workspace / CANARY_CACHE
    with contextlib.suppress(OSError):
        if path.read_bytes() == data:
            return
    write_atomic(path, data)


# ---------------------------------------------------------------------------------------- files


def kill_spec_for(spec: KillSwitchSpec, zero: Iterable[str]) -> KillSwitchSpec:
    """The spec an export applies while engaged: the configured flags and the aborted canaries."""
    extra = tuple(n for n in zero if n not in spec.flags_off)
    return replace(spec, flags_off=(*spec.flags_off, *extra)) if extra else spec


def write_safe_files(config: Config, zero: Mapping[str, set[str]], at: float) -> list[str]:
    """Patch the safe state into every environment's flag files from configuration alone; returns the
    paths written. One file that cannot be written does not stop the others: the first error is
    raised once every other file has been tried."""
    spec = config.kill_switch
    items: list[tuple[Path, bytes]] = []
    errors: list[Exception] = []
    for env in config.environments.values():
        target = env.flags
        if target is None:
            continue
        patches: list[tuple[str, Callable[..., bytes]]] = [(target.path, flagfile.kill_patch)]
        if target.flagd:
            patches.append((target.flagd, flagd.kill_patch))
        if target.dotenv:
            patches.append((target.dotenv, dotenv.kill_patch))
        canaries = zero.get(env.name, set())
        for path, patch in patches:
            try:
                data = patch(
                    Path(path),
                    spec.flags_off,
                    spec.flags_on,
                    canaries,
                    at,
                    defs=config.flags,
                    environment=env.name,
                )
            except Exception as exc:
                errors.append(exc)
            else:
                items.append((Path(path), data))
    return write_all(items, errors)


def ensure_reserve(workspace: Path) -> None:
    """Keep the full-disk reserve in the workspace (quietly: there may be no room for it now)."""
    path = workspace / RESERVE
    with contextlib.suppress(OSError):
        if path.exists() and path.stat().st_size >= RESERVE_BYTES:
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
        except OSError:
            os.close(fd)
            os.unlink(path)
            return
        os.close(fd)


@dataclass(frozen=True)
class SafeFiles:
    """What the store-free part of the kill switch did."""

    at: float
    files: list[str]
    journal_hash: str  # "" when the journal line could not be written
    error: str
    ms: float


def make_safe(
    config: Config,
    workspace: Path,
    actor: Actor,
    reason: str,
    now: float,
    every_canary: dict[str, set[str]] | None = None,
) -> SafeFiles:
    """Steps 1 and 2: journal line, then every flag file, with no database access at all."""
    t0 = time.perf_counter()
    zero = cached_canaries(config, workspace, every_canary)
    errors: list[str] = []
    digest = ""
    with export_lock(workspace, wait=LOCK_WAIT):
        try:
            digest = _with_room(workspace, lambda: append_journal(workspace, actor, reason, now, zero))
        except OSError as exc:
            errors.append(f"kill journal {workspace / JOURNAL}: {exc.strerror or exc}")
        try:
            files = _with_room(workspace, lambda: write_safe_files(config, zero, now))
        except OSError as exc:
            errors.append(f"flag files: {exc}")
            files = []
    return SafeFiles(now, files, digest, "; ".join(errors), (time.perf_counter() - t0) * 1000)


# ---------------------------------------------------------------------------------------- engage


def engage(engine: Engine, reason: str, on_safe: Callable[[SafeFiles], None] | None = None) -> KillResult:
    # The collector must not pause the emergency path: a gen-2 pass with a large heap costs tens of ms.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        safe = make_safe(engine.config, engine.workspace, engine.actor, reason, engine.clock())
        if on_safe is not None:
            on_safe(safe)
        return record(engine, safe, reason)
    finally:
        if was_enabled:
            gc.enable()


def record(engine: Engine, safe: SafeFiles, reason: str) -> KillResult:
    """Steps 3 and 4: the store's record (bounded wait), then the re-export and notifications."""
    t0 = time.perf_counter()
    actor = engine.actor
    timings = {"files": safe.ms}
    try:
        with engine.store.transaction(timeout=RECORD_WAIT) as tx:
            aborted, already, sent = _record(
                engine, tx, actor, reason, safe.at, journal_hash=safe.journal_hash
            )
    except Exception as exc:
        message = f"kill switch engaged by {actor.user}: {reason} (not yet recorded: {exc})"
        notifier.send(engine.config.notifications, "kill_switch", message)
        error = f"store: {exc}" + (f"; {safe.error}" if safe.error else "")
        return KillResult(
            safe.at,
            safe.files,
            [],
            False,
            timings_ms=timings,
            error=error,
            journaled=bool(safe.journal_hash),
            store=store_trouble(exc),
        )
    t_store = time.perf_counter()
    timings["store"] = (t_store - t0) * 1000
    _after_record(engine, actor, reason, aborted, sent)
    timings["after_store"] = (time.perf_counter() - t_store) * 1000
    timings["total"] = timings["files"] + timings["store"] + timings["after_store"]
    return KillResult(safe.at, safe.files, aborted, True, already, timings, safe.error)


def _after_record(
    engine: Engine, actor: Actor, reason: str, aborted: list[str], notifications: list[int]
) -> None:
    with contextlib.suppress(Exception):  # the patched files already hold the safe state
        engine.export_flags()
    with contextlib.suppress(Exception):
        engine.refresh_canary_cache()
    notifier.deliver_soon(engine.store, notifications)
    engine.bus.publish("kill_switch", engaged=True, by=actor.user, reason=reason, aborted=aborted)


def _record(
    engine: Engine,
    tx: Any,
    actor: Actor,
    reason: str,
    now: float,
    *,
    journal_hash: str = "",
    replayed: bool = False,
) -> tuple[list[str], bool, list[int]]:
    """The store part of engaging, inside `tx`: state, aborts, one audit event, the journal line
    marked as recorded, the notifications in the outbox (their ids are returned last)."""
    spec = engine.config.kill_switch
    # On PostgreSQL the whole record is pipelined: statements go without waiting for their answers
    # until one is read, so the transaction costs a round trip per read (about eight), not one per
    # statement. Row counts are not read: the write lock is held, nothing else changes these rows.
    with tx.pipeline() if hasattr(tx, "pipeline") else contextlib.nullcontext():
        aborted: list[str] = []
        touched: set[str] = set()
        prev = tx.get_kv(KV_KEY)
        already = bool(prev and prev.get("engaged"))
        tx.set_kv(
            KV_KEY,
            {"engaged": True, "by": actor.user, "origin": actor.origin, "at": now, "reason": reason},
            now,
        )
        if spec.pause_improvements:
            tx.set_kv(IMPROVEMENTS_KEY, {"paused": True, "by": "kill_switch", "at": now}, now)
            # Autonomous mode stays suspended after the all-clear, until someone resumes it on purpose.
            tx.set_kv(AUTONOMY_SUSPENDED_KEY, {"at": now, "by": actor.user, "reason": reason}, now)
        if spec.abort_rollouts:
            # Set-based, so the store part does not grow a round trip per rollout on PostgreSQL: one read
            # of the active rollouts, one of every flag they change (Tx.set_flags), then a statement per
            # kind of write for all of them.
            decided: list[tuple[Rollout, Decision]] = []
            for r in tx.list_rollouts(active_only=True):
                plan = engine.config.plans.get(r.plan)
                if plan is None:
                    continue
                decided.append((r, decide(plan, r, Command("abort", actor, f"kill switch: {reason}"), now)))
            news = engine.apply_flag_actions_many(tx, [d for _, d in decided], now, touched)
            tx.update_rollouts([(new, r.version) for (r, _), new in zip(decided, news, strict=True)])
            aborted = [r.id for r, _ in decided]
        # Scheduled flag changes stop for good: after all-clear nobody wants a ramp to resume unseen.
        stopped = tx.stop_pending_schedules(f"kill switch engaged by {actor.user}: {reason}", now)
        data: dict[str, Any] = {
            "reason": reason,
            "aborted": aborted,
            "stopped_schedules": stopped,
            "flags_off": list(spec.flags_off),
            "flags_on": list(spec.flags_on),
            "already_engaged": already,
            "recorded_late": replayed,
        }
        if replayed:
            data["replayed_from_journal"] = journal_hash
        tx.append_audit(now, actor, "kill_switch.engage", "kill_switch", data)
        if journal_hash:
            _mark_done(tx, [journal_hash], now)
        sent = notifier.enqueue(
            tx,
            engine.config.notifications,
            "kill_switch",
            f"kill switch engaged by {actor.user}: {reason}",
            now,
            aborted=aborted,
            **({"replayed_from_journal": journal_hash} if replayed else {}),
        )
    return aborted, already, sent


def _mark_done(tx: Any, hashes: Iterable[str], now: float) -> None:
    done = list(tx.get_kv(JOURNAL_DONE_KEY, []) or [])
    done.extend(h for h in hashes if h not in done)
    tx.set_kv(JOURNAL_DONE_KEY, done[-_DONE_KEPT:], now)


def replay_journal(engine: Engine) -> tuple[int, list[str]]:
    """Record the journal's unrecorded engagements in the store, each as replayed with its line's
    hash; set bad lines aside with a warning. Returns (engagements recorded, warnings). Raises
    StoreError when the store cannot be written (the journal keeps its lines)."""
    path = engine.workspace / JOURNAL
    try:
        if path.stat().st_size == 0:
            return 0, []
    except OSError:
        return 0, []
    now = engine.clock()
    with engine.store.read() as rtx:
        if read_journal(engine.workspace, rtx.get_kv(JOURNAL_DONE_KEY, []) or [], now) == ([], []):
            return 0, []  # every line recorded already: no write lock needed
    recorded: list[JournalEntry] = []
    warnings: list[str] = []
    sent: list[int] = []
    with engine.store.transaction() as tx:
        entries, problems = read_journal(engine.workspace, tx.get_kv(JOURNAL_DONE_KEY, []) or [], now)
        for e in entries:
            sent += _record(
                engine, tx, Actor(e.user, e.origin), e.reason, e.at, journal_hash=e.sha256, replayed=True
            )[2]
            recorded.append(e)
        for p in problems:
            if not p.sha256:  # the journal itself could not be read
                warnings.append(f"{path}: {p.problem}")
                continue
            warnings.append(p.warning(path))
            tx.append_audit(
                now,
                engine.actor,
                "kill_switch.journal_set_aside",
                "kill_switch",
                {"file": str(path), "line": p.line, "sha256": p.sha256, "problem": p.problem},
            )
        _mark_done(tx, [p.sha256 for p in problems if p.sha256], now)
    if problems:
        with contextlib.suppress(OSError):
            _set_aside(engine.workspace, problems)
    if recorded:
        last = recorded[-1]
        _after_record(engine, Actor(last.user, last.origin), last.reason, [], sent)
    return len(recorded), warnings


def _set_aside(workspace: Path, problems: Iterable[JournalProblem]) -> None:
    lines = "".join(
        json.dumps({"line": p.line, "sha256": p.sha256, "problem": p.problem, "text": p.text}) + "\n"
        for p in problems
        if p.sha256
    )
    with open(workspace / SET_ASIDE, "a", encoding="utf-8") as fh:
        fh.write(lines)


def wait_for_notifications(timeout: float = NOTIFY_WAIT) -> bool:
    """Wait (bounded) for this process's notifications to be sent; True when all were."""
    return notifier.flush(timeout)


# ---------------------------------------------------------------------------------------- all-clear


def all_clear(engine: Engine, reason: str) -> None:
    state = engine.kill_state()
    now = engine.clock()
    actor = engine.actor
    with export_lock(engine.workspace, wait=2.0) as locked:
        with engine.store.transaction() as tx:
            if pending(engine, tx):
                raise Rejected(
                    f"the kill journal ({engine.workspace / JOURNAL}) holds an engagement the store has not "
                    "recorded yet; the running engine records it on its next tick, then give the all-clear"
                )
            tx.set_kv(
                KV_KEY,
                {"engaged": False, "by": actor.user, "origin": actor.origin, "at": now, "reason": reason},
                now,
            )
            tx.set_kv(IMPROVEMENTS_KEY, {"paused": False, "by": actor.user, "at": now}, now)
            tx.append_audit(
                now,
                actor,
                "kill_switch.all_clear",
                "kill_switch",
                {"reason": reason, "was_engaged": state.engaged},
            )
            sent = notifier.enqueue(
                tx,
                engine.config.notifications,
                "all_clear",
                f"all-clear given by {actor.user}: {reason}",
                now,
            )
        if locked:
            # Every line is recorded: start the next emergency with an empty journal.
            with contextlib.suppress(OSError):
                os.truncate(engine.workspace / JOURNAL, 0)
    ensure_reserve(engine.workspace)
    engine.export_flags()
    notifier.deliver_soon(engine.store, sent)
    engine.bus.publish("kill_switch", engaged=False, by=actor.user, reason=reason)
