"""What a plan drives, so that two active rollouts never drive the same thing at once.

Two rollouts setting one canary flag undo each other's steps (100% -> 10% -> 0%) and roll back into
each other's state. A plan claims every flag it sets in any phase, canary or plain `flags:`: a
rollback restores all of them, whichever phase it is in. Pure: the caller reads the active rollouts
inside the same write transaction as the insert, so the check and the insert cannot interleave with
another start. A resource is (kind, environment, name): a flag, or a Docker service that a phase
deploys (two rollouts deploying one service would switch its traffic under each other's checks, and
a rollback of one would restore what the other deployed). A service is one whatever the environment
(its containers are the same), so its environment is "" here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .model import Plan, Rollout


@dataclass(frozen=True, order=True)
class Resource:
    kind: str
    """What is driven: "flag" or "service"."""
    environment: str
    name: str

    def __str__(self) -> str:
        where = f" in {self.environment}" if self.environment else ""
        return f"{self.kind} {self.name}{where}"


def plan_resources(plan: Plan) -> frozenset[Resource]:
    """Everything `plan` changes in any of its phases."""
    found: set[Resource] = set()
    for phase in plan.phases:
        strategy = phase.strategy
        if strategy is not None and strategy.kind == "canary" and strategy.flag:
            found.add(Resource("flag", phase.environment, strategy.flag))
        found.update(Resource("flag", phase.environment, name) for name in phase.flags)
        if strategy is not None and strategy.service:
            found.add(Resource("service", "", strategy.service))
    return frozenset(found)


def first_conflict(
    plan: Plan, active: Iterable[Rollout], plans: Mapping[str, Plan]
) -> tuple[Rollout, Resource] | None:
    """The first active rollout that drives something `plan` drives, and that resource; or None.

    A rollout whose plan is no longer configured is skipped: what it drives cannot be known."""
    wanted = plan_resources(plan)
    if not wanted:
        return None
    for other in active:
        other_plan = plans.get(other.plan)
        if other_plan is None:
            continue
        shared = wanted & plan_resources(other_plan)
        if shared:
            return other, min(shared)
    return None
