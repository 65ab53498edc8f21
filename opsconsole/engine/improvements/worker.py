"""The runner's side of the queue: sync on the cycle interval, deploy what may deploy, watch what
is deployed, keep it or roll it back.

The runner starts one `step` at a time as a task of its own and never awaits it in its tick, so a
slow or dead agent never delays a rollout's gates; every agent call is bounded by the source's
timeout. Each step re-reads the store, so decisions taken meanwhile by the CLI or a console (an
approval, the kill switch) are seen at the next step; the pause is checked again right before any
deploy reaches the agent.

While the queue is paused nothing syncs or deploys, but monitoring and automatic rollback go on:
rolling a harmful change back is the safe direction.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING

from ..model import ENGINE_ACTOR
from ..rollout import Rejected
from ..store import StoreError
from ..targets import notify as notifier
from . import decide
from .model import LIVE, ROLLBACKABLE, Improvement, ImprovementSettings, ImprovementStatus, Sample
from .protocol import ActionResult
from .service import ImprovementQueue, call, checked, short_error
from .source import AgentError, AgentSource
from .state import SourceState, backoff, paused, sync_key

if TYPE_CHECKING:
    from ..core import Engine
    from ..observe import Observer

S = ImprovementStatus
MAX_SAMPLES = 300
"""Values kept per item for the chart (the oldest are dropped)."""
MAX_DEPLOY_ATTEMPTS = 5
"""Deploy calls that failed in a way worth retrying, before the item is marked failed."""


class QueueWorker:
    def __init__(self, queue: ImprovementQueue, observer: Observer) -> None:
        self.queue = queue
        self.observer = observer
        self.sources: dict[str, AgentSource] = {}
        self._task: asyncio.Task[None] | None = None
        self.last_error = ""
        """The last unexpected failure of a step (the next step tries again)."""

    @property
    def engine(self) -> Engine:
        return self.queue.engine

    def kick(self, now: float) -> bool:
        """Start a step unless the previous one is still running; returns whether one started."""
        if self._task is not None and not self._task.done():
            return False
        self._task = asyncio.get_running_loop().create_task(self.step(now))
        return True

    async def wait(self) -> None:
        """Until the running step (if any) has finished (tests, and a clean stop)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        for source in self.sources.values():
            with contextlib.suppress(Exception):
                await source.close()
        self.sources.clear()

    def source(self, environment: str) -> AgentSource:
        src = self.sources.get(environment)
        if src is None:
            src = self.queue.open_source(self.queue.settings(environment), self.engine.environ)
            self.sources[environment] = src
        return src

    # ------------------------------------------------------------------------------------ a step

    async def step(self, now: float) -> None:
        for environment in list(self.queue.config):
            try:
                await self.environment(environment, now)
            except (StoreError, Rejected) as exc:
                self._note(f"{environment}: {exc}")
            except Exception as exc:  # a bug here must not stop the loop that rolls changes back
                self._note(f"{environment}: {type(exc).__name__}: {short_error(exc)}")

    def _note(self, message: str) -> None:
        if message != self.last_error:
            self.engine.bus.publish("warning", message=f"improvement queue: {message}")
        self.last_error = message

    async def environment(self, environment: str, now: float) -> None:
        settings = self.queue.settings(environment)
        gov = await asyncio.to_thread(self.queue.governance, environment)
        source = self.source(environment)
        if gov.self_building and not gov.paused and await asyncio.to_thread(self._sync_due, environment, now):
            await self.queue.sync_environment(environment, source, ENGINE_ACTOR)
        items = await asyncio.to_thread(self._working, environment, settings, gov)
        deployable = decide.to_deploy(items, settings, gov, now)
        monitoring = [i for i in items if i.status is S.MONITORING and not i.rollback_pending]
        if monitoring or deployable:
            await self._refresh(environment, now)
        for item in monitoring:
            await self.monitor(item, settings, gov, source)
        for item in items:
            if not _due(item, now):
                continue
            if item.rollback_pending and item.status in ROLLBACKABLE:
                await self.roll_back(item, settings, source, item.rollback_pending, item.evidence)
            elif item.status is S.DEPLOYING and not gov.paused and gov.self_building:
                await self.deploy_call(item, settings, source)
        for item in deployable:
            await self.start_deploy(item, settings, gov, source)

    def _sync_due(self, environment: str, now: float) -> bool:
        with self.engine.store.read() as tx:
            state = SourceState.load(tx.get_kv(sync_key(environment)))
        return state.next_sync_at is None or now >= state.next_sync_at

    def _working(
        self, environment: str, settings: ImprovementSettings, gov: decide.Governance
    ) -> list[Improvement]:
        """The items a step may act on: proposed ones only when autonomous mode has a free slot."""
        with self.engine.store.read() as tx:
            items = tx.list_improvements(environment, [S.APPROVED, S.DEPLOYING, S.MONITORING, S.FAILED])
            live = sum(1 for i in items if i.status in LIVE)
            if gov.autonomous and live < settings.max_concurrent:
                items += tx.list_improvements(environment, [S.PROPOSED])
        return items

    async def _refresh(self, environment: str, now: float) -> None:
        src = self.observer.source(environment)
        if src is not None and src.last_refresh != now:
            await self.observer.refresh([environment], now)

    def _value(self, environment: str, metric: str) -> tuple[float | None, str]:
        if not metric:
            return None, "no metric to judge it on (set the environment's improvements metric)"
        obs = self.observer.metric(environment, metric, self.engine.clock())
        if obs.error is not None or obs.value is None:
            return None, obs.error or "no value"
        return obs.value, ""

    # ------------------------------------------------------------------------------------ deploy

    async def start_deploy(
        self, item: Improvement, settings: ImprovementSettings, gov: decide.Governance, source: AgentSource
    ) -> None:
        if not getattr(source, "can_deploy", True):
            await asyncio.to_thread(
                self._hold, item, "unsupported: this source cannot deploy (set deploy_command)", settings
            )
            return
        baseline, problem = self._value(item.environment, item.metric)
        if baseline is None:
            # Never deploy blind: without a value from before, nothing could tell it did harm.
            await asyncio.to_thread(self._hold, item, f"no baseline yet: {problem}", settings)
            return
        started = await asyncio.to_thread(self._mark_deploying, item, baseline, gov)
        if started is not None:
            await self.deploy_call(started, settings, source)

    def _hold(self, item: Improvement, error: str, settings: ImprovementSettings) -> None:
        """Not a transition: the item waits, with why, and is tried again after a backoff."""
        now = self.engine.clock()
        with self.engine.store.transaction() as tx:
            current = tx.get_improvement(item.environment, item.id)
            if current is None or current.version != item.version:
                return
            attempts = current.attempts + 1
            tx.update_improvement(
                replace(
                    current, error=error[:500], attempts=attempts, next_attempt_at=now + backoff(attempts)
                ),
                current.version,
            )
        self.engine.bus.publish("improvements", environment=item.environment)

    def _mark_deploying(
        self, item: Improvement, baseline: float, gov: decide.Governance
    ) -> Improvement | None:
        now = self.engine.clock()
        with self.engine.store.transaction() as tx:
            current = tx.get_improvement(item.environment, item.id)
            if current is None or current.version != item.version:
                return None  # decided meanwhile (rejected, approved by someone else): next step sees it
            if paused(tx).paused:
                return None
            autonomous = current.status is S.PROPOSED
            after = replace(
                current,
                status=S.DEPLOYING,
                baseline=baseline,
                observed=None,
                samples=(),
                error="",
                attempts=0,
                next_attempt_at=None,
            )
            if autonomous:
                after = replace(
                    after,
                    reviewer="autonomous",
                    reason="autonomous mode: within the quality threshold and risk tolerance",
                    decided_at=now,
                )
            written = self.queue.write(
                tx,
                current,
                after,
                "deploy",
                ENGINE_ACTOR,
                now,
                after.reason,
                baseline=baseline,
                metric=after.metric,
            )
        self.engine.bus.publish("improvements", environment=item.environment, items=[written])
        return written

    async def deploy_call(
        self, item: Improvement, settings: ImprovementSettings, source: AgentSource
    ) -> None:
        if await asyncio.to_thread(self._paused):
            return  # the kill switch came between the decision and the call
        try:
            result = checked(await call(settings, source.deploy(item.id)))
        except AgentError as exc:
            await asyncio.to_thread(self._deploy_failed, item, exc)
            return
        await asyncio.to_thread(self._deployed, item, settings, result.message)

    def _paused(self) -> bool:
        with self.engine.store.read() as tx:
            return paused(tx).paused

    def _deployed(self, item: Improvement, settings: ImprovementSettings, message: str) -> None:
        now = self.engine.clock()
        with self.engine.store.transaction() as tx:
            current = tx.get_improvement(item.environment, item.id)
            if current is None or current.status is not S.DEPLOYING:
                return
            after = replace(
                current,
                status=S.MONITORING,
                deployed_at=now,
                monitor_until=now + settings.monitoring,
                error="",
                attempts=0,
                next_attempt_at=None,
            )
            written = self.queue.write(tx, current, after, "deployed", ENGINE_ACTOR, now, agent=message[:500])
        self.engine.bus.publish("improvements", environment=item.environment, items=[written])

    def _deploy_failed(self, item: Improvement, exc: AgentError) -> None:
        now = self.engine.clock()
        error = f"{exc.kind}: {short_error(exc)}"
        sent: list[int] = []
        with self.engine.store.transaction() as tx:
            current = tx.get_improvement(item.environment, item.id)
            if current is None or current.status is not S.DEPLOYING:
                return
            attempts = current.attempts + 1
            if (exc.retryable or exc.kind == "auth") and attempts < MAX_DEPLOY_ATTEMPTS:
                tx.update_improvement(
                    replace(current, error=error, attempts=attempts, next_attempt_at=now + backoff(attempts)),
                    current.version,
                )
            else:
                maybe = (
                    " (it may have reached the system: check, and roll it back if so)"
                    if exc.retryable
                    else ""
                )
                after = replace(
                    current,
                    status=S.FAILED,
                    error=error,
                    evidence=f"deploy failed after {attempts} attempt(s): {error}{maybe}",
                    attempts=attempts,
                    finished_at=now,
                    next_attempt_at=None,
                )
                self.queue.write(tx, current, after, "deploy_failed", ENGINE_ACTOR, now)
                sent = notifier.enqueue(
                    tx,
                    self.engine.config.notifications,
                    "improvement_failed",
                    f"improvement {item.environment}/{item.id}: {after.evidence}",
                    now,
                    environment=item.environment,
                    improvement=item.id,
                )
        notifier.deliver_soon(self.engine.store, sent)
        self.engine.bus.publish("improvements", environment=item.environment)

    # ------------------------------------------------------------------------------------ monitor

    async def monitor(
        self, item: Improvement, settings: ImprovementSettings, gov: decide.Governance, source: AgentSource
    ) -> None:
        value, _problem = self._value(item.environment, item.metric)
        now = self.engine.clock()
        verdict = decide.judge(item, value, now, settings, gov.rollback_enabled)
        written = await asyncio.to_thread(self._record_judgement, item, value, now, verdict, settings)
        if written is not None and verdict.outcome == "rollback":
            await self.roll_back(written, settings, source, verdict.evidence, verdict.evidence)

    def _record_judgement(
        self,
        item: Improvement,
        value: float | None,
        now: float,
        verdict: decide.Judgement,
        settings: ImprovementSettings,
    ) -> Improvement | None:
        every = max(self.engine.config.interval, settings.monitoring / MAX_SAMPLES)
        last = item.samples[-1].at if item.samples else None
        if verdict.outcome == "hold" and last is not None and now - last < every - 1e-9:
            return None  # not a new point for the chart yet
        sent: list[int] = []
        with self.engine.store.transaction() as tx:
            current = tx.get_improvement(item.environment, item.id)
            if current is None or current.status is not S.MONITORING or current.version != item.version:
                return None
            samples = (*current.samples, Sample(now, value))[-MAX_SAMPLES:]
            after = replace(
                current, samples=samples, observed=value if value is not None else current.observed
            )
            if verdict.outcome == "hold":
                after = replace(after, evidence=verdict.evidence or after.evidence, updated_at=now)
                tx.update_improvement(after, current.version)
                written = replace(after, version=current.version + 1)
            elif verdict.outcome == "keep":
                after = replace(after, status=S.KEPT, evidence=verdict.evidence, finished_at=now)
                written = self.queue.write(
                    tx, current, after, "keep", ENGINE_ACTOR, now, degradation=verdict.degradation
                )
            elif verdict.outcome == "rollback":
                # Written first, so an engine that dies before the agent answers tries again.
                after = replace(after, evidence=verdict.evidence, rollback_pending=verdict.evidence)
                written = self.queue.write(
                    tx,
                    current,
                    after,
                    "rollback_requested",
                    ENGINE_ACTOR,
                    now,
                    verdict.evidence,
                    degradation=verdict.degradation,
                )
            else:
                evidence = verdict.evidence
                if verdict.outcome == "degraded":
                    evidence += (
                        "; automatic rollback is off (enable_improvement_rollback): roll it back by hand"
                    )
                after = replace(after, status=S.FAILED, evidence=evidence, finished_at=now)
                written = self.queue.write(
                    tx, current, after, verdict.outcome, ENGINE_ACTOR, now, degradation=verdict.degradation
                )
                sent = notifier.enqueue(
                    tx,
                    self.engine.config.notifications,
                    "improvement_failed",
                    f"improvement {item.environment}/{item.id}: {evidence}",
                    now,
                    environment=item.environment,
                    improvement=item.id,
                )
        notifier.deliver_soon(self.engine.store, sent)
        self.engine.bus.publish("improvements", environment=item.environment, items=[written])
        return written

    async def roll_back(
        self,
        item: Improvement,
        settings: ImprovementSettings,
        source: AgentSource,
        reason: str,
        evidence: str,
    ) -> None:
        outcome: ActionResult | AgentError
        try:
            outcome = checked(await call(settings, source.rollback(item.id, reason)))
        except AgentError as exc:
            outcome = exc
        await asyncio.to_thread(
            self.queue.finish_rollback, item, outcome, ENGINE_ACTOR, reason, True, evidence
        )


def _due(item: Improvement, now: float) -> bool:
    return item.next_attempt_at is None or item.next_attempt_at <= now
