"""The queue's decisions, pure: data in, data out, no I/O (the service fetches and applies).

- `review_problems`: why a proposal cannot be approved by an approver alone.
- `to_deploy`: which items start deploying now, within the concurrency limits and never while the
  queue is paused or self-building is off.
- `judge`: a monitored item's outcome from the judged metric against its baseline.

Judging, and why:
- Degradation is the relative change of the metric in the bad direction (`better`): for "lower",
  (now - baseline) / |baseline|. A baseline of 0 has no relative change: any worsening from 0 counts
  as infinitely worse (an error rate going from 0 to anything), no change as 0.
- Degradation beyond the threshold rolls back at once: the metric is already a windowed query, and
  waiting for a second bad reading would leave a harmful change live for longer.
- An unknown value (the source is down or has no series) never keeps an item: it holds. At the end
  of the window the item is kept only on a known value; without one it waits up to twice the window
  (the source may come back), then fails with the evidence, so a person decides: the change is
  still live and nothing showed it is good.
- With automatic rollback off (enable_improvement_rollback), a degraded item is not rolled back
  by the queue: it fails with the evidence, and a person rolls it back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from .model import LIVE, Improvement, ImprovementSettings, ImprovementStatus

S = ImprovementStatus


@dataclass(frozen=True)
class Governance:
    """What governs one environment's queue right now: runtime flags and the kill switch."""

    self_building: bool = True
    autonomous: bool = False
    """Effective: configured on, the flag on, not suspended by the kill switch, not paused."""
    component_generation: bool = False
    """Effective: configured on and the flag on."""
    rollback_enabled: bool = True
    paused: bool = False


@dataclass(frozen=True)
class Problem:
    message: str
    overridable: bool


def problems(item: Improvement, settings: ImprovementSettings, component_generation: bool) -> list[Problem]:
    p = item.proposal
    out = []
    if p.quality_score < settings.quality_threshold:
        out.append(
            Problem(
                f"quality {p.quality_score:.2f} is under the threshold {settings.quality_threshold:.2f}", True
            )
        )
    if p.risk > settings.risk_tolerance:
        out.append(Problem(f"risk {p.risk:.2f} is over the tolerance {settings.risk_tolerance:.2f}", True))
    if not tenant_enabled(settings, p.tenant):
        who = f"tenant {p.tenant}" if p.tenant else "a proposal without a tenant"
        out.append(Problem(f"{who} is not enabled for improvements in {settings.environment}", True))
    if p.kind == "new_component" and not component_generation:
        out.append(Problem("a new component while component generation is off (no override)", False))
    return out


def review_problems(
    item: Improvement, settings: ImprovementSettings, component_generation: bool
) -> list[str]:
    """Why `item` cannot be approved without an admin override (the last kind, a new component
    while generation is off, is refused even with one)."""
    return [p.message for p in problems(item, settings, component_generation)]


def tenant_enabled(settings: ImprovementSettings, tenant: str) -> bool:
    """No tenants listed: every tenant is enabled. Listed: only those enabled."""
    if not settings.tenants:
        return True
    t = settings.tenants.get(tenant)
    return t is not None and t.enabled


def approval_refusal(
    item: Improvement, settings: ImprovementSettings, component_generation: bool, override: bool
) -> str | None:
    """Why this approval is refused (None: it may be approved)."""
    if item.status is not S.PROPOSED:
        return f"{item.id} is {item.status}, only proposed items can be approved"
    found = problems(item, settings, component_generation)
    hard = [p.message for p in found if not p.overridable]
    if hard:
        return f"{item.id}: {'; '.join(hard)}"
    if found and not override:
        soft = "; ".join(p.message for p in found)
        return f"{item.id}: {soft} (an admin may approve it with an override)"
    return None


def to_deploy(
    items: Sequence[Improvement], settings: ImprovementSettings, gov: Governance, now: float
) -> list[Improvement]:
    """The items that start deploying now, in order: approved ones (oldest decision first), then in
    autonomous mode the proposed ones without any review problem (best score first). Never more
    live than max_concurrent, globally and per tenant; nothing while paused or self-building is off;
    new components never while component generation is off (even if approved while it was on)."""
    if gov.paused or not gov.self_building:
        return []
    live = [i for i in items if i.status in LIVE]
    free = settings.max_concurrent - len(live)
    per_tenant: dict[str, int] = {}
    for i in live:
        per_tenant[i.proposal.tenant] = per_tenant.get(i.proposal.tenant, 0) + 1

    def waiting(i: Improvement) -> bool:
        return i.next_attempt_at is None or i.next_attempt_at <= now

    approved = sorted(
        (i for i in items if i.status is S.APPROVED and waiting(i)),
        key=lambda i: (i.decided_at or 0.0, i.id),
    )
    candidates = list(approved)
    if gov.autonomous:
        candidates += sorted(
            (
                i
                for i in items
                if i.status is S.PROPOSED
                and waiting(i)
                and not problems(i, settings, gov.component_generation)
            ),
            key=lambda i: (-i.proposal.quality_score, i.id),
        )
    out = []
    for i in candidates:
        if free <= 0:
            break
        if i.proposal.kind == "new_component" and not gov.component_generation:
            continue
        tenant = i.proposal.tenant
        limit = settings.tenants[tenant].max_concurrent if tenant in settings.tenants else None
        if limit is not None and per_tenant.get(tenant, 0) >= limit:
            continue
        out.append(i)
        free -= 1
        per_tenant[tenant] = per_tenant.get(tenant, 0) + 1
    return out


# ------------------------------------------------------------------------------------ judging

Outcome = Literal["hold", "keep", "rollback", "degraded", "fail"]


@dataclass(frozen=True)
class Judgement:
    outcome: Outcome
    """hold: keep watching; keep; rollback: roll back now; degraded: beyond the threshold but
    automatic rollback is off (the item fails, a person rolls it back); fail: cannot be judged."""
    evidence: str
    degradation: float | None = None


def degradation(baseline: float | None, value: float | None, better: str) -> float | None:
    """Relative change in the bad direction (0.12: 12% worse; negative: better); None when unknown."""
    if baseline is None or value is None or not math.isfinite(baseline) or not math.isfinite(value):
        return None
    worse = value - baseline if better == "lower" else baseline - value
    if baseline == 0:
        return 0.0 if worse <= 0 else math.inf
    return worse / abs(baseline)


def judge(
    item: Improvement, value: float | None, now: float, settings: ImprovementSettings, rollback_enabled: bool
) -> Judgement:
    """The outcome for a monitored item given the metric's value now (None: unknown)."""
    metric = item.metric or "the metric"
    d = degradation(item.baseline, value, item.better)
    if d is not None and d > settings.rollback_threshold:
        text = (
            f"{metric} went from {_num(item.baseline)} to {_num(value)}: {_pct(d)} worse "
            f"(threshold {_pct(settings.rollback_threshold)}, {item.better} is better)"
        )
        return Judgement("rollback" if rollback_enabled else "degraded", text, d)
    end = item.monitor_until if item.monitor_until is not None else now
    if now < end:
        return Judgement("hold", "", d)
    if d is not None:
        change = "better" if d < 0 else "worse"
        text = (
            f"{metric} {_num(item.baseline)} -> {_num(value)} ({_pct(abs(d))} {change}, threshold "
            f"{_pct(settings.rollback_threshold)}) at the end of the {settings.monitoring:g}s window"
        )
        return Judgement("keep", text, d)
    started = item.deployed_at if item.deployed_at is not None else end - settings.monitoring
    if now < started + 2 * settings.monitoring:
        return Judgement("hold", f"{metric} has no value at the end of the window; waiting for one", None)
    return Judgement(
        "fail",
        f"{metric} had no usable value for twice the monitoring window ({2 * settings.monitoring:g}s): "
        "cannot tell whether it helps; it is still deployed, roll it back or keep it by hand",
        None,
    )


def _num(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.6g}"


def _pct(value: float) -> str:
    return "∞%" if math.isinf(value) else f"{value * 100:.1f}%"


# ------------------------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class ImprovementStats:
    environment: str | None
    tenant: str | None
    proposed: int = 0
    """Every item the queue has seen."""
    approved: int = 0
    """Approved by a person or taken by autonomous mode (whatever happened next)."""
    rejected: int = 0
    deployed: int = 0
    """Reached the system (a deploy that succeeded)."""
    kept: int = 0
    rolled_back: int = 0
    failed: int = 0
    live: int = 0
    rollback_rate: float | None = None
    """Rolled back among the deployed / deployed; None when nothing was deployed (an item rolled back
    before its deploy was confirmed counts in rolled_back, not in the rate)."""
    mean_predicted_change: float | None = None
    mean_observed_change: float | None = None
    """Over finished items with a baseline and an observed value: the predicted relative change and
    the one seen ((observed - baseline) / |baseline|), to compare the agent's promises with reality."""
    compared: int = 0
    """How many items the two means are over."""


def stats(items: Iterable[Improvement], environment: str | None, tenant: str | None) -> ImprovementStats:
    counts = dict.fromkeys(S, 0)
    approved = deployed = rolled_back_deployed = 0
    predicted: list[float] = []
    observed: list[float] = []
    total = 0
    for i in items:
        if tenant is not None and i.proposal.tenant != tenant:
            continue
        total += 1
        counts[i.status] += 1
        if i.decided_at is not None and i.status is not S.REJECTED:
            approved += 1
        if i.deployed_at is None:
            continue
        deployed += 1
        rolled_back_deployed += i.status is S.ROLLED_BACK
        change = _observed_change(i)
        if change is not None:
            predicted.append(i.proposal.impact.expected_change)
            observed.append(change)
    return ImprovementStats(
        environment=environment,
        tenant=tenant,
        proposed=total,
        approved=approved,
        rejected=counts[S.REJECTED],
        deployed=deployed,
        kept=counts[S.KEPT],
        rolled_back=counts[S.ROLLED_BACK],
        failed=counts[S.FAILED],
        live=counts[S.DEPLOYING] + counts[S.MONITORING],
        rollback_rate=rolled_back_deployed / deployed if deployed else None,
        mean_predicted_change=sum(predicted) / len(predicted) if predicted else None,
        mean_observed_change=sum(observed) / len(observed) if observed else None,
        compared=len(predicted),
    )


def _observed_change(i: Improvement) -> float | None:
    """(observed - baseline) / |baseline| for a finished item, None when it cannot be said."""
    if i.status not in (S.KEPT, S.ROLLED_BACK) or i.baseline is None or i.observed is None:
        return None
    if i.baseline == 0 or not math.isfinite(i.baseline) or not math.isfinite(i.observed):
        return None
    return (i.observed - i.baseline) / abs(i.baseline)
