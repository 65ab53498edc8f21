"""The queue's pure decisions: review problems, what deploys now, and judging a monitored item.
Property tests hold the invariants whatever the queue looks like."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from opsconsole.engine.improvements import decide
from opsconsole.engine.improvements.decide import Governance
from opsconsole.engine.improvements.model import (
    LIVE,
    Improvement,
    ImprovementSettings,
    ImprovementStatus,
    TenantSettings,
)
from opsconsole.engine.improvements.protocol import PredictedImpact, Proposal

S = ImprovementStatus
TENANTS = ("a", "b", "c", "")


def make(
    pid: str, status: S = S.PROPOSED, quality: float = 0.96, risk: float = 0.01, **kw: object
) -> Improvement:
    p = Proposal(
        id=pid,
        title=pid,
        description="",
        component="x",
        tenant=str(kw.pop("tenant", "a")),
        kind=kw.pop("kind", "tuning"),  # type: ignore[arg-type]
        impact=PredictedImpact("m", -0.1),
        quality_score=quality,
        risk=risk,
    )
    return Improvement("production", p, status=status, metric="m", **kw)  # type: ignore[arg-type]


PROD = ImprovementSettings(
    "production",
    quality_threshold=0.95,
    risk_tolerance=0.05,
    max_concurrent=2,
    monitoring=100.0,
    rollback_threshold=0.05,
)


def test_review_problems_name_each_rule() -> None:
    tenants = replace(PROD, tenants={"a": TenantSettings(True), "b": TenantSettings(False)})
    bad = make("x", quality=0.9, risk=0.2, tenant="b", kind="new_component")
    found = decide.review_problems(bad, tenants, component_generation=False)
    assert found == [
        "quality 0.90 is under the threshold 0.95",
        "risk 0.20 is over the tolerance 0.05",
        "tenant b is not enabled for improvements in production",
        "a new component while component generation is off (no override)",
    ]
    assert decide.review_problems(make("ok"), tenants, False) == []
    assert "without a tenant" in decide.review_problems(make("t", tenant=""), tenants, False)[0]


def test_approval_needs_override_for_soft_problems_and_refuses_hard_ones() -> None:
    low = make("low", quality=0.5)
    assert "override" in (decide.approval_refusal(low, PROD, False, override=False) or "")
    assert decide.approval_refusal(low, PROD, False, override=True) is None
    comp = make("comp", kind="new_component")
    assert "no override" in (decide.approval_refusal(comp, PROD, False, override=True) or "")
    assert decide.approval_refusal(comp, PROD, True, override=False) is None
    assert "only proposed" in (decide.approval_refusal(make("k", S.KEPT), PROD, True, True) or "")


def test_approved_first_then_autonomous_best_score() -> None:
    items = [
        make("p1", quality=0.97),
        make("p2", quality=0.99),
        make("ap", S.APPROVED, quality=0.5, decided_at=5.0),
    ]
    chosen = decide.to_deploy(items, PROD, Governance(autonomous=True), now=10.0)
    assert [i.id for i in chosen] == ["ap", "p2"]
    assert [i.id for i in decide.to_deploy(items, PROD, Governance(autonomous=False), 10.0)] == ["ap"]


def test_per_tenant_limit_and_backoff() -> None:
    tenants = replace(
        PROD, max_concurrent=5, tenants={"a": TenantSettings(True, 1), "b": TenantSettings(True)}
    )
    items = [
        make("live", S.MONITORING, tenant="a"),
        make("a2", S.APPROVED, tenant="a", decided_at=1.0),
        make("b1", S.APPROVED, tenant="b", decided_at=2.0),
        make("b2", S.APPROVED, tenant="b", decided_at=3.0, next_attempt_at=50.0),
    ]
    assert [i.id for i in decide.to_deploy(items, tenants, Governance(), 10.0)] == ["b1"]
    assert [i.id for i in decide.to_deploy(items, tenants, Governance(), 60.0)] == ["b1", "b2"]


# ------------------------------------------------------------------------------------ properties

statuses = st.sampled_from(list(S))
item_strategy = st.builds(
    lambda n, status, q, r, tenant, kind, next_at: make(
        f"i{n}", status, q, r, tenant=tenant, kind=kind, decided_at=float(n), next_attempt_at=next_at
    ),
    st.integers(0, 10_000),
    statuses,
    st.floats(0, 1),
    st.floats(0, 1),
    st.sampled_from(TENANTS),
    st.sampled_from(["tuning", "new_component"]),
    st.one_of(st.none(), st.floats(0, 20)),
)
gov_strategy = st.builds(
    Governance, st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans()
)
settings_strategy = st.builds(
    lambda mc, limits, listed: replace(
        PROD,
        max_concurrent=mc,
        tenants={t: TenantSettings(True, limits) for t in listed},
    ),
    st.integers(1, 4),
    st.one_of(st.none(), st.integers(1, 3)),
    st.sets(st.sampled_from(TENANTS)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(item_strategy, max_size=30, unique_by=lambda i: i.id), settings_strategy, gov_strategy)
def test_deploy_invariants(items: list[Improvement], s: ImprovementSettings, gov: Governance) -> None:
    chosen = decide.to_deploy(items, s, gov, now=10.0)
    live = [i for i in items if i.status in LIVE]
    # Never more live than max_concurrent (what was already live is not ours to undo).
    assert len(chosen) <= max(0, s.max_concurrent - len(live))
    for tenant, t in s.tenants.items():
        if t.max_concurrent is not None:
            now_live = sum(1 for i in live if i.proposal.tenant == tenant)
            added = sum(1 for i in chosen if i.proposal.tenant == tenant)
            assert added <= max(0, t.max_concurrent - now_live)
    if gov.paused or not gov.self_building:
        assert chosen == []
    for i in chosen:
        assert i.status in (S.APPROVED, S.PROPOSED)  # a rejected (or any other) item never deploys
        assert i.status is S.APPROVED or gov.autonomous  # observation mode: only what a person approved
        assert i.proposal.kind != "new_component" or gov.component_generation
        assert i.next_attempt_at is None or i.next_attempt_at <= 10.0
        if i.status is S.PROPOSED:
            assert decide.review_problems(i, s, gov.component_generation) == []
    assert len({i.id for i in chosen}) == len(chosen)


# ------------------------------------------------------------------------------------ judging


def monitored(baseline: float | None, better: str = "lower") -> Improvement:
    return make("m", S.MONITORING, baseline=baseline, better=better, deployed_at=0.0, monitor_until=100.0)


def test_degradation_direction_and_zero_baseline() -> None:
    assert decide.degradation(100.0, 110.0, "lower") == 0.1
    assert decide.degradation(100.0, 90.0, "higher") == 0.1
    assert decide.degradation(100.0, 90.0, "lower") == -0.1
    assert decide.degradation(0.0, 0.0, "lower") == 0.0
    assert decide.degradation(0.0, 0.01, "lower") == math.inf
    assert decide.degradation(None, 1.0, "lower") is None
    assert decide.degradation(1.0, None, "lower") is None


def test_judge_rolls_back_on_degradation_with_the_numbers() -> None:
    j = decide.judge(monitored(100.0), 106.0, 10.0, PROD, rollback_enabled=True)
    assert j.outcome == "rollback" and "100 to 106" in j.evidence and "6.0% worse" in j.evidence
    off = decide.judge(monitored(100.0), 106.0, 10.0, PROD, rollback_enabled=False)
    assert off.outcome == "degraded"


def test_judge_keeps_at_window_end_only_on_a_known_value() -> None:
    assert decide.judge(monitored(100.0), 104.0, 50.0, PROD, True).outcome == "hold"
    kept = decide.judge(monitored(100.0), 80.0, 100.0, PROD, True)
    assert kept.outcome == "keep" and "20.0% better" in kept.evidence
    assert decide.judge(monitored(100.0), None, 150.0, PROD, True).outcome == "hold"
    failed = decide.judge(monitored(100.0), None, 200.0, PROD, True)
    assert failed.outcome == "fail" and "twice the monitoring window" in failed.evidence


@given(
    st.floats(0.01, 1e6),
    st.one_of(st.none(), st.floats(0, 1e6)),
    st.floats(0, 300),
    st.sampled_from(["lower", "higher"]),
)
def test_unknown_never_keeps(baseline: float, value: float | None, now: float, better: str) -> None:
    j = decide.judge(monitored(baseline, better), value, now, PROD, True)
    if value is None:
        assert j.outcome in ("hold", "fail")
    if j.outcome == "keep":
        d = decide.degradation(baseline, value, better)
        assert d is not None and d <= PROD.rollback_threshold


def test_stats_rates_and_predicted_vs_observed() -> None:
    items = [
        make("k", S.KEPT, decided_at=1.0, deployed_at=2.0, baseline=100.0, observed=80.0),
        make("r", S.ROLLED_BACK, decided_at=1.0, deployed_at=2.0, baseline=100.0, observed=120.0),
        make("x", S.REJECTED, decided_at=1.0),
        make("p", S.PROPOSED, tenant="b"),
    ]
    st_ = decide.stats(items, "production", None)
    assert (st_.proposed, st_.approved, st_.rejected, st_.deployed, st_.kept, st_.rolled_back) == (
        4,
        2,
        1,
        2,
        1,
        1,
    )
    assert st_.rollback_rate == 0.5
    assert st_.mean_predicted_change is not None and math.isclose(st_.mean_predicted_change, -0.1)
    assert st_.mean_observed_change is not None and math.isclose(st_.mean_observed_change, 0.0)
    assert decide.stats(items, "production", "b").proposed == 1
    assert decide.stats([], None, None).rollback_rate is None
