"""The Engine: one object the console and the CLI drive.

Commands are transactions: read the rollout, decide (pure), write the new state, its audit records and
its flag changes in one commit guarded by the rollout's version, then export flag files and notify.
Two consoles approving at once therefore produce exactly one promotion: the loser's commit finds a
newer version, re-reads, and the state machine refuses the second approval or records it honestly.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import flags as flag_logic
from . import killplan, killswitch, resources
from . import report as report_mod
from . import schedules as schedule_logic
from . import stale as stale_logic
from .audit_anchor import append as anchor_audit_head
from .authz import Authz
from .events import EventBus
from .fsutil import write_atomic
from .identity import acting, superuser_warning
from .model import (
    ACTIVE_STATES,
    ENGINE_ACTOR,
    Actor,
    Config,
    FlagDef,
    FlagSchedule,
    FlagValue,
    GateVerdict,
    Plan,
    Rollout,
    RolloutState,
    ScheduleState,
    ScheduleStep,
)
from .rollout import Approve, Command, Decision, Rejected, RollbackDone, SetFlags, Tick, decide, new_rollout
from .store import Store, StoreError, open_store
from .store.sqlite import FlagChange
from .targets import notify as notifier
from .targets.exporter import Exporter

if TYPE_CHECKING:
    from .alarms import AlarmStatus
    from .backups.model import BackupRun, BackupTarget, RestoreResult, RetentionDecision, TargetStatus
    from .backups.service import BackupService
    from .improvements.decide import ImprovementStats
    from .improvements.model import Improvement
    from .improvements.service import ImprovementQueue
    from .improvements.sources import SourceFactory
    from .improvements.state import QueueMode, SyncResult
    from .sources.alertmanager import Silence

ALARM_ACKS = "alarm_acks"


class Conflict(Exception):
    """Someone else changed the rollout between our read and our write; try again."""


class NotFound(Exception):
    pass


class FilesBehind(Exception):
    """A change is stored but its flag files could not be written (a full disk): consumers see the
    old value until an engine writes them, which a running engine retries every tick."""


class Engine:
    def __init__(
        self,
        config: Config,
        workspace: Path,
        actor: Actor,
        *,
        read_only: bool = False,
        environ: Mapping[str, str] | None = None,
        clock: Any = time.time,
        store: Store | None = None,
        replay: bool = True,
    ) -> None:
        self.config = config
        self.workspace = workspace
        self.actor = actor
        self.environ = dict(os.environ if environ is None else environ)
        self.clock = clock
        self.authz = Authz.from_config(config, read_only=read_only)
        self.bus = EventBus()
        if store is None:
            # A read-only session never takes the write lock: it reports a kill still waiting in the
            # journal from the journal itself (kill_state) rather than record it.
            store = open_store(
                config.store,
                read_only=read_only,
                password_env=config.store_password_env,
                environ=self.environ,
            )
        self.store = store
        # In a team the person is the store's authenticated login, whatever name the caller gave.
        self.actor = acting(actor, store.login, config.logins)
        self.login_warning = superuser_warning(store.login)
        """Set when the store's login is a superuser (it can rewrite anything): the CLI says so."""
        self.store.after_audit_commit = functools.partial(anchor_audit_head, workspace)
        self._exporter = Exporter()
        """Keeps each flag's encoded lines between exports: only what changed is encoded again."""
        self.exported_seq = -1
        """The audit head at this engine's last complete flag export (-1: none yet)."""
        self.journal_warnings: list[str] = []
        """Kill-journal lines set aside at the last replay (file:line and why), for the CLI to show."""
        if not read_only:
            killswitch.ensure_reserve(self.workspace)
            killplan.save(config, workspace, killswitch.canary_flags(config, None))
            if replay:
                # A kill recorded only in the journal (the store was locked or down) is recorded now.
                with contextlib.suppress(StoreError):
                    self.replay_kill_journal()
            with contextlib.suppress(StoreError, OSError):
                self.refresh_canary_cache()
        if read_only or not replay:
            # Nothing is set aside here, but a bad journal line is still said, naming file and line.
            with contextlib.suppress(StoreError):
                self.journal_warnings = killswitch.journal_warnings(self)

    # ------------------------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self.store.close()

    @property
    def role(self) -> str:
        return self.authz.role_of(self.actor.user).name.lower()

    def plan(self, name: str) -> Plan:
        plan = self.config.plans.get(name)
        if plan is None:
            known = ", ".join(sorted(self.config.plans)) or "none"
            raise NotFound(f"no plan named {name!r} (plans: {known})")
        return plan

    # ------------------------------------------------------------------------------------ queries

    def rollouts(self, active_only: bool = False) -> list[Rollout]:
        with self.store.read() as tx:
            return tx.list_rollouts(active_only=active_only)

    def rollout(self, rollout_id: str) -> Rollout:
        with self.store.read() as tx:
            r = tx.get_rollout(rollout_id)
        if r is None:
            raise NotFound(f"no rollout {rollout_id!r}")
        return r

    def verdict_history(self, rollout_id: str) -> list[tuple[str, GateVerdict]]:
        with self.store.read() as tx:
            return tx.list_verdicts(rollout_id)

    def audit_events(self, target: str | None = None, limit: int | None = None) -> list[Any]:
        with self.store.read() as tx:
            return tx.list_audit(target=target, limit=limit)

    def verify_audit(self) -> Any:
        """The chain checked event by event, then against the anchors in the workspace (read first:
        a commit racing this check can only make the chain longer than they say)."""
        from . import audit, audit_anchor

        where = audit_anchor.path(self.workspace)
        try:
            anchors = audit_anchor.read(self.workspace)
        except OSError as exc:
            return audit.VerifyResult(False, 0, None, f"cannot read the audit anchor {where}: {exc}")
        hashes: dict[int, str] = {}
        with self.store.read() as tx:
            rows = audit_anchor.tap(tx.audit_rows(), {a.seq for a in anchors}, hashes)
            result = audit.verify_rows(rows)
            last = tx.list_audit(since_seq=result.checked - 1, limit=1) if result.checked else []
        if last:
            result = replace(result, head=last[0].hash)
        return audit.check_anchors(result, hashes, anchors, str(where))

    def report(self, rollout_id: str) -> report_mod.Report:
        r = self.rollout(rollout_id)
        events = self.audit_events(target=f"rollout:{rollout_id}")
        events += [
            e for e in self.audit_events(target="kill_switch") if rollout_id in e.data.get("aborted", [])
        ]
        plan = self.plan(r.plan)
        rep = report_mod.build(r, plan, events, self.verdict_history(rollout_id))
        until = r.updated_at if r.state not in ACTIVE_STATES else self.clock()
        for env in sorted({ph.environment for ph in plan.phases} & set(self.config.improvements)):
            rep.improvements += report_mod.improvement_entries(self.improvements(env), r.created_at, until)
        return rep

    def flag_history(self, environment: str, name: str) -> list[dict[str, Any]]:
        with self.store.read() as tx:
            return tx.flag_history(environment, name)

    def alarm_acks(self) -> dict[str, dict[str, Any]]:
        with self.store.read() as tx:
            return dict(tx.get_kv(ALARM_ACKS, {}) or {})

    def can(self, action: str) -> bool:
        """Whether this session's actor may take `action` (read-only sessions may take none)."""
        return self.authz.allowed(self.actor, action)

    def kill_state(self) -> killswitch.KillState:
        """Engaged when the store says so or the kill journal holds an engagement not yet recorded."""
        with self.store.read() as tx:
            stored = tx.get_kv(killswitch.KV_KEY)
            waiting = killswitch.pending(self, tx)
        return killswitch.state_from(stored, waiting)

    def improvements_paused(self) -> killswitch.ImprovementsPause:
        """Whether the kill switch paused the improvement queue; the all-clear lifts it."""
        with self.store.read() as tx:
            return killswitch.improvements_pause(tx.get_kv(killswitch.IMPROVEMENTS_KEY))

    def flag_states(self, environment: str) -> dict[str, flag_logic.FlagState]:
        with self.store.read() as tx:
            stored = {f.name: f.value for f in tx.list_flags(environment)}
        kill = self.config.kill_switch if self.kill_state().engaged else None
        # The overrides the environment's services declare, not this process's own environment:
        # what the engine was started with says nothing about what the services run with.
        env = self.config.environments.get(environment)
        declared = dict(env.overrides) if env is not None else {}
        return flag_logic.resolve(
            self.config.flags, stored, kill=kill, environ=declared, environment=environment
        )

    def evaluate_flag(
        self, environment: str, name: str, ctx: flag_logic.EvalContext
    ) -> tuple[flag_logic.FlagState, flag_logic.Evaluation, flag_logic.Evaluation]:
        """A flag for one user: its state, the console's own answer (Unleash bucketing: the JSON
        file's consumers, the demo service, the canary) and what a flagd/OpenFeature consumer gets."""
        defn = self._flag_def(environment, name)
        state = self.flag_states(environment)[name]
        return state, flag_logic.evaluate(state, defn, ctx), flag_logic.flagd_evaluate(state, defn, ctx)

    def _flag_def(self, environment: str, name: str) -> FlagDef:
        """The flag's definition, or NotFound naming what is wrong (flags.find_flag)."""
        try:
            return flag_logic.find_flag(self.config, name, environment)
        except flag_logic.UnknownFlag as exc:
            raise NotFound(str(exc)) from None

    def flag_schedules(self, environment: str | None = None, active_only: bool = True) -> list[FlagSchedule]:
        """Scheduled flag changes, oldest first: the pending ones, or every one with active_only=False."""
        with self.store.read() as tx:
            return tx.list_schedules(environment, active_only=active_only)

    def flag_ages(self, environment: str) -> dict[str, stale_logic.FlagAge]:
        """Age and staleness of every flag used in `environment` (stale.py says how age is counted)."""
        if environment not in self.config.environments:
            raise NotFound(f"no environment {environment!r}")
        with self.store.read() as tx:
            first = tx.first_flag_changes()
        defs = [d for d in self.config.flags.values() if d.in_environment(environment)]
        return stale_logic.flag_ages(defs, first, self.clock())

    def stale_flags(self, environment: str) -> list[stale_logic.FlagAge]:
        """The flags of `environment` that outlived their kind's lifetime, most overdue first."""
        return stale_logic.stale_only(self.flag_ages(environment).values())

    # ------------------------------------------------------------------------------------ commands

    def start_rollout(self, plan_name: str, reason: str = "") -> Rollout:
        self.authz.require(self.actor, "rollout.start")
        plan = self.plan(plan_name)
        if self.kill_state().engaged:
            raise Rejected("the kill switch is engaged; give all-clear before starting a rollout")
        now = self.clock()
        rid = f"{plan.name}-{time.strftime('%m%d-%H%M%S', time.gmtime(now))}-{secrets.token_hex(2)}"
        d = new_rollout(plan, rid, self.actor, now, reason)
        with self.store.transaction() as tx:
            # Checked under the write lock that the insert takes, so two racing starts give one rollout.
            clash = resources.first_conflict(plan, tx.list_rollouts(active_only=True), self.config.plans)
            if clash is not None:
                other, what = clash
                raise Rejected(
                    f"rollout {other.id} (plan {other.plan}) is {other.state} and drives {what}; "
                    f"one active rollout per {what.kind}: finish, abort or roll back {other.id} first"
                )
            tx.insert_rollout(d.rollout)
            self._write_records(tx, d, now)
        with contextlib.suppress(StoreError, OSError):
            self.refresh_canary_cache()
        self.bus.publish("rollout", rollout=d.rollout)
        return d.rollout

    def command(self, rollout_id: str, kind: str, reason: str) -> Rollout:
        self.authz.require(self.actor, f"rollout.{kind}")
        return self._act(rollout_id, lambda r: Command(kind, self.actor, reason))

    def approve(self, rollout_id: str, reason: str, override: bool = False) -> Rollout:
        role = self.authz.require(self.actor, "rollout.override" if override else "rollout.approve")
        return self._act(rollout_id, lambda r: Approve(self.actor, role, reason, override))

    def tick_checklist(self, rollout_id: str, item: str) -> Rollout:
        self.authz.require(self.actor, "checklist.tick")
        return self._act(rollout_id, lambda r: Tick(self.actor, item))

    def set_flag(self, environment: str, name: str, value: FlagValue, reason: str) -> FlagValue | None:
        self.authz.require(self.actor, "flag.set")
        defn = self._flag_def(environment, name)
        value = flag_logic.validate_value(defn, value)
        if not reason.strip() and (defn.risk == "high" or self.config.environments[environment].production):
            where = "a high-risk flag" if defn.risk == "high" else f"a flag in {environment}"
            raise Rejected(f"changing {where} needs a reason ({name})")
        now = self.clock()
        with self.store.transaction() as tx:
            old = tx.set_flag(environment, name, value, self.actor, reason, now)
            if old != value:
                tx.append_audit(
                    now,
                    self.actor,
                    "flag.set",
                    f"flag:{environment}/{name}",
                    {"old": old, "new": value, "reason": reason},
                )
        try:
            self.export_flags([environment])
        except OSError as exc:
            raise FilesBehind(
                f"{environment}/{name} is stored as {value!r}, but its flag files could not be written "
                f"({exc}); consumers see the old value until they are (a running engine retries every tick)"
            ) from exc
        return old

    def ack_alarm(self, name: str, reason: str) -> None:
        """Acknowledge a firing alarm: who saw it and why it may keep firing. It does not silence gates."""
        self.authz.require(self.actor, "alarm.ack")
        now = self.clock()
        with self.store.transaction() as tx:
            acks = dict(tx.get_kv(ALARM_ACKS, {}) or {})
            acks[name] = {"by": self.actor.user, "origin": self.actor.origin, "at": now, "reason": reason}
            tx.set_kv(ALARM_ACKS, acks, now)
            tx.append_audit(now, self.actor, "alarm.ack", f"alarm:{name}", {"reason": reason})
        self.bus.publish("alarms")

    def silence_alarms(
        self, environment: str, matchers: Mapping[str, str], duration: float, reason: str
    ) -> str:
        """Silence the environment's alerts matching every label for `duration` seconds (audited);
        the silence id. Blocks on Alertmanager: call it from a thread."""
        from . import silences

        return silences.silence(self, environment, matchers, duration, reason)

    def expire_silence(self, environment: str, silence_id: str, reason: str) -> None:
        from . import silences

        silences.expire(self, environment, silence_id, reason)

    def silences(self, environment: str) -> list[Silence]:
        from . import silences

        return silences.silences(self, environment)

    def remote_alarms(self, environment: str) -> list[AlarmStatus]:
        """The environment's Alertmanager alerts, read once now (AlarmSourceError when unreachable)."""
        from . import silences

        return silences.alerts(self, environment)

    def kill(
        self, reason: str, on_safe: Callable[[killswitch.SafeFiles], None] | None = None
    ) -> killswitch.KillResult:
        """Pull the kill switch. `on_safe` is called as soon as the flag files hold the safe state,
        before the store records it (which may wait for a busy store)."""
        self.authz.require(self.actor, "kill_switch.engage")
        return killswitch.engage(self, reason, on_safe)

    def engage_from_environment(self) -> killswitch.KillResult | None:
        """EMERGENCY_SHUTDOWN=true in the environment of an engine or console at start pulls the kill
        switch, as an audited action of the account that started it and with the key's permission
        (Forbidden otherwise). Nothing when it is unset or the switch is engaged already."""
        if self.environ.get("EMERGENCY_SHUTDOWN", "").strip().lower() not in killswitch.TRUTHY:
            return None
        if self.kill_state().engaged:
            return None
        return self.kill("EMERGENCY_SHUTDOWN=true in the environment at start")

    def all_clear(self, reason: str) -> None:
        self.authz.require(self.actor, "kill_switch.all_clear")
        if not reason.strip():
            raise Rejected("all-clear needs a reason")
        killswitch.all_clear(self, reason)

    def schedule_flag(
        self,
        environment: str,
        name: str,
        steps: Sequence[ScheduleStep | tuple[float, FlagValue]],
        reason: str,
    ) -> FlagSchedule:
        """Plan changes of one flag (one step, or a ramp from schedules.ramp). Each step is applied
        when due by apply_due_schedules (the runner's tick) as an ordinary audited flag change; a step
        due already is applied at once. One pending schedule per flag and environment, none while the
        kill switch is engaged or a rollout drives the flag."""
        self.authz.require(self.actor, "flag.set")
        defn = self._flag_def(environment, name)
        now = self.clock()
        checked = schedule_logic.validate_steps(defn, steps, now)
        self._require_reason(environment, defn, reason, "scheduling")
        target = f"flag:{environment}/{name}"
        with self.store.transaction() as tx:
            if killswitch.state_from(tx.get_kv(killswitch.KV_KEY), killswitch.pending(self, tx)).engaged:
                raise Rejected("the kill switch is engaged; give all-clear before scheduling flag changes")
            pending = tx.list_schedules(environment, flag=name)
            if pending:
                raise Rejected(
                    f"{environment}/{name} already has pending schedule #{pending[0].id}; cancel it first "
                    f"(opsconsole flags cancel {pending[0].id} --reason ...)"
                )
            driver = self._rollout_driving(tx, environment, name)
            if driver is not None:
                raise Rejected(f"rollout {driver} drives {name} in {environment}; a schedule would fight it")
            schedule = tx.insert_schedule(environment, name, checked, self.actor, reason, now)
            tx.append_audit(
                now,
                self.actor,
                "flag.schedule",
                target,
                {"schedule": schedule.id, "steps": [[s.at, s.value] for s in checked], "reason": reason},
            )
        self.bus.publish("schedules", schedules=[schedule])
        if checked[0].at <= now:
            self.apply_due_schedules(now)
            with self.store.read() as tx:
                schedule = tx.get_schedule(schedule.id) or schedule
        return schedule

    def cancel_schedule(self, schedule_id: int, reason: str) -> FlagSchedule:
        """Stop a pending schedule for good; steps applied already stay applied."""
        self.authz.require(self.actor, "flag.set")
        now = self.clock()
        with self.store.transaction() as tx:
            s = tx.get_schedule(schedule_id)
            if s is None:
                raise NotFound(f"no schedule #{schedule_id}")
            if not s.active:
                raise Rejected(f"schedule #{s.id} is already {s.state}: {s.ended_reason}")
            defn = self.config.flags.get(s.flag)
            if defn is not None and s.environment in self.config.environments:
                self._require_reason(s.environment, defn, reason, "canceling the schedule of")
            tx.end_schedule(s.id, ScheduleState.CANCELED, f"canceled by {self.actor.user}: {reason}", now)
            tx.append_audit(
                now,
                self.actor,
                "flag.schedule.cancel",
                f"flag:{s.environment}/{s.flag}",
                {"schedule": s.id, "reason": reason, "applied": s.next_index, "steps": len(s.steps)},
            )
            s = tx.get_schedule(s.id) or s
        self.bus.publish("schedules", schedules=[s])
        return s

    def apply_due_schedules(self, now: float | None = None) -> list[FlagSchedule]:
        """Apply every scheduled step due at `now` (default: the clock); returns the schedules that
        changed (advanced, done, or stopped because they can no longer apply). Called by the runner
        every tick: when nothing is due it is one indexed query."""
        now = self.clock() if now is None else now
        with self.store.read() as tx:
            due = tx.due_schedules(now)
        if not due:
            return []
        changed: list[FlagSchedule] = []
        touched: set[str] = set()
        for candidate in due:
            s = self._apply_schedule(candidate.id, now, touched)
            if s is not None:
                changed.append(s)
        if touched:
            self.export_flags(sorted(touched))
        if changed:
            self.bus.publish("schedules", schedules=changed)
        return changed

    # ------------------------------------------------------------------------------------ backups

    @property
    def backup_service(self) -> BackupService:
        service: BackupService | None = self.__dict__.get("_backup_service")
        if service is None:
            from .backups.service import BackupService

            service = BackupService(self)
            self.__dict__["_backup_service"] = service
        return service

    def backup_targets(self) -> dict[str, BackupTarget]:
        return dict(self.config.backups)

    def backups(self, target: str | None = None, limit: int | None = None) -> list[BackupRun]:
        """Run records, newest first (pruned ones included: the history stays)."""
        return self.backup_service.runs(target, limit)

    def backup(self, run_id: str) -> BackupRun:
        return self.backup_service.run_record(run_id)

    def backup_status(self, target: str | None = None) -> dict[str, TargetStatus]:
        """Restorability per target: ok / stale / unverified / failing, with one line why."""
        return self.backup_service.status(target)

    def run_backup(self, target: str, trigger: str = "manual", reason: str = "") -> BackupRun:
        """Take a backup now; the record returned is `ok` or `failed` with the reason."""
        from .backups.model import Trigger

        return self.backup_service.run(target, Trigger(trigger), reason)

    def verify_backup(self, target: str, run_id: str | None = None) -> BackupRun:
        return self.backup_service.verify(target, run_id)

    def prune_backups(self, target: str, dry_run: bool = False) -> list[RetentionDecision]:
        return self.backup_service.prune(target, dry_run)

    def restore_backup(
        self,
        target: str,
        run_id: str | None = None,
        *,
        into: str | None = None,
        overwrite: bool = False,
        confirm: str = "",
        reason: str = "",
    ) -> RestoreResult:
        return self.backup_service.restore(
            target, run_id, into=into, overwrite=overwrite, confirm=confirm, reason=reason
        )

    # ------------------------------------------------------------------------------------ improvements

    improvement_sources: SourceFactory | None = None
    """Builds each environment's AgentSource (None: the proposals file or the MCP agent configured);
    set before the queue is first used (tests, the demo)."""

    @property
    def improvement_queue(self) -> ImprovementQueue:
        queue: ImprovementQueue | None = self.__dict__.get("_improvement_queue")
        if queue is None:
            from .improvements.service import ImprovementQueue
            from .improvements.sources import open_source

            queue = ImprovementQueue(self, self.improvement_sources or open_source)
            self.__dict__["_improvement_queue"] = queue
        return queue

    def improvements(self, environment: str | None = None) -> list[Improvement]:
        """In the pane's order: status (what needs eyes first), quality descending, id; one query."""
        return self.improvement_queue.items(environment)

    def improvement(self, environment: str, improvement_id: str) -> Improvement:
        return self.improvement_queue.item(environment, improvement_id)

    def improvement_mode(self, environment: str) -> QueueMode:
        return self.improvement_queue.mode(environment)

    def review_problems(self, item: Improvement) -> list[str]:
        return self.improvement_queue.review_problems(item)

    def approve_improvements(
        self, environment: str, ids: Sequence[str], reason: str, override: bool = False
    ) -> list[Improvement]:
        return self.improvement_queue.approve(environment, ids, reason, override)

    def reject_improvements(self, environment: str, ids: Sequence[str], reason: str) -> list[Improvement]:
        return self.improvement_queue.reject(environment, ids, reason)

    def rollback_improvements(self, environment: str, ids: Sequence[str], reason: str) -> list[Improvement]:
        return self.improvement_queue.rollback(environment, ids, reason)

    def rollback_recent(self, environment: str, hours: float, reason: str) -> list[Improvement]:
        return self.improvement_queue.rollback_recent(environment, hours, reason)

    def sync_improvements(self, environment: str | None = None) -> SyncResult:
        return self.improvement_queue.sync(environment)

    async def sync_improvements_async(self, environment: str | None = None) -> SyncResult:
        """sync_improvements for code already in an event loop (each source opened and closed here)."""
        from .improvements.state import SyncResult

        queue = self.improvement_queue
        self.authz.require(self.actor, "improvement.sync")
        total = SyncResult()
        for name in [environment] if environment is not None else list(self.config.improvements):
            source = queue.open_source(queue.settings(name), self.environ)
            try:
                total = total + await queue.sync_environment(name, source, self.actor)
            finally:
                await source.close()
        return total

    def resume_autonomous(self, environment: str, reason: str) -> None:
        self.improvement_queue.resume_autonomous(environment, reason)

    def improvement_stats(
        self, environment: str | None = None, tenant: str | None = None
    ) -> ImprovementStats:
        return self.improvement_queue.stats(environment, tenant)

    # ------------------------------------------------------------------------------------ internals

    def _require_reason(self, environment: str, defn: FlagDef, reason: str, what: str) -> None:
        """High-risk flags and production environments take no change without a reason."""
        if reason.strip():
            return
        if defn.risk == "high":
            raise Rejected(f"{what} {defn.name} needs a reason: it is a high-risk flag")
        if self.config.environments[environment].production:
            raise Rejected(f"{what} {defn.name} needs a reason: {environment} is production")

    def _rollout_driving(self, tx: Any, environment: str, name: str) -> str | None:
        """The active rollout whose current or later phases set `name` in `environment`, if any."""
        for r in tx.list_rollouts(active_only=True):
            plan = self.config.plans.get(r.plan)
            if plan is None:
                continue
            for phase in plan.phases[r.phase_index :]:
                canary = phase.strategy.flag if phase.strategy is not None else None
                if phase.environment == environment and (name in phase.flags or canary == name):
                    return str(r.id)
        return None

    def _apply_schedule(self, schedule_id: int, now: float, touched: set[str]) -> FlagSchedule | None:
        """One schedule's due step in one transaction: the same history row and audit event as
        set_flag, naming the schedule and its creator. Re-read under the write lock, so two engines
        (the runner and a console) never apply a step twice."""
        with self.store.transaction() as tx:
            s = tx.get_schedule(schedule_id)
            index = None if s is None else schedule_logic.due_index(s, now)
            if s is None or index is None:
                return None  # applied, canceled or stopped meanwhile
            target = f"flag:{s.environment}/{s.flag}"
            kill = killswitch.state_from(tx.get_kv(killswitch.KV_KEY), killswitch.pending(self, tx))
            problem, value = self._schedule_problem(s, index, kill)
            if problem is not None or value is None:
                tx.end_schedule(s.id, ScheduleState.STOPPED, problem or "nothing to apply", now)
                tx.append_audit(
                    now, ENGINE_ACTOR, "flag.schedule.stop", target, {"schedule": s.id, "reason": problem}
                )
                return tx.get_schedule(s.id)
            actor = Actor(s.created_by, f"schedule #{s.id}")
            step = f"step {index + 1}/{len(s.steps)}"
            why = f"schedule #{s.id} {step} by {s.created_by}: {s.reason}"
            old = tx.set_flag(s.environment, s.flag, value, actor, why, now)
            if old != value:
                tx.append_audit(
                    now,
                    actor,
                    "flag.set",
                    target,
                    {
                        "old": old,
                        "new": value,
                        "reason": why,
                        "schedule": s.id,
                        "scheduled_by": s.created_by,
                        "step": index + 1,
                        "steps": len(s.steps),
                        "skipped": index - s.next_index,
                    },
                )
            touched.add(s.environment)
            return tx.advance_schedule(s.id, index + 1, now)

    def _schedule_problem(
        self, s: FlagSchedule, index: int, kill: killswitch.KillState
    ) -> tuple[str | None, FlagValue | None]:
        """(why the step cannot apply, None) or (None, the value to set)."""
        if kill.engaged:
            return f"kill switch engaged by {kill.by}", None
        try:
            defn = self._flag_def(s.environment, s.flag)
            return None, flag_logic.validate_value(defn, s.steps[index].value)
        except (NotFound, ValueError) as exc:
            return f"cannot apply {s.flag} any more: {exc}", None

    def _act(self, rollout_id: str, make_event: Any) -> Rollout:
        """Read, decide and write in one write transaction: a command checks the state it changes
        while holding the store's write lock (SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory lock),
        so twenty people approving at once are applied one after the other, each seeing the last,
        and none fails on a version conflict. Outside effects follow the commit."""
        with self.store.transaction() as tx:
            before = tx.get_rollout(rollout_id)
            if before is None:
                raise NotFound(f"no rollout {rollout_id!r}")
            plan = self.plan(before.plan)
            now = self.clock()
            d = decide(plan, before, make_event(before), now)
            r, touched, sent = self._write_decision(tx, plan, before, d, now)
        return self._after_commit(plan, before, r, touched, sent)

    def commit(self, plan: Plan, before: Rollout, d: Decision, now: float) -> Rollout:
        """Write a decision atomically, then apply its outside effects (flag files, notifications).
        A rollback's flag changes are written in the same commit; the rollback completes once the
        flag files are exported. Conflict when the rollout is no longer at `before`'s version."""
        with self.store.transaction() as tx:
            r, touched, sent = self._write_decision(tx, plan, before, d, now)
        return self._after_commit(plan, before, r, touched, sent)

    def _write_decision(
        self, tx: Any, plan: Plan, before: Rollout, d: Decision, now: float
    ) -> tuple[Rollout, set[str], list[int]]:
        touched: set[str] = set()
        if d.rollout.state not in _SAFE_STATES:
            kill = killswitch.state_from(tx.get_kv(killswitch.KV_KEY), killswitch.pending(self, tx))
            if kill.engaged:
                # A decision taken before the switch was pulled must not land after it.
                raise Rejected(f"the kill switch is engaged (by {kill.by}); nothing moves forward")
        r = self.apply_flag_actions(tx, d, now, touched)
        if not tx.update_rollout(r, before.version):
            raise Conflict(f"rollout {before.id} changed concurrently")
        self._write_records(tx, d, now)
        changed = _changed_verdicts(before, r)
        if changed:
            phase = plan.phases[min(r.phase_index, len(plan.phases) - 1)]
            tx.add_verdicts(r.id, phase.name, changed, now)
        sent = [
            i
            for action in d.actions
            if not isinstance(action, SetFlags)
            for i in notifier.enqueue(
                tx, self.config.notifications, action.event, action.message, now, rollout=r.id
            )
        ]
        return replace(r, version=before.version + 1), touched, sent

    def _after_commit(
        self, plan: Plan, before: Rollout, r: Rollout, touched: set[str], sent: list[int]
    ) -> Rollout:
        self.export_flags(touched)
        if _canaries_of(plan, before) != _canaries_of(plan, r):
            with contextlib.suppress(StoreError, OSError):
                self.refresh_canary_cache()
        notifier.deliver_soon(self.store, sent)
        self.bus.publish("rollout", rollout=r)
        if r.state is RolloutState.ROLLING_BACK:
            done = decide(plan, r, RollbackDone(), self.clock())
            return self.commit(plan, r, done, self.clock())
        return r

    def apply_flag_actions(self, tx: Any, d: Decision, now: float, touched: set[str]) -> Rollout:
        """Write a decision's flag changes in `tx` (remembering what a rollback restores); adds the
        environments changed to `touched`."""
        return self.apply_flag_actions_many(tx, [d], now, touched)[0]

    def apply_flag_actions_many(
        self, tx: Any, decisions: Sequence[Decision], now: float, touched: set[str]
    ) -> list[Rollout]:
        """apply_flag_actions for many decisions with one set-based write (Tx.set_flags: one read,
        a statement per kind of write), in order; returns each decision's rollout."""
        changes: list[FlagChange] = []
        owners: list[tuple[int, str, str, bool]] = []  # decision index, environment, flag, remember
        for i, d in enumerate(decisions):
            r = d.rollout
            actor = d.records[-1].actor if d.records else ENGINE_ACTOR
            for action in d.actions:
                if not isinstance(action, SetFlags):
                    continue
                for name, value in action.values.items():
                    changes.append(
                        FlagChange(action.environment, name, value, actor, f"rollout {r.id}: {r.reason}")
                    )
                    owners.append((i, action.environment, name, action.remember))
                touched.add(action.environment)
        olds = tx.set_flags(changes, now) if changes else []
        restores = [{env: dict(v) for env, v in d.rollout.flag_restore.items()} for d in decisions]
        for (i, env, name, remember), old in zip(owners, olds, strict=True):
            if remember:
                prior = old if old is not None else self._default(name)
                restores[i].setdefault(env, {}).setdefault(name, prior)
        return [
            replace(d.rollout, flag_restore=restore) if restore != d.rollout.flag_restore else d.rollout
            for d, restore in zip(decisions, restores, strict=True)
        ]

    def _default(self, name: str) -> FlagValue:
        defn = self.config.flags.get(name)
        return defn.default if defn is not None else False

    def _write_records(self, tx: Any, d: Decision, now: float) -> None:
        for rec in d.records:
            tx.append_audit(now, rec.actor, rec.action, f"rollout:{d.rollout.id}", rec.data)

    def export_flags(self, environments: Iterable[str] | None = None) -> list[str]:
        """Render every (or the named) environment's flag files (seed-schema JSON, and flagd and .env where
        configured) from the store; returns the paths written. While the kill switch is engaged, in the
        store or only in its journal, the killed flags and the aborted canaries keep their safe values.
        The process's own environment never reaches the files: overrides are the consumers' business."""
        names = list(self.config.environments) if environments is None else list(environments)
        written = []
        now = self.clock()
        with killswitch.export_lock(self.workspace, wait=2.0):
            # Read under the lock: a kill that wrote its journal line before we got here is seen.
            with self.store.read() as tx:
                seq = tx.last_audit_seq()
                waiting = killswitch.pending(self, tx)
                engaged = killswitch.state_from(tx.get_kv(killswitch.KV_KEY), waiting).engaged
                stored_by_env = {name: {f.name: f.value for f in tx.list_flags(name)} for name in names}
            defs = self.config.flags
            for name in names:
                env = self.config.environments.get(name)
                if env is None or env.flags is None:
                    continue
                kill = None
                if engaged:
                    zero = [flag for e in waiting for flag in e.zero.get(name, [])]
                    kill = killswitch.kill_spec_for(self.config.kill_switch, zero)
                states = flag_logic.resolve(
                    defs, stored_by_env[name], kill=kill, environ={}, environment=name
                )
                target = env.flags
                files = self._exporter.render(
                    name,
                    states,
                    defs,
                    emergency=engaged,
                    at=now,
                    with_flagd=bool(target.flagd),
                    with_dotenv=bool(target.dotenv),
                )
                write_atomic(Path(target.path), files.seed)
                written.append(target.path)
                if target.flagd and files.flagd is not None:
                    write_atomic(Path(target.flagd), files.flagd)
                    written.append(target.flagd)
                if target.dotenv and files.dotenv is not None:
                    write_atomic(Path(target.dotenv), files.dotenv)
                    written.append(target.dotenv)
        if set(names) >= {n for n, e in self.config.environments.items() if e.flags is not None}:
            self.exported_seq = seq
        if written:
            self.bus.publish("flags", environments=names)
        return written

    def flag_files_behind(self) -> bool:
        """Whether something was recorded since the last complete export of this engine (every
        change of a flag comes with an audit event, so the audit head says it)."""
        with self.store.read() as tx:
            return bool(tx.last_audit_seq() != self.exported_seq)

    def refresh_canary_cache(self) -> None:
        """Rewrite the store-free list of active canaries the kill switch zeroes first."""
        with killswitch.export_lock(self.workspace, wait=0.5), self.store.read() as tx:
            active = tx.list_rollouts(active_only=True)
            canaries = killswitch.canary_flags(self.config, active)
            killswitch.write_canary_cache(self.workspace, canaries)

    def replay_kill_journal(self) -> int:
        """Record the kill journal's engagements the store does not have yet; bad lines are set aside
        and their warnings kept in `journal_warnings`. Raises StoreError when the store is busy."""
        count, warnings = killswitch.replay_journal(self)
        self.journal_warnings = warnings
        return count


_SAFE_STATES = frozenset({RolloutState.ABORTED, RolloutState.ROLLING_BACK, RolloutState.ROLLED_BACK})
"""States a decision may still reach while the kill switch is engaged."""


def _canaries_of(plan: Plan, r: Rollout) -> tuple[str, str] | None:
    """The (environment, flag) a rollout's canary drives right now, for the kill switch's cache."""
    if r.state not in ACTIVE_STATES:
        return None
    phase = plan.phases[min(r.phase_index, len(plan.phases) - 1)]
    s = phase.strategy
    return (phase.environment, s.flag) if s is not None and s.kind == "canary" and s.flag else None


def _changed_verdicts(before: Rollout, after: Rollout) -> list[GateVerdict]:
    """Verdicts worth keeping in the history: a new status, a new failure count or a breach."""
    old = {v.gate: v for v in before.verdicts}
    out = []
    for v in after.verdicts:
        prev = old.get(v.gate)
        if (
            prev is None
            or prev.status != v.status
            or prev.failures != v.failures
            or prev.breached != v.breached
        ):
            out.append(v)
    return out
