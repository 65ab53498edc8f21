"""A stand-in for the engine's improvement facade methods, until the engine branch provides them.

TEMPORARY. It reads and writes the real store (the same records, compare-and-set updates) and
publishes the real bus event; only the rules are a sketch of the engine's (threshold, tolerance,
component generation, roles, reason required, status transitions). `install()` does nothing once
`Engine` has the methods itself, so the tests then drive the real engine unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import opsconsole.engine.authz as authz
from opsconsole.engine import Forbidden, NotFound, Rejected
from opsconsole.engine.core import Engine
from opsconsole.engine.improvements.model import LIVE, ROLLBACKABLE, Improvement, ImprovementStatus
from opsconsole.engine.model import Role

S = ImprovementStatus
METHODS = (
    "improvements",
    "improvement",
    "improvement_mode",
    "review_problems",
    "approve_improvements",
    "reject_improvements",
    "rollback_improvements",
    "sync_improvements",
)

RIGHTS = {
    "improvement.approve": Role.APPROVER,
    "improvement.reject": Role.APPROVER,
    "improvement.rollback": Role.OPERATOR,
    "improvement.sync": Role.OPERATOR,
}
"""The console's guesses at the engine's rights, added to authz only where the engine has none."""


@dataclass(frozen=True)
class QueueModeDouble:
    environment: str
    source: str
    autonomous: bool
    configured_autonomous: bool
    autonomous_suspended: bool
    paused: Any
    self_building: bool
    component_generation: bool
    rollback_enabled: bool
    last_sync_at: float | None
    next_sync_at: float | None
    agent_state: str
    agent_error: str
    live: int
    max_concurrent: int


@dataclass(frozen=True)
class SyncResultDouble:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: tuple[str, ...] = ()


def needed() -> bool:
    return not all(hasattr(Engine, name) for name in METHODS)


def install(engine: Engine, **mode: Any) -> None:
    """Give `engine` the facade methods it lacks; `mode` overrides fields of improvement_mode()."""
    for right, role in RIGHTS.items():
        authz.ACTIONS.setdefault(right, role)
    if not needed():
        return
    double = _Double(engine, mode)
    for name in METHODS:
        setattr(engine, name, getattr(double, name))


class _Double:
    def __init__(self, engine: Engine, mode: dict[str, Any]) -> None:
        self.engine = engine
        self.mode = mode
        self.syncs = 0

    def improvements(self, environment: str | None = None) -> list[Improvement]:
        with self.engine.store.read() as tx:
            return tx.list_improvements(environment)

    def improvement(self, environment: str, improvement_id: str) -> Improvement:
        with self.engine.store.read() as tx:
            item = tx.get_improvement(environment, improvement_id)
        if item is None:
            raise NotFound(f"no improvement {improvement_id!r} in {environment}")
        return item

    def improvement_mode(self, environment: str) -> QueueModeDouble:
        settings = self.engine.config.improvements[environment]
        live = sum(1 for i in self.improvements(environment) if i.status in LIVE)
        agent = settings.agent
        fields: dict[str, Any] = dict(
            environment=environment,
            source=f"agent {agent.url}" if agent else f"file {settings.proposals_file}",
            autonomous=False,
            configured_autonomous=settings.autonomous,
            autonomous_suspended=False,
            paused=self.engine.improvements_paused(),
            self_building=True,
            component_generation=settings.component_generation,
            rollback_enabled=True,
            last_sync_at=self.engine.clock() - 180,
            next_sync_at=self.engine.clock() - 180 + settings.cycle_interval,
            agent_state="ok",
            agent_error="",
            live=live,
            max_concurrent=settings.max_concurrent,
        )
        fields.update(self.mode)
        return QueueModeDouble(**fields)

    def review_problems(self, item: Improvement) -> list[str]:
        settings = self.engine.config.improvements[item.environment]
        p = item.proposal
        problems = []
        if p.quality_score < settings.quality_threshold:
            problems.append(
                f"quality {p.quality_score:.2f} under the threshold {settings.quality_threshold:.2f}"
            )
        if p.risk > settings.risk_tolerance:
            problems.append(f"risk {p.risk:.2f} over the tolerance {settings.risk_tolerance:.2f}")
        return problems

    def _change(
        self, environment: str, ids: Sequence[str], reason: str, to: S, allowed: frozenset[S], **kw: Any
    ) -> list[Improvement]:
        if not reason.strip():
            raise Rejected("a reason is required")
        done, refused = [], []
        with self.engine.store.transaction() as tx:
            for key in ids:
                item = tx.get_improvement(environment, key)
                if item is None:
                    raise NotFound(f"no improvement {key!r} in {environment}")
                if item.status not in allowed:
                    refused.append(f"{key} is {item.status}")
                    continue
                new = replace(item, status=to, reason=reason, updated_at=self.engine.clock(), **kw)
                tx.update_improvement(new, item.version)
                done.append(replace(new, version=item.version + 1))
        self.engine.bus.publish("improvements", environment=environment)
        if refused:
            raise Rejected("; ".join(refused))
        return done

    def _role(self, needed: str) -> None:
        order = ["viewer", "operator", "approver", "admin"]
        if self.engine.authz.read_only or order.index(self.engine.role) < order.index(needed):
            raise Forbidden(f"{self.engine.actor.user} is {self.engine.role}, needs {needed}")

    def approve_improvements(
        self, environment: str, ids: Sequence[str], reason: str, override: bool = False
    ) -> list[Improvement]:
        self._role("admin" if override else "approver")
        if not override:
            for key in ids:
                problems = self.review_problems(self.improvement(environment, key))
                if problems:
                    raise Rejected(f"{key}: {'; '.join(problems)} (an admin may override)")
        return self._change(
            environment,
            ids,
            reason,
            S.APPROVED,
            frozenset({S.PROPOSED}),
            reviewer=self.engine.actor.user,
            override=override,
            decided_at=self.engine.clock(),
        )

    def reject_improvements(self, environment: str, ids: Sequence[str], reason: str) -> list[Improvement]:
        self._role("approver")
        return self._change(
            environment,
            ids,
            reason,
            S.REJECTED,
            frozenset({S.PROPOSED, S.APPROVED}),
            reviewer=self.engine.actor.user,
            decided_at=self.engine.clock(),
        )

    def rollback_improvements(self, environment: str, ids: Sequence[str], reason: str) -> list[Improvement]:
        self._role("operator")
        return self._change(
            environment, ids, reason, S.ROLLED_BACK, ROLLBACKABLE, finished_at=self.engine.clock()
        )

    def sync_improvements(self, environment: str | None = None) -> SyncResultDouble:
        self.syncs += 1
        return SyncResultDouble(unchanged=len(self.improvements(environment)))
