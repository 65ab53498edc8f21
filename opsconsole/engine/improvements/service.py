"""The improvement queue's commands: review, reject, roll back, sync, and what the console reads.

Every change is a store transaction that re-reads the items under the write lock, checks the rules
(decide.py), writes with compare-and-set and appends one audit event per transition (target
`improvement:<env>/<id>`, with actor, reason and evidence), then publishes `improvements` on the
engine's bus. Calls to the source (agent or file) are never made inside a transaction: a slow agent
must not hold the store's lock. The runner's side (deploy, monitor, automatic rollback) is in
worker.py and uses the same writes.

Agent text is stored raw (capped by the protocol's parsing): escaping belongs to whoever shows it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from ..model import Actor
from ..redact import redact_text
from ..rollout import Rejected
from ..targets import notify as notifier
from . import decide
from .model import ROLLBACKABLE, Improvement, ImprovementSettings, ImprovementStatus, can_move
from .protocol import ActionResult, Proposal
from .source import AgentError, AgentSource
from .sources import SourceFactory, open_source
from .state import (
    QueueMode,
    SourceState,
    SyncResult,
    backoff,
    paused,
    resumed_key,
    suspension,
    sync_key,
)

if TYPE_CHECKING:
    from ..core import Engine

S = ImprovementStatus
T = TypeVar("T")

MAX_ERROR = 500
"""Errors kept on an item or a source are capped: an agent's error text is untrusted and unbounded."""
MAX_SYNC_IDS = 50
"""New ids named in one sync's audit event (the count is always exact)."""


class PartlyRefused(Rejected):
    """Some of the items asked for were changed, the others refused by the rules: `updated` holds
    the changed ones, the message says why each refused one was."""

    def __init__(self, message: str, updated: list[Improvement]) -> None:
        super().__init__(message)
        self.updated = updated


def target(item: Improvement) -> str:
    return f"improvement:{item.environment}/{item.id}"


def short_error(exc: BaseException) -> str:
    text = redact_text(str(exc)) or type(exc).__name__
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


async def call(settings: ImprovementSettings, work: Awaitable[T]) -> T:
    """One source call bounded in time: whatever the source does, it fails as AgentError."""
    limit = settings.agent.timeout if settings.agent is not None else settings.command_timeout + 5.0
    try:
        return await asyncio.wait_for(work, limit)
    except AgentError:
        raise
    except TimeoutError:
        raise AgentError("timeout", f"no answer within {limit:g}s") from None
    except Exception as exc:  # a source's own bug or a transport error it did not classify
        raise AgentError("protocol", short_error(exc)) from None


def checked(result: ActionResult) -> ActionResult:
    if not result.ok:
        raise AgentError("refused", result.message or "the agent refused without a reason")
    return result


def blocking(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to the end from synchronous code (the CLI, a console worker thread); from a
    thread whose event loop is running, on a helper thread with a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(make))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(_await(make))).result()


async def _await(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


class ImprovementQueue:
    def __init__(self, engine: Engine, sources: SourceFactory = open_source) -> None:
        self.engine = engine
        self.open_source = sources

    # ------------------------------------------------------------------------------------ reading

    @property
    def config(self) -> dict[str, ImprovementSettings]:
        return self.engine.config.improvements

    def settings(self, environment: str) -> ImprovementSettings:
        from ..core import NotFound

        s = self.config.get(environment)
        if s is None:
            known = ", ".join(sorted(self.config)) or "none"
            raise NotFound(f"no improvement queue for environment {environment!r} (configured: {known})")
        rules, where = self.phase_rules(environment)
        return replace(s, **dict(rules), where=where) if rules else s

    def phase_rules(self, environment: str) -> tuple[tuple[tuple[str, Any], ...], str]:
        """The rules the current phase of an active rollout sets for `environment`'s queue (the
        newest rollout's, when several do), and where they come from; ((), settings' own place)
        when none does. Read from the store each time: a phase that ends hands the queue back."""
        plans = self.engine.config.plans
        if not any(
            ph.improvements and ph.environment == environment for p in plans.values() for ph in p.phases
        ):
            return (), self.config[environment].where
        for r in self.engine.rollouts(active_only=True):  # newest first
            plan = plans.get(r.plan)
            if plan is None or r.state == "pending" or r.phase_index >= len(plan.phases):
                continue
            phase = plan.phases[r.phase_index]
            if phase.environment == environment and phase.improvements:
                return phase.improvements, f"phase {phase.name} of rollout {r.id}"
        return (), self.config[environment].where

    def items(self, environment: str | None = None) -> list[Improvement]:
        if environment is not None:
            self.settings(environment)
        with self.engine.store.read() as tx:
            return tx.list_improvements(environment)

    def item(self, environment: str, improvement_id: str) -> Improvement:
        from ..core import NotFound

        self.settings(environment)
        with self.engine.store.read() as tx:
            found = tx.get_improvement(environment, improvement_id)
        if found is None:
            raise NotFound(f"no improvement {improvement_id!r} in {environment}")
        return found

    def governance(self, environment: str) -> decide.Governance:
        settings = self.settings(environment)
        states = self.engine.flag_states(environment)

        def flag(name: str, default: bool) -> bool:
            state = states.get(name)
            return default if state is None else state.enabled

        with self.engine.store.read() as tx:
            pause = paused(tx)
            suspended = suspension(tx, environment).suspended
        self_building = flag("enable_self_building", True)
        return decide.Governance(
            self_building=self_building,
            autonomous=settings.autonomous
            and flag("enable_autonomous_improvements", settings.autonomous)
            and self_building
            and not suspended
            and not pause.paused,
            component_generation=settings.component_generation
            and flag("enable_component_generation", settings.component_generation),
            rollback_enabled=flag("enable_improvement_rollback", True),
            paused=pause.paused,
        )

    def mode(self, environment: str) -> QueueMode:
        settings = self.settings(environment)
        gov = self.governance(environment)
        with self.engine.store.read() as tx:
            pause = paused(tx)
            suspended = suspension(tx, environment)
            state = SourceState.load(tx.get_kv(sync_key(environment)))
            live = len(tx.list_improvements(environment, [S.DEPLOYING, S.MONITORING]))
        return QueueMode(
            environment=environment,
            source=source_name(settings),
            autonomous=gov.autonomous,
            configured_autonomous=settings.autonomous,
            autonomous_suspended=suspended.suspended,
            paused=pause,
            self_building=gov.self_building,
            component_generation=gov.component_generation,
            rollback_enabled=gov.rollback_enabled,
            last_sync_at=state.last_sync_at,
            next_sync_at=state.next_sync_at,
            agent_state="off" if not gov.self_building else state.agent_state,
            agent_error=state.agent_error,
            live=live,
            max_concurrent=settings.max_concurrent,
            quality_threshold=settings.quality_threshold,
            risk_tolerance=settings.risk_tolerance,
            monitoring=settings.monitoring,
            rollback_threshold=settings.rollback_threshold,
            rules_from=settings.where,
        )

    def review_problems(self, item: Improvement) -> list[str]:
        gov = self.governance(item.environment)
        return decide.review_problems(item, self.settings(item.environment), gov.component_generation)

    def stats(self, environment: str | None = None, tenant: str | None = None) -> decide.ImprovementStats:
        return decide.stats(self.items(environment), environment, tenant)

    # ------------------------------------------------------------------------------------ decisions

    def approve(
        self, environment: str, ids: Sequence[str], reason: str, override: bool = False
    ) -> list[Improvement]:
        actor = self.engine.actor
        self.engine.authz.require(actor, "improvement.override" if override else "improvement.approve")
        settings = self.settings(environment)
        gov = self.governance(environment)

        def change(item: Improvement, now: float) -> tuple[Improvement, dict[str, Any]] | str:
            why = decide.approval_refusal(item, settings, gov.component_generation, override)
            if why is not None:
                return why
            found = decide.review_problems(item, settings, gov.component_generation)
            after = replace(
                item,
                status=S.APPROVED,
                reviewer=actor.user,
                reason=reason,
                override=bool(found),
                decided_at=now,
                error="",
                attempts=0,
                next_attempt_at=None,
            )
            return after, {"override": bool(found), "problems": found}

        return self._decide_each(environment, ids, "approve", reason, change)

    def reject(self, environment: str, ids: Sequence[str], reason: str) -> list[Improvement]:
        actor = self.engine.actor
        self.engine.authz.require(actor, "improvement.reject")
        self.settings(environment)
        if not reason.strip():
            raise Rejected("rejecting an improvement needs a reason")

        def change(item: Improvement, now: float) -> tuple[Improvement, dict[str, Any]] | str:
            if item.status not in (S.PROPOSED, S.APPROVED):
                return f"{item.id} is {item.status}; only proposed or approved items can be rejected"
            after = replace(item, status=S.REJECTED, reviewer=actor.user, reason=reason, decided_at=now)
            return after, {}

        return self._decide_each(environment, ids, "reject", reason, change)

    def resume_autonomous(self, environment: str, reason: str) -> None:
        actor = self.engine.actor
        self.engine.authz.require(actor, "improvement.resume_autonomous")
        self.settings(environment)
        if not reason.strip():
            raise Rejected("resuming autonomous improvements needs a reason")
        now = self.engine.clock()
        with self.engine.store.transaction() as tx:
            was = suspension(tx, environment)
            tx.set_kv(resumed_key(environment), {"at": now, "by": actor.user, "reason": reason}, now)
            tx.append_audit(
                now,
                actor,
                "improvements.resume_autonomous",
                f"improvements:{environment}",
                {"reason": reason, "was_suspended": was.suspended, "suspended_at": was.at},
            )
        self.engine.bus.publish("improvements", environment=environment)

    def _decide_each(
        self,
        environment: str,
        ids: Sequence[str],
        action: str,
        reason: str,
        change: Callable[[Improvement, float], tuple[Improvement, dict[str, Any]] | str],
    ) -> list[Improvement]:
        """Apply `change` to each item in one transaction; unknown ids refuse the whole call
        (NotFound), rule refusals only their item (PartlyRefused after the others are written)."""
        from ..core import NotFound

        wanted = list(dict.fromkeys(ids))
        if not wanted:
            raise Rejected("no improvement ids given")
        now = self.engine.clock()
        updated: list[Improvement] = []
        refused: list[str] = []
        with self.engine.store.transaction() as tx:
            found = {i: tx.get_improvement(environment, i) for i in wanted}
            missing = [i for i, item in found.items() if item is None]
            if missing:
                raise NotFound(f"no improvement {', '.join(map(repr, missing))} in {environment}")
            for i in wanted:
                before = found[i]
                assert before is not None
                outcome = change(before, now)
                if isinstance(outcome, str):
                    refused.append(outcome)
                    continue
                after, data = outcome
                updated.append(self.write(tx, before, after, action, self.engine.actor, now, reason, **data))
        if updated:
            self.engine.bus.publish("improvements", environment=environment, items=updated)
        if refused:
            done = f"{action}d {', '.join(i.id for i in updated)}; " if updated else ""
            raise PartlyRefused(f"{done}refused: {' | '.join(refused)}", updated)
        return updated

    # ------------------------------------------------------------------------------------ rollback

    def rollback(self, environment: str, ids: Sequence[str], reason: str) -> list[Improvement]:
        """Roll items back through their source, now (blocking, each call bounded by the source's
        timeout). An item whose rollback the source did not confirm is `failed`, with the error, and
        is notified; the queue keeps trying it. Returned: every item asked for, as written."""
        actor = self.engine.actor
        self.engine.authz.require(actor, "improvement.rollback")
        settings = self.settings(environment)
        if not reason.strip():
            raise Rejected("rolling an improvement back needs a reason")

        def mark(item: Improvement, now: float) -> tuple[Improvement, dict[str, Any]] | str:
            if item.status not in ROLLBACKABLE:
                return (
                    f"{item.id} is {item.status}; only deploying, monitoring, kept or failed items roll back"
                )
            return replace(item, rollback_pending=reason, reviewer=item.reviewer or actor.user), {}

        try:
            requested = self._decide_each(environment, ids, "rollback_requested", reason, mark)
            refusal: PartlyRefused | None = None
        except PartlyRefused as exc:
            requested, refusal = exc.updated, exc
        source = self.open_source(settings, self.engine.environ)

        async def all_of() -> list[tuple[Improvement, ActionResult | AgentError]]:
            try:
                return list(
                    await asyncio.gather(
                        *(self._rollback_call(settings, source, i, reason) for i in requested)
                    )
                )
            finally:
                await source.close()

        results = blocking(all_of) if requested else []
        written = [
            self.finish_rollback(item, outcome, actor, reason, automatic=False) for item, outcome in results
        ]
        if refusal is not None:
            raise PartlyRefused(str(refusal), written)
        return written

    def rollback_recent(self, environment: str, hours: float, reason: str) -> list[Improvement]:
        """Roll back everything deployed in the last `hours` that is deploying, monitoring or kept."""
        self.engine.authz.require(self.engine.actor, "improvement.rollback")
        if hours <= 0:
            raise Rejected(f"hours must be more than 0, got {hours:g}")
        since = self.engine.clock() - hours * 3600
        recent = [
            i.id
            for i in self.items(environment)
            if i.status in (S.DEPLOYING, S.MONITORING, S.KEPT)
            and (i.deployed_at if i.deployed_at is not None else i.updated_at) >= since
        ]
        return self.rollback(environment, recent, reason) if recent else []

    async def _rollback_call(
        self, settings: ImprovementSettings, source: AgentSource, item: Improvement, reason: str
    ) -> tuple[Improvement, ActionResult | AgentError]:
        try:
            return item, checked(await call(settings, source.rollback(item.id, reason)))
        except AgentError as exc:
            return item, exc

    def finish_rollback(
        self,
        item: Improvement,
        outcome: ActionResult | AgentError,
        actor: Actor,
        reason: str,
        automatic: bool,
        evidence: str = "",
    ) -> Improvement:
        """Record what the source said about a rollback: rolled_back when it confirmed, otherwise
        failed (never rolled_back), notified, and retried later while retrying can help."""
        now = self.engine.clock()
        with self.engine.store.transaction() as tx:
            before = tx.get_improvement(item.environment, item.id)
            if before is None:
                return item
            if isinstance(outcome, ActionResult):
                after = replace(
                    before,
                    status=S.ROLLED_BACK,
                    evidence=evidence or f"rolled back by {actor.user}: {reason}",
                    finished_at=now,
                    rollback_pending="",
                    error="",
                    attempts=0,
                    next_attempt_at=None,
                )
                written = self.write(
                    tx, before, after, "rollback", actor, now, reason, agent=outcome.message[:MAX_ERROR]
                )
                event = "improvement_rollback"
                message = f"improvement {item.environment}/{item.id} rolled back: {after.evidence}"
            else:
                attempts = before.attempts + 1
                retry = outcome.retryable or outcome.kind == "auth"
                failed_evidence = (
                    f"rollback failed at the source ({outcome.kind}: {short_error(outcome)}); "
                    "the change may still be live"
                    + f". Why it was rolled back: {evidence or f'{actor.user}: {reason}'}"
                )
                after = replace(
                    before,
                    status=S.FAILED,
                    evidence=failed_evidence,
                    error=f"{outcome.kind}: {short_error(outcome)}",
                    attempts=attempts,
                    next_attempt_at=now + backoff(attempts) if retry else None,
                    rollback_pending=reason if retry else "",
                    finished_at=now,
                )
                written = self.write(tx, before, after, "rollback_failed", actor, now, reason, retrying=retry)
                event = "improvement_failed"
                message = f"improvement {item.environment}/{item.id}: {failed_evidence}"
            sent = notifier.enqueue(
                tx,
                self.engine.config.notifications,
                event,
                message,
                now,
                environment=item.environment,
                improvement=item.id,
                automatic=automatic,
            )
        notifier.deliver_soon(self.engine.store, sent)
        self.engine.bus.publish("improvements", environment=item.environment, items=[written])
        return written

    # ------------------------------------------------------------------------------------ sync

    def sync(self, environment: str | None = None) -> SyncResult:
        """Ask each (or one) environment's source for proposals now: a cycle when not paused, then
        the list. Blocking; every call bounded by the source's timeout."""
        self.engine.authz.require(self.engine.actor, "improvement.sync")
        names = [environment] if environment is not None else list(self.config)
        for name in names:
            self.settings(name)

        async def run() -> SyncResult:
            total = SyncResult()
            for name in names:
                source = self.open_source(self.config[name], self.engine.environ)
                try:
                    total = total + await self.sync_environment(name, source, self.engine.actor)
                finally:
                    await source.close()
            return total

        return blocking(run)

    async def sync_environment(self, environment: str, source: AgentSource, actor: Actor) -> SyncResult:
        settings = self.settings(environment)
        started = time.perf_counter()
        gov = await asyncio.to_thread(self.governance, environment)
        if not gov.self_building:
            await asyncio.to_thread(
                self._record_source, environment, "off", "enable_self_building is off", False
            )
            return SyncResult((environment,), errors=(f"{environment}: enable_self_building is off",))
        try:
            proposals: dict[str, Proposal] = {}
            if not gov.paused:
                cycle = await call(
                    settings, source.trigger_cycle(settings.analysis_window_hours, settings.max_improvements)
                )
                proposals.update((p.id, p) for p in cycle.proposals)
            listed = await call(settings, source.list_improvements())
            proposals.update((p.id, p) for p in listed.improvements)
        except AgentError as exc:
            await asyncio.to_thread(self._record_source, environment, exc.kind, short_error(exc), False)
            return SyncResult(
                (environment,),
                errors=(f"{environment}: {exc.kind}: {short_error(exc)}",),
                seconds=time.perf_counter() - started,
            )
        kind = "file" if settings.proposals_file is not None else "agent"
        result = await asyncio.to_thread(
            self.merge, environment, list(proposals.values()), kind, actor, source.name
        )
        return replace(result, seconds=time.perf_counter() - started)

    def merge(
        self, environment: str, proposals: Sequence[Proposal], kind: str, actor: Actor, source: str
    ) -> SyncResult:
        """Upsert what the source proposes: new ids become `proposed`; a proposed item takes the
        source's new text; an item already decided keeps everything the console decided (only the
        agent's own status word is refreshed), so a sync never undoes an approval or a rejection."""
        settings = self.settings(environment)
        now = self.engine.clock()
        new: list[Improvement] = []
        updated = unchanged = 0
        with self.engine.store.transaction() as tx:
            existing = {i.id: i for i in tx.list_improvements(environment)}
            for p in proposals:
                old = existing.get(p.id)
                if old is None:
                    new.append(
                        Improvement(
                            environment=environment,
                            proposal=p,
                            source="file" if kind == "file" else "agent",
                            proposed_at=now,
                            updated_at=now,
                            metric=p.impact.metric or settings.metric,
                            better=p.impact.better if p.impact.metric else settings.better,
                        )
                    )
                    continue
                if old.proposal == p:
                    unchanged += 1
                    continue
                if old.status is S.PROPOSED:
                    after = replace(
                        old,
                        proposal=p,
                        metric=p.impact.metric or settings.metric,
                        better=p.impact.better if p.impact.metric else settings.better,
                        updated_at=now,
                    )
                elif old.proposal.agent_status != p.agent_status:
                    after = replace(
                        old, proposal=replace(old.proposal, agent_status=p.agent_status), updated_at=now
                    )
                else:
                    unchanged += 1
                    continue
                # No audit per item: not a transition, and the sync's one event names the counts.
                if tx.update_improvement(after, old.version):
                    updated += 1
            tx.insert_improvements(new)
            state = SourceState.load(tx.get_kv(sync_key(environment)))
            tx.set_kv(
                sync_key(environment),
                replace(
                    state,
                    agent_state="ok",
                    agent_error="",
                    last_sync_at=now,
                    last_attempt_at=now,
                    next_sync_at=now + settings.cycle_interval,
                    failures=0,
                ).dump(),
                now,
            )
            if new or updated:
                tx.append_audit(
                    now,
                    actor,
                    "improvements.sync",
                    f"improvements:{environment}",
                    {
                        "source": source,
                        "new": len(new),
                        "updated": updated,
                        "unchanged": unchanged,
                        "new_ids": [i.id for i in new[:MAX_SYNC_IDS]],
                    },
                )
        self.engine.bus.publish("improvements", environment=environment)
        return SyncResult((environment,), len(new), updated, unchanged)

    def _record_source(self, environment: str, kind: str, error: str, ok: bool) -> None:
        now = self.engine.clock()
        with self.engine.store.transaction() as tx:
            state = SourceState.load(tx.get_kv(sync_key(environment)))
            failures = 0 if ok else state.failures + 1
            tx.set_kv(
                sync_key(environment),
                replace(
                    state,
                    agent_state=kind,
                    agent_error=error,
                    last_attempt_at=now,
                    failures=failures,
                    next_sync_at=now + backoff(failures) if failures else state.next_sync_at,
                ).dump(),
                now,
            )
        self.engine.bus.publish("improvements", environment=environment)

    # ------------------------------------------------------------------------------------ writing

    def write(
        self,
        tx: Any,
        before: Improvement,
        after: Improvement,
        action: str,
        actor: Actor,
        now: float,
        reason: str = "",
        **data: Any,
    ) -> Improvement:
        """One audited transition, compare-and-set on the version read."""
        from ..core import Conflict

        if after.status is not before.status and not can_move(before.status, after.status):
            raise Rejected(f"{before.id}: {before.status} cannot become {after.status}")
        after = replace(after, updated_at=now)
        if not tx.update_improvement(after, before.version):
            raise Conflict(f"improvement {before.environment}/{before.id} changed meanwhile; try again")
        tx.append_audit(
            now,
            actor,
            f"improvement.{action}",
            target(after),
            {
                "from": str(before.status),
                "to": str(after.status),
                "reason": reason,
                "evidence": after.evidence if after.evidence != before.evidence else "",
                **data,
            },
        )
        return replace(after, version=before.version + 1)


def source_name(settings: ImprovementSettings) -> str:
    if settings.proposals_file is not None:
        return f"file {settings.proposals_file}"
    if settings.agent is not None:
        return f"agent {redact_text(settings.agent.url)}"
    return "none"
