"""The emergency path (DESIGN §6).

Order matters: the safe state goes to the flag files first (atomic, fsynced) from configuration alone,
so it lands even when the database is locked or gone; then the store records the engagement and aborts
every active rollout in one transaction; notifications go last, on background threads. Nothing here
waits on a metric source, an alarm source or a notification receiver. When the store cannot be
written, the event is appended to a journal in the workspace and recorded when the store is back.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .fsutil import write_atomic
from .model import Actor, Config, Rollout
from .rollout import Command, decide
from .targets import dotenv, flagd, flagfile
from .targets import notify as notifier

if TYPE_CHECKING:
    from .core import Engine

KV_KEY = "kill_switch"
IMPROVEMENTS_KEY = "improvements.paused"
JOURNAL = "kill-journal.jsonl"
TRUTHY = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class KillState:
    engaged: bool
    source: str = "none"  # store | env | none
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


def state_from(stored: Mapping[str, Any] | None, environ: Mapping[str, str]) -> KillState:
    env_value = environ.get("EMERGENCY_SHUTDOWN", "").strip().lower()
    if env_value in TRUTHY:
        return KillState(True, "env", "environment", None, "EMERGENCY_SHUTDOWN is set in the environment")
    if stored and stored.get("engaged"):
        return KillState(True, "store", stored.get("by", ""), stored.get("at"), stored.get("reason", ""))
    return KillState(False)


def canary_flags(config: Config, active: Iterable[Rollout] | None) -> dict[str, set[str]]:
    """Flags to send to 0%, per environment: the canaries of active rollouts' current phases, or,
    when the store could not say which rollouts are active, every canary flag any plan drives."""
    out: dict[str, set[str]] = {}
    if active is None:
        phases = [p for plan in config.plans.values() for p in plan.phases]
    else:
        phases = []
        for r in active:
            plan = config.plans.get(r.plan)
            if plan is not None:
                phases.append(plan.phases[min(r.phase_index, len(plan.phases) - 1)])
    for phase in phases:
        s = phase.strategy
        if s is not None and s.kind == "canary" and s.flag:
            out.setdefault(phase.environment, set()).add(s.flag)
    return out


def write_safe_files(config: Config, zero: Mapping[str, set[str]], at: float) -> list[str]:
    """Patch the safe state into every environment's flag files from configuration alone; returns the
    paths written. One file that cannot be written does not stop the others: the first error is
    raised once every other file has been tried."""
    spec = config.kill_switch
    written: list[str] = []
    errors: list[Exception] = []
    for env in config.environments.values():
        target = env.flags
        if target is None:
            continue
        canaries = zero.get(env.name, set())
        patches: list[tuple[str, Callable[..., None], dict[str, Any]]] = [
            (target.path, flagfile.patch_for_kill, {})
        ]
        extra: dict[str, Any] = {"defs": config.flags, "environment": env.name}
        if target.flagd:
            patches.append((target.flagd, flagd.patch_for_kill, extra))
        if target.dotenv:
            patches.append((target.dotenv, dotenv.patch_for_kill, extra))
        for path, patch, kwargs in patches:
            try:
                patch(Path(path), spec.flags_off, spec.flags_on, canaries, at, **kwargs)
            except Exception as exc:
                errors.append(exc)
            else:
                written.append(path)
    if errors:
        raise errors[0]
    return written


def engage(engine: Engine, reason: str) -> KillResult:
    # The collector must not pause the emergency path: a gen-2 pass with a large heap costs tens of ms.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _engage(engine, reason)
    finally:
        if was_enabled:
            gc.enable()


def _engage(engine: Engine, reason: str) -> KillResult:
    t0 = time.perf_counter()
    now = engine.clock()
    actor = engine.actor
    try:
        active: list[Rollout] | None = engine.rollouts(active_only=True)
    except Exception:
        active = None
    files = write_safe_files(engine.config, canary_flags(engine.config, active), now)
    t_files = time.perf_counter()
    try:
        aborted, already = _record(engine, actor, reason, now)
    except Exception as exc:
        journal(engine.workspace, actor, reason, now)
        notifier.send(
            engine.config.notifications, "kill_switch", f"kill switch engaged by {actor.user}: {reason}"
        )
        return KillResult(now, files, [], False, timings_ms=_ms(t0, t_files), error=str(exc))
    t_store = time.perf_counter()
    _reexport(engine)
    notifier.send(
        engine.config.notifications,
        "kill_switch",
        f"kill switch engaged by {actor.user}: {reason}",
        aborted=aborted,
    )
    engine.bus.publish("kill_switch", engaged=True, by=actor.user, reason=reason, aborted=aborted)
    timings = _ms(t0, t_files) | {
        "store": (t_store - t_files) * 1000,
        "total": (time.perf_counter() - t0) * 1000,
    }
    return KillResult(now, files, aborted, True, already, timings)


def _ms(t0: float, t_files: float) -> dict[str, float]:
    return {"files": (t_files - t0) * 1000}


def _record(
    engine: Engine, actor: Actor, reason: str, now: float, late: bool = False
) -> tuple[list[str], bool]:
    """The store part of engaging, in one transaction: state, aborts, one audit event."""
    spec = engine.config.kill_switch
    aborted: list[str] = []
    touched: set[str] = set()
    with engine.store.transaction() as tx:
        prev = tx.get_kv(KV_KEY)
        already = bool(prev and prev.get("engaged"))
        tx.set_kv(
            KV_KEY,
            {"engaged": True, "by": actor.user, "origin": actor.origin, "at": now, "reason": reason},
            now,
        )
        if spec.pause_improvements:
            tx.set_kv(IMPROVEMENTS_KEY, {"paused": True, "by": "kill_switch", "at": now}, now)
        if spec.abort_rollouts:
            for r in tx.list_rollouts(active_only=True):
                plan = engine.config.plans.get(r.plan)
                if plan is None:
                    continue
                d = decide(plan, r, Command("abort", actor, f"kill switch: {reason}"), now)
                new = engine._apply_flag_actions(tx, d, now, touched)
                tx.update_rollout(new, r.version)
                aborted.append(r.id)
        # Scheduled flag changes stop for good: after all-clear nobody wants a ramp to resume unseen.
        stopped = tx.stop_pending_schedules(f"kill switch engaged by {actor.user}: {reason}", now)
        tx.append_audit(
            now,
            actor,
            "kill_switch.engage",
            "kill_switch",
            {
                "reason": reason,
                "aborted": aborted,
                "stopped_schedules": stopped,
                "flags_off": list(spec.flags_off),
                "flags_on": list(spec.flags_on),
                "already_engaged": already,
                "recorded_late": late,
            },
        )
    return aborted, already


@contextlib.contextmanager
def export_lock(workspace: Path, wait: float = 1.0) -> Any:
    """Serialises flag-file exports across processes so a stale export cannot land after the kill
    switch's; gives up after `wait` seconds rather than make anyone wait longer."""
    workspace.mkdir(parents=True, exist_ok=True)
    fd = os.open(workspace / "flags.lock", os.O_CREAT | os.O_RDWR, 0o644)
    got = False
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                got = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.005)
        yield got
    finally:
        if got:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _reexport(engine: Engine) -> None:
    with contextlib.suppress(Exception):  # the patched files already hold the safe state
        engine.export_flags()


def all_clear(engine: Engine, reason: str) -> None:
    state = engine.kill_state()
    if state.source == "env":
        from .rollout import Rejected

        raise Rejected("EMERGENCY_SHUTDOWN is set in the environment; unset it first")
    now = engine.clock()
    actor = engine.actor
    with engine.store.transaction() as tx:
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
    engine.export_flags()
    notifier.send(engine.config.notifications, "all_clear", f"all-clear given by {actor.user}: {reason}")
    engine.bus.publish("kill_switch", engaged=False, by=actor.user, reason=reason)


def journal(workspace: Path, actor: Actor, reason: str, at: float) -> None:
    """Append the engagement to the journal (fsynced) for recording when the store is back."""
    path = workspace / JOURNAL
    existing = path.read_bytes() if path.exists() else b""
    line = json.dumps({"user": actor.user, "origin": actor.origin, "reason": reason, "at": at}) + "\n"
    write_atomic(path, existing + line.encode())


def replay_journal(engine: Engine) -> int:
    path = engine.workspace / JOURNAL
    if not path.exists():
        return 0
    entries = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    for e in entries:
        _record(engine, Actor(e["user"], e["origin"]), e["reason"], e["at"], late=True)
    path.unlink()
    engine.export_flags()
    return len(entries)


def engage_without_store(
    config_file: str | None, workspace: str | None, reason: str, error: str
) -> KillResult:
    """The kill switch when the store cannot even be opened: configuration alone says which files to
    write; every canary any plan drives goes to 0; the event waits in the journal."""
    from . import load
    from .authz import Authz
    from .identity import current_actor

    t0 = time.perf_counter()
    config, ws = load(config_file, workspace)
    actor = current_actor()
    Authz.from_config(config).require(actor, "kill_switch.engage")
    now = time.time()
    files = write_safe_files(config, canary_flags(config, None), now)
    t_files = time.perf_counter()
    journal(ws, actor, reason, now)
    notifier.send(config.notifications, "kill_switch", f"kill switch engaged by {actor.user}: {reason}")
    return KillResult(now, files, [], False, timings_ms=_ms(t0, t_files), error=f"store unavailable: {error}")
