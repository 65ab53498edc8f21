"""The demo service's tuning API: what deployed improvements do to every answer, composed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsconsole.demo.service import DemoService, Tuning, compose

tunings = st.builds(
    Tuning,
    latency_factor=st.floats(0, 3),
    latency_offset=st.floats(-0.05, 0.5),
    error_rate=st.floats(0, 1),
)


@given(st.lists(tunings, max_size=6))
def test_composition_is_order_free_and_stays_in_range(ts: list[Tuning]) -> None:
    a, b = compose(ts), compose(reversed(ts))
    assert a.latency_factor == pytest.approx(b.latency_factor)
    assert a.latency_offset == pytest.approx(b.latency_offset)
    assert a.error_rate == pytest.approx(b.error_rate)
    assert 0.0 <= a.error_rate <= 1.0


def test_composition_rules() -> None:
    assert compose([]) == Tuning()
    c = compose([Tuning(0.5, 0.01, 0.1), Tuning(2.0, 0.02, 0.1)])
    assert c.latency_factor == 1.0 and c.latency_offset == pytest.approx(0.03)
    assert c.error_rate == pytest.approx(0.19)  # independent chances, not 0.2


@pytest.mark.parametrize(
    "bad", [dict(latency_factor=-1), dict(error_rate=1.5), dict(latency_offset=float("nan"))]
)
def test_impossible_tunings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Tuning(**bad)


def test_set_twice_is_once_and_clear_undoes_exactly_one(tmp_path: Path) -> None:
    s = DemoService(tmp_path / "flags.json")
    s.set_tuning("a", Tuning(latency_factor=0.5))
    s.set_tuning("a", Tuning(latency_factor=0.5))
    s.set_tuning("b", Tuning(error_rate=0.2))
    assert (s.tuning.latency_factor, s.tuning.error_rate) == (0.5, pytest.approx(0.2))
    assert s.clear_tuning("a") and not s.clear_tuning("a")
    assert s.tuning.latency_factor == 1.0 and list(s.tunings()) == ["b"]


def test_a_tuning_changes_every_answer(tmp_path: Path) -> None:
    s = DemoService(tmp_path / "flags.json", seed=1)  # no flag file: everyone on v1
    s.set_tuning("fail", Tuning(error_rate=1.0))
    status, version, body = s.answer("u1", time.perf_counter())
    assert (status, version) == (500, "v1") and "improvement" in body["error"]
    s.clear_tuning("fail")
    s.set_tuning("slow", Tuning(latency_offset=0.05))
    started = time.perf_counter()
    assert s.answer("u2", started)[0] == 200
    assert time.perf_counter() - started >= 0.05
    totals = s.totals()
    assert totals.requests == 2 and totals.errors == 1 and sum(totals.buckets) == 2
