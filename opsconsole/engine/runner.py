"""The background loop: every tick, observe, evaluate (pure), decide (pure), commit, apply.

One runner per workspace (an exclusive lock file says which process it is). On a PostgreSQL store,
shared by engines on several machines, one runner per database instead: the one holding leadership
(leader.py) ticks; the others wait and try again every second, recording only kill-journal lines
left on their host meanwhile. Ticks run on a fixed
cadence; a tick that overruns skips the missed slots rather than bunching up. Every source call is
bounded, so a tick ends within the slowest gate's timeout. State is reloaded from the store each tick,
so commands from other processes (the CLI, another console) are seen at once, and a runner killed at
any point resumes from exactly what was committed: decisions and their flag changes commit together,
and flag files are re-exported from the store at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import gates as gate_logic
from .aim import Aim, aim_of, aimed, colour_ports, said
from .health import HealthTracker
from .leader import RETRY
from .model import ENGINE_ACTOR, GateMemory, GateSpec, GateVerdict, Phase, Plan, Rollout, RolloutState
from .observe import Observer, due
from .rollout import (
    BackupDone,
    Command,
    Decision,
    Evaluate,
    RollbackDone,
    backup_reason,
    current_phase,
    decide,
)
from .store import StoreError
from .targets import notify as notifier

if TYPE_CHECKING:
    from .backups.before import PhaseBackups
    from .backups.scheduler import BackupScheduler
    from .core import Engine
    from .deploy.phase import PhaseDeploys
    from .improvements.worker import QueueWorker
    from .leader import Leadership
    from .targets.cloudwatch_publish import MetricPublisher


NOTE_EVERY = 5.0
"""Seconds between reads of the outbox's trouble for the header."""


class EngineBusy(Exception):
    """Another runner holds this workspace."""


@dataclass
class TickStats:
    ticks: int = 0
    last_ms: float = 0.0
    commits: int = 0
    evaluations: int = 0
    schedule_changes: int = 0
    schedule_errors: int = 0
    last_schedule_error: str = ""
    export_error: str = ""


class Runner:
    def __init__(self, engine: Engine, interval: float | None = None, keep: float = 0.0) -> None:
        self.engine = engine
        self.interval = interval or engine.config.interval
        self.observer = Observer(engine.config, keep=keep)
        self.stats = TickStats()
        self.health = HealthTracker(engine.workspace, engine.bus, engine.clock)
        self._lock_fd: int | None = None
        self.leadership: Leadership | None = None
        self._fenced = False
        """In run() on PostgreSQL: commits only while leadership is held (a direct tick() is not fenced)."""
        """Set on a PostgreSQL store: the leader lock this runner competes for."""
        from .leader import is_postgres

        if is_postgres(engine.config.store):
            from .leader import Leadership

            self.leadership = Leadership(
                engine.config.store, engine.config.store_password_env, engine.environ
            )
        self._improvements: QueueWorker | None = None
        self._backups: BackupScheduler | None = None
        self._phase_backups: PhaseBackups | None = None
        self._publisher: MetricPublisher | None = None
        self._phase_deploys: PhaseDeploys | None = None
        self._sweeping: bool | None = None
        self.alarm_watch = notifier.AlarmWatch()
        self.notify_note = ""
        """The outbox's trouble ("notify: 1 failed (...)"), read at most every NOTE_EVERY seconds."""
        self._notify_read = 0.0

    @property
    def improvements(self) -> QueueWorker | None:
        """The improvement queue's worker, when the config has an `improvements:` section. Made when
        first asked for (the first tick): the queue's modules are not on the way to a console's first
        frame with the rollouts, which creates the runner to take its lock."""
        if self._improvements is None and self.engine.config.improvements:
            from .improvements.worker import QueueWorker

            self._improvements = QueueWorker(self.engine.improvement_queue, self.observer)
        return self._improvements

    @property
    def backups(self) -> BackupScheduler | None:
        """Takes scheduled backups, when a backup target has a schedule; made on first use too."""
        if self._backups is None and any(t.schedule is not None for t in self.engine.config.backups.values()):
            from .backups.scheduler import BackupScheduler

            self._backups = BackupScheduler(self.engine.backup_service)
        return self._backups

    @property
    def phase_backups(self) -> PhaseBackups:
        """Takes the backups phases with `backup_before` wait for; made on first use."""
        if self._phase_backups is None:
            from .backups.before import PhaseBackups

            self._phase_backups = PhaseBackups(self.engine.backup_service)
        return self._phase_backups

    @property
    def publisher(self) -> MetricPublisher | None:
        """Sends the console's own figures to CloudWatch, when the config has `publish:`."""
        if self._publisher is None and self.engine.config.publish is not None:
            from .targets.cloudwatch_publish import MetricPublisher

            self._publisher = MetricPublisher(self.engine, self.engine.config.publish)
        return self._publisher

    @property
    def _sweeps(self) -> bool:
        """Whether a service has colours (a canary may be left running) or a plan's phase deploys one
        a rollback reverts (deploy/revert.py): the runner then sweeps for them."""
        if self._sweeping is None:
            from .deploy.revert import reverted_services

            config = self.engine.config
            self._sweeping = any(s.blue_green is not None for s in config.services.values()) or bool(
                reverted_services(config)
            )
        return self._sweeping

    @property
    def phase_deploys(self) -> PhaseDeploys:
        """Deploys the Docker services of recreate, rolling, blue_green and canary phases, and settles
        canaries; made on first use (the docker SDK too)."""
        if self._phase_deploys is None:
            from .deploy.phase import PhaseDeploys

            self._phase_deploys = PhaseDeploys(self.engine)
        return self._phase_deploys

    # ------------------------------------------------------------------------------------ lifecycle

    def acquire(self) -> None:
        """Take the workspace's lock file (SQLite). On PostgreSQL leadership is the database's
        advisory lock, taken in run(), so several engines may share a workspace and a database."""
        if self.leadership is not None:
            return
        path = self.engine.workspace / "engine.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise EngineBusy(f"another engine (pid {holder}) is running on {self.engine.workspace}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    @property
    def leading(self) -> bool:
        """This runner evaluates gates and applies actions (always so on SQLite once running)."""
        return self.leadership.held if self.leadership is not None else self._lock_fd is not None

    def release(self) -> None:
        if self.leadership is not None:
            self.leadership.release()
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    @staticmethod
    def holder(workspace: Path) -> int | None:
        """The pid of the runner holding the workspace, or None when nobody does. A runner writes its
        pid just after taking the lock; caught in between (or with the file emptied), the answer is
        -1, "held, pid not known": never a pid to signal (os.kill(-1) reaches every process)."""
        path = workspace / "engine.lock"
        if not path.exists():
            return None
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        except BlockingIOError:
            for _ in range(20):  # the holder writes its pid right after flock: wait up to ~0.1 s for it
                text = os.pread(fd, 64, 0).decode(errors="replace").strip()
                if text.isdigit() and int(text) > 0:
                    return int(text)
                time.sleep(0.005)
            return -1
        finally:
            os.close(fd)

    async def run(self, stop: asyncio.Event | None = None, until: Callable[[], bool] | None = None) -> None:
        """Tick until `stop` is set or `until()` is true. Holds the workspace lock meanwhile (taking it
        here unless the caller already did)."""
        if self._lock_fd is None:
            self.acquire()
        self._fenced = self.leadership is not None
        try:
            self.health.start()
            loop = asyncio.get_running_loop()
            start = loop.time()
            slot = 0
            while not (stop is not None and stop.is_set()) and not (until is not None and until()):
                if self.leadership is not None and not await self._lead():
                    # A follower: nothing evaluated, nothing applied; try again in a second.
                    start, slot = loop.time(), 0
                    await _pause(stop, RETRY)
                    continue
                # A store that is locked or failing is a state to report and wait out, never a reason
                # to stop: what failed was not committed, and the next tick decides again from the store.
                backoff = 0.0
                try:
                    # Each tick first brings the flag files up to the store (_load), so a commit
                    # that landed before its files after a store error is written then.
                    await self.tick()
                except StoreError as exc:
                    backoff = self.health.failed(exc, self.interval)
                else:
                    self.health.ok()
                slot = max(slot + 1, int((loop.time() - start) / self.interval) + 1)
                delay = max(start + slot * self.interval - loop.time(), backoff)
                if stop is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), max(0.0, delay))
                else:
                    await asyncio.sleep(max(0.0, delay))
        finally:
            if self._improvements is not None:
                await self._improvements.close()
            if self._backups is not None:
                await self._backups.close()
            if self._phase_backups is not None:
                await self._phase_backups.close()
            if self._publisher is not None:
                await self._publisher.close()
            if self._phase_deploys is not None:
                await self._phase_deploys.close()
            await self.observer.close()
            self.health.stop()
            await asyncio.to_thread(self.release)

    async def _lead(self) -> bool:
        """True when this runner leads now (taking the lock when it is free). A change is published
        as a `leader` event; a follower still records its host's kill-journal lines."""
        assert self.leadership is not None
        was = self.leadership.held
        try:
            now_leading = await asyncio.to_thread(self.leadership.try_acquire)
        except StoreError as exc:
            self.health.failed(exc, self.interval)
            now_leading = False
        else:
            if not now_leading:
                self.health.ok()  # the store answers: a follower's "store down" is over
        if now_leading != was:
            self.engine.bus.publish("leader", leading=now_leading, me=self.leadership.me)
        if not now_leading:
            await asyncio.to_thread(self._replay_kill_journal)
        return now_leading

    # ------------------------------------------------------------------------------------ one tick

    async def tick(self) -> None:
        t0 = time.perf_counter()
        engine = self.engine
        now = engine.clock()
        kill, rollouts = await asyncio.to_thread(self._load, now)
        work: list[tuple[Plan, Rollout]] = []
        for r in rollouts:
            plan = engine.config.plans.get(r.plan)
            if plan is not None:
                work.append((plan, r))
        phases = [
            current_phase(plan, r)
            for plan, r in work
            if r.state is not RolloutState.PENDING and not r.awaiting_backup
        ]
        await self.observer.refresh(
            self.observer.metric_environments(phases) | self.observer.watch, now, wait_for_alarms=False
        )
        await self.observer.read_improvement_counts(engine, phases)
        await self.observer.read_backup_runs(engine, phases)
        alarms = self.observer.evaluate_alarms(now)
        if alarms:
            engine.bus.publish("alarms", alarms=dict(alarms))
        decisions: list[tuple[Plan, Rollout, Decision]] = []
        evaluated = await asyncio.gather(*(self._decide(plan, r, now, kill) for plan, r in work))
        for (plan, r), d in zip(work, evaluated, strict=True):
            if d is not None:
                decisions.append((plan, r, d))
        if decisions:
            await self.health.watch(asyncio.to_thread(self._commit_all, decisions, now))
        if self.alarm_watch.due(alarms):
            # After the decisions: announcing an alarm must not delay a rollback. A store that
            # refuses leaves the watch as it was, so the next tick records it.
            with contextlib.suppress(StoreError):
                sent = await asyncio.to_thread(self.alarm_watch.record, engine, dict(alarms), now)
                notifier.deliver_soon(engine.store, sent)
        if self.improvements is not None:
            # Its own task, never awaited here: a slow agent must not delay a rollout's gates.
            self.improvements.kick(now)
        if self.backups is not None:
            self.backups.kick(now)  # likewise: a long dump runs beside the gates, not before them
        if self.publisher is not None:
            self.publisher.kick(now)  # after this tick's commits; its own task, never awaited
        if self._phase_backups is not None:
            self._phase_backups.forget((r.id, r.phase_index) for _, r in work if r.awaiting_backup)
        if self._sweeps:
            # Docker canaries whose rollout left their phase while no runner watched (the command
            # line, another runner, the kill switch): the colour not needed goes; Docker phases whose
            # rollout was rolled back or aborted: the previous version comes back. In threads.
            self.phase_deploys.sweep()
        self.stats.ticks += 1
        self.stats.last_ms = (time.perf_counter() - t0) * 1000

    def _load(self, now: float) -> tuple[bool, list[Rollout]]:
        # First of all, a kill pulled elsewhere while the store was busy: recorded (every rollout
        # aborted) before anything is evaluated; while it cannot be, kill_state() still says engaged.
        self._replay_kill_journal()
        # Notifications a CLI process could not send before it exited, or a receiver refused.
        notifier.drain_soon(self.engine.store, self.engine.clock)
        self._read_notify_note(now)
        self._apply_schedules(now)  # a step applied now is in the state this tick decides on
        self._reconcile_flag_files()
        return self.engine.kill_state().engaged, self.engine.rollouts(active_only=True)

    def _read_notify_note(self, now: float) -> None:
        """Keep `notify_note` (what the header says about notifications) fresh; a change is published
        as an `engine` event so a console shows it at once."""
        if now - self._notify_read < NOTE_EVERY and self._notify_read:
            return
        self._notify_read = now
        with contextlib.suppress(StoreError):
            note = notifier.summary(self.engine.store, now).note()
            if note != self.notify_note:
                self.notify_note = note
                h = self.health.current
                self.engine.bus.publish("engine", state=h.state, since=h.since, error=h.error, notify=note)

    def _replay_kill_journal(self) -> None:
        from .store import StoreError

        with contextlib.suppress(StoreError):
            self.engine.replay_kill_journal()
        for warning in self.engine.journal_warnings:
            self.engine.bus.publish("warning", message=warning)

    def _reconcile_flag_files(self) -> None:
        """Flag files catch up with the store: a change another process stored but could not write
        (a full disk) is written here, with a warning every tick until it is."""
        try:
            if self.engine.flag_files_behind():
                self.engine.export_flags()
        except OSError as exc:
            message = f"flag files could not be written, consumers see old values: {exc}"
            if message != self.stats.export_error:
                self.engine.bus.publish("warning", message=message)
            self.stats.export_error = message
        else:
            if self.stats.export_error:
                self.engine.bus.publish("warning", message="flag files written again: they match the store")
            self.stats.export_error = ""

    def _apply_schedules(self, now: float) -> None:
        # A schedule that fails must not stop the loop that rolls back bad canaries: count it, and
        # the next tick tries again.
        try:
            self.stats.schedule_changes += len(self.engine.apply_due_schedules(now))
        except Exception as exc:
            self.stats.schedule_errors += 1
            self.stats.last_schedule_error = str(exc)

    async def _decide(self, plan: Plan, r: Rollout, now: float, kill_engaged: bool) -> Decision | None:
        """The decision for one rollout this tick, or None when nothing worth writing changed."""
        if r.state is RolloutState.ROLLING_BACK:
            # A runner that died mid-rollback: the flag changes were committed and files re-exported
            # at start, so the rollback is applied; record that.
            return decide(plan, r, RollbackDone(), now)
        if kill_engaged:
            return None  # nothing moves while the kill switch is engaged
        if r.state is RolloutState.PENDING:
            return decide(plan, r, Evaluate(), now)
        phase = current_phase(plan, r)
        if r.awaiting_backup:
            return self._backup_before(plan, phase, r, now)
        strategy = phase.strategy
        if (
            strategy is not None
            and strategy.service
            and strategy.image
            and r.state is RolloutState.PROGRESSING
        ):
            # The phase's Docker deploy, in a thread of its own; its gates are checked once it is done.
            deployed = self.phase_deploys.poll(
                (r.id, r.phase_index), strategy.service, strategy.image, strategy.kind
            )
            if deployed is None:
                return None
            if not deployed.ok:
                return decide(plan, r, Command("rollback", ENGINE_ACTOR, deployed.reason), now)
        memory, gate_v, guard_v = await self._evaluate_phase(phase, r, now, self._aim(phase, r))
        candidate = replace(r, memory=memory)
        d = decide(plan, candidate, Evaluate(tuple(gate_v), tuple(guard_v)), now)
        if d.records or d.actions or _signature(r, phase) != _signature(d.rollout, phase):
            return d  # shown once committed (Engine.commit publishes it): never a step the store lacks
        self.engine.bus.publish("verdicts", rollout=d.rollout)  # the stored state, with fresh readings
        return None

    def _aim(self, phase: Phase, r: Rollout) -> Aim | None:
        """A blue_green phase's live colour, which its checks aimed at a colour measure: the one its
        deploy left taking traffic, in whatever state the rollout is once that deploy is done
        (awaiting approval, paused); None for any other phase, or before."""
        strategy = phase.strategy
        if (
            strategy is None
            or strategy.kind != "blue_green"
            or not strategy.service
            or not colour_ports(self.engine.config, phase)
        ):
            return None
        colour = self.phase_deploys.colour((r.id, r.phase_index), strategy.service)
        return aim_of(self.engine.config, phase, colour)

    def _backup_before(self, plan: Plan, phase: Phase, r: Rollout, now: float) -> Decision | None:
        """A phase that has not started: its backup is taken in a thread (started on the first
        tick that sees it); the tick that finds it done decides. Held (paused) rollouts wait for a
        person: resume retries, abort ends."""
        if r.state is not RolloutState.PROGRESSING or not phase.backup_before:
            return None
        outcome = self.phase_backups.poll(
            (r.id, r.phase_index), phase.backup_before, backup_reason(r, phase), r.updated_at
        )
        if outcome is None:
            return None
        return decide(plan, r, BackupDone(outcome.run, outcome.ok, outcome.reason), now)

    async def _evaluate_phase(
        self, phase: Phase, r: Rollout, now: float, aim: Aim | None = None
    ) -> tuple[dict[str, GateMemory], list[GateVerdict], list[GateVerdict]]:
        """The phase's verdicts this tick. With `aim` (a blue_green phase's live colour), metric
        queries saying `{colour}` / `{port}` are asked for that colour and smoke commands are told it."""
        previous = {v.gate: v for v in r.verdicts}
        specs: list[tuple[str, GateSpec]] = [("gate", aimed(s, aim)) for s in phase.gates] + [
            ("guard", aimed(s, aim)) for s in phase.guards
        ]
        written = {f"gate:{s.name}": s for s in phase.gates} | {f"guard:{s.name}": s for s in phase.guards}
        smoke_env = aim.env() if aim is not None else None
        todo = [
            (key, spec)
            for key, spec in ((f"{role}:{s.name}", s) for role, s in specs)
            if due(spec, r.memory.get(key, GateMemory()).last_checked, now, self.interval)
            or spec.name not in previous
        ]
        observations = await asyncio.gather(
            *(
                self.observer.observe(spec, r, phase, now, smoke_env if spec.kind == "smoke" else None)
                for _, spec in todo
            )
        )
        fresh = dict(zip((k for k, _ in todo), observations, strict=True))
        memory = dict(r.memory)
        out: dict[str, list[GateVerdict]] = {"gate": [], "guard": []}
        for role, spec in specs:
            key = f"{role}:{spec.name}"
            if key in fresh:
                v, m = gate_logic.evaluate(spec, fresh[key], memory.get(key, GateMemory()), now)
                v = said(v, written[key], aim)
                memory[key] = replace(m, last_checked=now)
                self.stats.evaluations += 1
            else:
                v = previous[spec.name]
            out[role].append(v)
        return memory, out["gate"], out["guard"]

    def _commit_all(self, decisions: list[tuple[Plan, Rollout, Decision]], now: float) -> None:
        from .core import Conflict
        from .rollout import Rejected

        if self._fenced and self.leadership is not None and not self.leadership.check():
            return  # leadership lost during this tick: the new leader decides from the store
        for plan, before, d in decisions:
            try:
                self.engine.commit(plan, before, d, now)
                self.stats.commits += 1
            except (Conflict, Rejected):
                # A command (or the kill switch) changed it meanwhile; next tick decides on the new state.
                continue


async def _pause(stop: asyncio.Event | None, seconds: float) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _signature(r: Rollout, phase: Phase) -> Any:
    """What must be persisted when it changes: state, verdict outcomes and the gates' memory (not
    the reason text or check times, which change every tick)."""
    slow = {f"gate:{s.name}" for s in phase.gates if s.kind == "smoke" or s.interval}
    slow |= {f"guard:{s.name}" for s in phase.guards if s.kind == "smoke" or s.interval}
    mem = tuple(
        sorted(
            (
                k,
                m.failures,
                m.unknowns,
                m.baseline,
                m.unknown_since is not None,
                m.last_checked if k in slow else None,
            )
            for k, m in r.memory.items()
        )
    )
    verdicts = tuple((v.gate, v.status, v.failures, v.breached, v.inconclusive) for v in r.verdicts)
    return (r.state, r.phase_index, r.step_index, mem, verdicts)
