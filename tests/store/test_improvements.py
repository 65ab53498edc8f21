"""The improvement queue in every store kind: records round-trip whole, the list comes back in the pane's
order from one query, ids are unique per environment, and writes are compare-and-set."""

from __future__ import annotations

from dataclasses import replace

import pytest

from opsconsole.engine.improvements.model import SORT_ORDER, Improvement, ImprovementStatus, Sample
from opsconsole.engine.improvements.protocol import PredictedImpact, Proposal
from opsconsole.engine.store import Store, StoreError
from tests.store.conftest import raw_execute

S = ImprovementStatus


def proposal(pid: str, quality: float = 0.9, **kw: object) -> Proposal:
    base = dict(
        id=pid,
        title=f"improve {pid}",
        description="\x1b[31mred\x1b[0m [b]markup[/b] kept raw",
        component="checkout",
        tenant="meetmind-prod",
        kind="tuning",
        impact=PredictedImpact("quantile(0.95, latency_seconds) * 1000", -0.2, "lower"),
        quality_score=quality,
        risk=0.03,
        created_at=1000.5,
        agent_status="proposed",
    )
    base.update(kw)
    return Proposal(**base)  # type: ignore[arg-type]


def item(pid: str, status: S = S.PROPOSED, quality: float = 0.9, env: str = "production") -> Improvement:
    return Improvement(environment=env, proposal=proposal(pid, quality), status=status, updated_at=1.0)


def test_a_full_record_round_trips(store: Store) -> None:
    full = replace(
        item("a"),
        status=S.MONITORING,
        reviewer="alice",
        reason="looks right",
        override=True,
        decided_at=10.0,
        deployed_at=11.0,
        monitor_until=1811.0,
        metric="quantile(0.95, latency_seconds) * 1000",
        better="higher",
        baseline=120.5,
        observed=float("nan"),
        samples=(Sample(12.0, 119.0), Sample(13.0, None)),
        evidence="p95 119 vs 120.5",
        error="",
        attempts=2,
        next_attempt_at=99.5,
    )
    with store.transaction() as tx:
        tx.insert_improvements([full])
    with store.read() as tx:
        got = tx.get_improvement("production", "a")
    assert got is not None
    assert repr(got) == repr(full)  # repr: NaN != NaN but prints the same
    assert isinstance(got.samples, tuple) and got.status is S.MONITORING


def test_list_is_in_the_panes_order_from_one_query(store: Store) -> None:
    items = [
        item("p-low", S.PROPOSED, 0.5),
        item("p-high", S.PROPOSED, 0.99),
        item("m", S.MONITORING, 0.1),
        item("r", S.REJECTED, 1.0),
        item("k", S.KEPT, 0.7),
        item("f", S.FAILED, 0.2),
        item("other-env", S.MONITORING, 0.9, env="staging"),
    ]
    with store.transaction() as tx:
        tx.insert_improvements(items)
    with store.read() as tx:
        prod = tx.list_improvements("production")
        everything = tx.list_improvements()
        live = tx.list_improvements("production", [S.MONITORING, S.DEPLOYING])
        none = tx.list_improvements("production", [])
    assert [i.id for i in prod] == ["m", "f", "p-high", "p-low", "k", "r"]
    expected = sorted(everything, key=lambda i: (SORT_ORDER[i.status], -i.proposal.quality_score, i.id))
    assert [i.key for i in everything] == [i.key for i in expected]
    assert [i.id for i in live] == ["m"]
    assert none == []


def test_duplicate_ids_are_refused_and_nothing_is_written(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_improvements([item("a")])
    with pytest.raises(StoreError, match="production/a already exists"), store.transaction() as tx:
        tx.insert_improvements([item("b"), item("a")])
    with pytest.raises(StoreError, match="production/c already exists"), store.transaction() as tx:
        tx.insert_improvements([item("c"), item("c")])
    with store.read() as tx:
        assert [i.id for i in tx.list_improvements()] == ["a"]
    # The same id in another environment is another improvement.
    with store.transaction() as tx:
        tx.insert_improvements([item("a", env="staging")])


def test_update_is_compare_and_set(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_improvements([item("a")])
    with store.read() as tx:
        first = tx.get_improvement("production", "a")
    assert first is not None and first.version == 0
    with store.transaction() as tx:
        assert tx.update_improvement(replace(first, status=S.APPROVED, reviewer="alice"), 0)
    # A second writer that read version 0 loses and writes nothing.
    with store.transaction() as tx:
        assert not tx.update_improvement(replace(first, status=S.REJECTED, reviewer="bob"), 0)
    with store.read() as tx:
        now = tx.get_improvement("production", "a")
    assert now is not None and now.status is S.APPROVED and now.reviewer == "alice" and now.version == 1


def test_update_of_a_missing_item_writes_nothing(store: Store) -> None:
    with store.transaction() as tx:
        assert not tx.update_improvement(item("ghost"), 0)
        assert tx.get_improvement("production", "ghost") is None


def test_a_stored_body_without_newer_fields_still_loads(store: Store, store_url: str) -> None:
    with store.transaction() as tx:
        tx.insert_improvements([item("a")])
    # A body as an older version wrote it, written behind the store's back.
    raw_execute(
        store_url,
        "UPDATE improvements SET body = ? WHERE id = 'a'",
        '{"proposal":{"id":"a","title":"t","description":"","component":"","tenant":"","kind":"tuning",'
        '"impact":{"metric":"","expected_change":0},"quality_score":0.5,"risk":0.1},"unknown_later":1}',
    )
    with store.read() as tx:
        got = tx.get_improvement("production", "a")
    assert got is not None and got.proposal.title == "t" and got.samples == () and got.baseline is None
