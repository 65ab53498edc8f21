"""Read models shared by the CLI and the console: what a person needs to see about a rollout."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .firstlook import DEPLOY_RECORDS, DOCKER_KINDS, deploy_traffic
from .firstlook import traffic_text as traffic_text  # the console's first frame shows it too
from .model import Phase, Rollout, RolloutState, Verdict
from .rollout import current_phase, step_percent
from .units import format_duration, iso_utc

if TYPE_CHECKING:
    from .core import Engine


def phase_of(engine: Engine, r: Rollout) -> Phase | None:
    """The rollout's current phase, or None when its plan left the configuration."""
    plan = engine.config.plans.get(r.plan)
    return current_phase(plan, r) if plan is not None else None


def why(engine: Engine, r: Rollout, live: bool = True) -> str:
    """The one line that says what the rollout waits for: blocking verdict, countdown, approvals.
    Not `live`: the step wait as the time it ends rather than a countdown, for a second place on
    the same screen (a countdown shown twice costs two repaints a second and says nothing new)."""
    plan = engine.config.plans.get(r.plan)
    if plan is None:
        return f"plan {r.plan} is no longer in the configuration"
    if r.state is RolloutState.PENDING:
        return "waiting for the engine to start the first phase"
    if r.state is not RolloutState.PROGRESSING:
        return r.reason
    phase = current_phase(plan, r)
    strategy = phase.strategy
    if strategy is not None and strategy.service and strategy.image and not r.verdicts:
        deploying = deploy_in_flight(engine, r, strategy.service)
        if deploying:
            return deploying
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
        if not live:
            due = iso_utc(r.step_started_at + wait, "seconds")[11:19]
            return f"next step: {phase.steps[r.step_index + 1]}% at {due} UTC"
        return f"next step in {format_duration(left)}"
    if blocking:
        v = blocking[0]
        return f"{v.gate}: {v.reason}"
    return r.reason


def deploy_in_flight(engine: Engine, r: Rollout, service: str) -> str:
    """While the phase's Docker deploy runs (its gates are checked once it is done): what it has
    done so far, from its record in the store ("deploying v2 to web (blue_green): switch-green ok:
    traffic to green"); "" once it is done, or when the store cannot say."""
    from .store import StoreError

    try:
        with engine.store.read() as tx:
            found = tx.list_deploys(service, limit=1)
    except StoreError:
        return ""
    ours = found[0] if found and found[0].get("rollout") == f"{r.id}:{r.phase_index}" else None
    if ours is None:
        return f"deploying {service}: starting"
    if ours.get("phase") in ("done", "canary_running"):  # deploy/journal.py DONE, canary.CANARY_RUNNING
        return ""
    tag = str(ours.get("image") or "").rpartition(":")[2]
    said = f"deploying {tag} to {service} ({ours.get('strategy') or '-'})"
    if ours.get("phase") == "bg_switched" and ours.get("switched_at"):  # deploy/bluegreen.py BG_SWITCHED
        since = iso_utc(float(ours["switched_at"]), "seconds")[11:19]
        kept = f", {ours['live']} kept meanwhile" if ours.get("live") else ""
        return f"{said}: traffic on {ours.get('new')} since {since} UTC, watched{kept}"
    steps = ours.get("steps") or []
    if not steps:
        return f"{said}: starting"
    last = steps[-1]
    detail = f": {last['detail']}" if last.get("detail") else ""
    return f"{said}: {last.get('name')} {'ok' if last.get('ok') else 'failed'}{detail}"


STOPPED = frozenset({RolloutState.ABORTED, RolloutState.ROLLING_BACK, RolloutState.ROLLED_BACK})
"""States in which the step's percentage is history: the canary flag was sent back to the stable
version, or the Docker service's previous version brought back (or being brought back), so the row
must say what the new version gets now, not what it got."""


def canary_flag(engine: Engine, r: Rollout) -> tuple[str, str] | None:
    """(environment, flag) of the canary the rollout's current phase drives, if it has one."""
    phase = phase_of(engine, r)
    s = phase.strategy if phase is not None else None
    return (phase.environment, s.flag) if phase is not None and s is not None and s.flag else None


def docker_service(engine: Engine, r: Rollout) -> str | None:
    """The Docker service the rollout's current phase deploys (recreate, rolling, blue_green), if any."""
    phase = phase_of(engine, r)
    s = phase.strategy if phase is not None else None
    return s.service if s is not None and s.kind in DOCKER_KINDS and s.service and s.image else None


def stopped_traffic(engine: Engine, rollouts: Iterable[Rollout]) -> dict[str, int]:
    """Rollout id -> the percentage of traffic its new version gets now, for every stopped rollout
    that had a canary (the canary flag's stored value) or deployed a Docker service (its deploy
    records: firstlook.deploy_traffic). One read for all of them."""
    stopped = [r for r in rollouts if r.state in STOPPED]
    wanted = {r.id: pair for r in stopped if (pair := canary_flag(engine, r))}
    docker = {
        r.id: (service, r) for r in stopped if r.id not in wanted and (service := docker_service(engine, r))
    }
    if not wanted and not docker:
        return {}
    values: dict[tuple[str, str], int] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    with engine.store.read() as tx:
        for env, name in set(wanted.values()):
            rec = tx.get_flag(env, name)
            defn = engine.config.flags.get(name)
            value = rec.value if rec is not None else (defn.default if defn is not None else 0)
            values[(env, name)] = int(value)
        for service in {service for service, _ in docker.values()}:
            records[service] = tx.list_deploys(service, limit=DEPLOY_RECORDS)
    out = {rid: values[pair] for rid, pair in wanted.items()}
    for rid, (service, r) in docker.items():
        plan = engine.config.plans[r.plan]
        out[rid] = deploy_traffic(records[service], f"{r.id}:{r.phase_index}", step_percent(plan, r))
    return out


def rollout_row(engine: Engine, r: Rollout, traffic: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The rollout as the CLI's status and the console's list show it. `traffic` is what
    `stopped_traffic` gave for a batch of rollouts; without it a stopped rollout reads its own."""
    plan = engine.config.plans.get(r.plan)
    phase = current_phase(plan, r).name if plan else "?"
    percent = step_percent(plan, r) if plan else None
    now: int | None = percent
    if r.state in STOPPED:
        now = (traffic if traffic is not None else stopped_traffic(engine, [r])).get(r.id, percent)
    return {
        "id": r.id,
        "plan": r.plan,
        "state": str(r.state),
        "phase": phase,
        "step_index": r.step_index,
        "percent": percent,
        "traffic": now,
        "started_by": r.started_by,
        "why": why(engine, r),
        "verdicts": [v.to_dict() for v in r.verdicts],
        "approvals": [{"user": a.user, "reason": a.reason, "at": a.at} for a in r.approvals],
    }
