"""Read models shared by the CLI and the console: what a person needs to see about a rollout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .model import Phase, Rollout, RolloutState, Verdict
from .rollout import current_phase, step_percent
from .units import format_duration

if TYPE_CHECKING:
    from .core import Engine


def phase_of(engine: Engine, r: Rollout) -> Phase | None:
    """The rollout's current phase, or None when its plan left the configuration."""
    plan = engine.config.plans.get(r.plan)
    return current_phase(plan, r) if plan is not None else None


def why(engine: Engine, r: Rollout) -> str:
    """The one line that says what the rollout waits for: blocking verdict, countdown, approvals."""
    plan = engine.config.plans.get(r.plan)
    if plan is None:
        return f"plan {r.plan} is no longer in the configuration"
    if r.state is RolloutState.PENDING:
        return "waiting for the engine to start the first phase"
    if r.state is not RolloutState.PROGRESSING:
        return r.reason
    phase = current_phase(plan, r)
    blocking = [v for v in r.verdicts if v.status is not Verdict.PASS]
    guards = {g.name for g in phase.guards}
    for v in blocking:
        if v.gate in guards and v.status is Verdict.FAIL:
            spec = next((g for g in phase.guards if g.name == v.gate), None)
            every = (spec.interval if spec and spec.interval else None) or engine.config.interval
            left = format_duration(max(0, v.failure_limit - v.failures) * every)
            return f"guard {v.gate}: {v.reason}; rollback in {left} if it keeps failing ({v.failures}/{v.failure_limit})"
    wait = phase.strategy.step_wait if phase.strategy is not None else 0.0
    left = wait - (engine.clock() - r.step_started_at)
    if left > 0 and r.step_index < len(phase.steps) - 1:
        return f"next step in {format_duration(left)}"
    if blocking:
        v = blocking[0]
        return f"{v.gate}: {v.reason}"
    return r.reason


def rollout_row(engine: Engine, r: Rollout) -> dict[str, Any]:
    plan = engine.config.plans.get(r.plan)
    phase = current_phase(plan, r).name if plan else "?"
    return {
        "id": r.id,
        "plan": r.plan,
        "state": str(r.state),
        "phase": phase,
        "step_index": r.step_index,
        "percent": step_percent(plan, r) if plan else None,
        "started_by": r.started_by,
        "why": why(engine, r),
        "verdicts": [v.to_dict() for v in r.verdicts],
        "approvals": [{"user": a.user, "reason": a.reason, "at": a.at} for a in r.approvals],
    }
