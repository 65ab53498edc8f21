"""The pure gate evaluator and the value/duration formatting its reasons use."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsconsole.engine.gates import blocking, evaluate, worst
from opsconsole.engine.model import GateMemory, GateSpec, GateVerdict, Observation, Verdict
from opsconsole.engine.units import format_duration, format_value

FRESH = GateMemory()
ERROR_RATE = GateSpec(
    kind="metric", name="error_rate", query="rate(errors)", max=0.01, unit="%", failure_limit=2
)


def run(spec: GateSpec, *observations: Observation, start: float = 1000.0, step: float = 10.0):
    """Feed observations one check apart; return every verdict and the final memory."""
    memory, verdicts = FRESH, []
    for i, obs in enumerate(observations):
        verdict, memory = evaluate(spec, obs, memory, start + i * step)
        verdicts.append(verdict)
    return verdicts, memory


def seen(value: float | None = None, *, error: str | None = None, source: str = "prod", detail: str = ""):
    return Observation(value=value, error=error, source=source, at=0.0, detail=detail)


def verdict(status: Verdict, gate: str = "g") -> GateVerdict:
    return GateVerdict(gate=gate, kind="metric", status=status, reason="r")


# --------------------------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.023, "%", "2.3%"),
        (0.01, "%", "1.0%"),
        (0.0005, "%", "0.05%"),
        (0.002, "%", "0.2%"),
        (0.0, "%", "0%"),
        (612.0, "ms", "612 ms"),
        (612.345, "ms", "612.3 ms"),
        (72.0, "s", "1m12s"),
        (3.0, "", "3"),
        (1.23456, "", "1.235"),
        (12345.6, "", "12346"),
        (250000.0, "", "250000"),
        (0.001234, "", "0.001234"),
        (-2.0, "", "-2"),
        (5.0, "req/s", "5 req/s"),
        (None, "%", "n/a"),
    ],
)
def test_format_value(value, unit, text):
    assert format_value(value, unit) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.01, "0s"),
        (0.4, "0.4s"),
        (45, "45s"),
        (60, "1m"),
        (192, "3m12s"),
        (7200, "2h"),
        (3659, "1h"),
        (100800, "1d4h"),
        (86400, "1d"),
        (-5, "-5s"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


# --------------------------------------------------------------------------------------------- metric


def test_metric_pass_names_value_and_threshold():
    (v,), memory = run(ERROR_RATE, seen(0.002))
    assert v.status is Verdict.PASS
    assert v.reason == "error_rate 0.2% <= 1.0%"
    assert v.threshold == "<= 1.0%"
    assert (v.gate, v.kind, v.value, v.source, v.at) == ("error_rate", "metric", 0.002, "prod", 1000.0)
    assert memory.failures == 0 and memory.last_checked == 1000.0


def test_metric_failures_count_up_to_breach():
    (first, second), memory = run(ERROR_RATE, seen(0.023), seen(0.023))
    assert first.status is Verdict.FAIL and not first.breached
    assert first.reason == "error_rate 2.3% > 1.0% for 1 of 2 checks"
    assert second.reason == "error_rate 2.3% > 1.0% for 2 of 2 checks"
    assert (second.failures, second.failure_limit, second.breached) == (2, 2, True)
    assert memory.failures == 2


def test_metric_pass_resets_failures():
    verdicts, memory = run(ERROR_RATE, seen(0.05), seen(0.001), seen(0.05))
    assert [v.failures for v in verdicts] == [1, 0, 1]
    assert not any(v.breached for v in verdicts)


def test_metric_failures_beyond_limit_read_sensibly():
    verdicts, _ = run(ERROR_RATE, seen(0.05), seen(0.05), seen(0.05))
    assert verdicts[-1].reason == "error_rate 5.0% > 1.0% for 3 checks (limit 2)"


def test_metric_ms_max():
    spec = GateSpec(kind="metric", name="p95_ms", max=500, unit="ms", failure_limit=2)
    (v,), _ = run(spec, seen(612))
    assert v.reason == "p95_ms 612 ms > 500 ms for 1 of 2 checks"


def test_metric_min():
    spec = GateSpec(kind="metric", name="throughput", min=10)
    (low, ok), _ = run(spec, seen(4), seen(12))
    assert low.status is Verdict.FAIL and low.reason == "throughput 4 < 10 for 1 of 1 checks"
    assert low.threshold == ">= 10" and low.breached
    assert ok.status is Verdict.PASS and ok.reason == "throughput 12 >= 10"


def test_metric_boundaries_are_inclusive():
    spec = GateSpec(kind="metric", name="x", min=1, max=2)
    verdicts, _ = run(spec, seen(1), seen(2))
    assert [v.status for v in verdicts] == [Verdict.PASS, Verdict.PASS]
    assert verdicts[0].threshold == ">= 1, <= 2"


def test_metric_relative_captures_baseline_then_compares():
    spec = GateSpec(kind="metric", name="p95_ms", max_increase=0.10, unit="ms")
    (first, within, over), memory = run(spec, seen(120), seen(130), seen(140))
    assert first.status is Verdict.PASS and first.reason == "baseline captured: 120 ms"
    assert within.status is Verdict.PASS and within.reason == "p95_ms 130 ms <= 1.10x baseline 120 ms"
    assert over.status is Verdict.FAIL
    assert over.reason == "p95_ms 140 ms > 132 ms (baseline 120 ms +10%) for 1 of 1 checks"
    assert over.threshold == "<= 1.10x baseline 120 ms"
    assert memory.baseline == 120


def test_metric_relative_keeps_a_baseline_from_memory():
    spec = GateSpec(kind="metric", name="p95_ms", max_increase=0.5, unit="ms")
    v, memory = evaluate(spec, seen(200), GateMemory(baseline=100), 5.0)
    assert v.status is Verdict.FAIL and memory.baseline == 100
    assert "150 ms" in v.reason and "+50%" in v.reason


def test_metric_baseline_survives_a_data_gap():
    spec = GateSpec(kind="metric", name="p95_ms", max_increase=0.1, unit="ms")
    _, memory = run(spec, seen(100), seen(error="timeout"), seen(105))
    assert memory.baseline == 100


def test_metric_without_threshold_is_rejected():
    spec = GateSpec(kind="metric", name="nothing", where="plans.yaml:12")
    with pytest.raises(ValueError, match=r"nothing \(plans.yaml:12\)"):
        evaluate(spec, seen(1), FRESH, 0.0)


def test_nan_is_missing_data_not_a_pass():
    (v,), _ = run(ERROR_RATE, seen(float("nan")))
    assert v.status is Verdict.UNKNOWN and "NaN" in v.reason


# --------------------------------------------------------------------------------------------- missing data


def test_missing_hold_is_unknown_and_counts():
    spec = GateSpec(kind="metric", name="e", max=1, inconclusive_limit=3, escalate_after=25)
    verdicts, memory = run(spec, seen(error="timeout after 2s"), seen(error="x"), seen(error="x"), seen(None))
    assert all(v.status is Verdict.UNKNOWN for v in verdicts)
    assert verdicts[0].reason == (
        "no data (timeout after 2s); on_missing: hold, without data since 00:16:40 UTC, "
        "1 of 3 checks before inconclusive"
    )
    assert verdicts[3].reason.endswith("since 00:16:40 UTC, 3 of 3 checks before inconclusive")
    assert [v.inconclusive for v in verdicts] == [False, False, True, True]
    # unknown since t=1000; escalate once 25 s have passed (t=1030).
    assert [v.escalate for v in verdicts] == [False, False, False, True]
    assert memory.unknowns == 4 and memory.unknown_since == 1000.0
    assert verdicts[0].value is None


def test_missing_hold_leaves_failures_alone_and_data_resets_unknowns():
    verdicts, memory = run(ERROR_RATE, seen(0.5), seen(error="refused"), seen(0.5), seen(0.001))
    assert [v.failures for v in verdicts] == [1, 1, 2, 0]
    assert verdicts[1].status is Verdict.UNKNOWN
    assert memory.unknowns == 0 and memory.unknown_since is None


def test_missing_fail_counts_as_failure():
    spec = GateSpec(kind="health", name="h", url="http://x/health", on_missing="fail", failure_limit=2)
    (first, second), _ = run(spec, seen(error="refused"), seen(error="refused"))
    assert (
        first.status is Verdict.FAIL and first.reason == "no data (refused); on_missing: fail, 1 of 2 checks"
    )
    assert second.breached and not second.inconclusive


def test_missing_pass_passes_and_says_so():
    spec = GateSpec(kind="metric", name="e", max=1, on_missing="pass")
    (v,), _ = run(spec, seen(error="timeout"))
    assert v.status is Verdict.PASS
    assert v.reason == "no data (timeout); on_missing: pass"


def test_unknown_on_missing_is_rejected():
    spec = GateSpec(kind="metric", name="e", max=1, on_missing="skip")
    with pytest.raises(ValueError, match="on_missing"):
        evaluate(spec, seen(error="x"), FRESH, 0.0)


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="backup"):
        evaluate(GateSpec(kind="backup", name="b"), seen(1), FRESH, 0.0)


# --------------------------------------------------------------------------------------------- other kinds


def test_health():
    spec = GateSpec(kind="health", name="api", url="http://api/health", body_contains="ok")
    src = "http://api/health"
    bad, _ = evaluate(spec, seen(503, source=src, detail="down"), FRESH, 0.0)
    assert bad.status is Verdict.FAIL
    assert bad.reason == "HTTP 503 from http://api/health, expected 200"
    lacks, _ = evaluate(spec, seen(200, source=src, detail="degraded"), FRESH, 0.0)
    assert lacks.status is Verdict.FAIL and "body lacks 'ok'" in lacks.reason
    good, _ = evaluate(spec, seen(200, source=src, detail='{"status": "ok"}'), FRESH, 0.0)
    assert good.status is Verdict.PASS and good.threshold == "HTTP 200, body contains 'ok'"


def test_health_other_expected_status_and_count_in_reason():
    spec = GateSpec(kind="health", name="api", url="http://a", expect_status=204, failure_limit=3)
    (v,), _ = run(spec, seen(200, source="http://a"))
    assert v.reason == "HTTP 200 from http://a, expected 204 (1 of 3 checks)"


def test_smoke():
    spec = GateSpec(kind="smoke", name="s", command=("./check.sh",))
    fail, _ = evaluate(spec, seen(2, source="./check.sh", detail="step 1 ok\nstep 2: refused\n"), FRESH, 0.0)
    assert fail.status is Verdict.FAIL
    assert fail.reason == "exit 2 from ./check.sh: step 2: refused"
    ok, _ = evaluate(spec, seen(0, source="./check.sh", detail="all good"), FRESH, 0.0)
    assert ok.status is Verdict.PASS and ok.threshold == "exit 0"


def test_soak_is_pending_then_passes_never_fails():
    spec = GateSpec(kind="soak", name="soak", duration=600)
    pending, _ = evaluate(spec, seen(72, source="clock"), FRESH, 0.0)
    assert pending.status is Verdict.PENDING
    assert pending.reason == "soak 1m12s of 10m (8m48s left)"
    done, memory = evaluate(spec, seen(600, source="clock"), FRESH, 0.0)
    assert done.status is Verdict.PASS and memory.failures == 0


def test_soak_without_duration_is_rejected():
    with pytest.raises(ValueError, match="duration"):
        evaluate(GateSpec(kind="soak", name="s"), seen(1), FRESH, 0.0)


def test_alarms():
    spec = GateSpec(kind="alarms", name="quiet", none_firing=("api-*",))
    two, _ = evaluate(spec, seen(2, source="alarms", detail="A, B"), FRESH, 0.0)
    assert two.status is Verdict.FAIL and two.reason == "2 alarms firing: A, B"
    one, _ = evaluate(spec, seen(1, source="alarms", detail="A"), FRESH, 0.0)
    assert one.reason == "1 alarm firing: A"
    none, _ = evaluate(spec, seen(0, source="alarms"), FRESH, 0.0)
    assert none.status is Verdict.PASS and none.threshold == "none firing: api-*"


def test_checklist():
    spec = GateSpec(kind="checklist", name="c", items=("A", "B", "C", "X", "Y"))
    partial, _ = evaluate(spec, seen(3, detail="X, Y"), FRESH, 0.0)
    assert partial.status is Verdict.PENDING
    assert partial.reason == "3 of 5 ticked; missing: X, Y"
    done, _ = evaluate(spec, seen(5), FRESH, 0.0)
    assert done.status is Verdict.PASS and done.reason == "5 of 5 ticked"


def test_approval():
    two = GateSpec(kind="approval", name="a", min=2)
    v, _ = evaluate(two, seen(1), FRESH, 0.0)
    assert v.status is Verdict.PENDING and v.reason == "1 of 2 approvals"
    v, _ = evaluate(two, seen(2), FRESH, 0.0)
    assert v.status is Verdict.PASS
    v, _ = evaluate(GateSpec(kind="approval", name="a"), seen(0), FRESH, 0.0)
    assert v.status is Verdict.PENDING and v.reason == "0 of 1 approval"


def test_pending_breaks_a_failure_streak():
    # A non-metric kind cannot both fail and pend, so drive memory directly.
    spec = GateSpec(kind="checklist", name="c", items=("A",))
    v, memory = evaluate(spec, seen(0), GateMemory(failures=3), 0.0)
    assert v.status is Verdict.PENDING and memory.failures == 0 and not v.breached


def test_remote_text_cannot_break_the_line():
    spec = GateSpec(kind="smoke", name="s", command=("x",))
    v, _ = evaluate(spec, seen(1, source="x", detail="boom\x1b[31m red\r\n"), FRESH, 0.0)
    assert v.reason.isprintable() and "\n" not in v.reason
    v, _ = evaluate(ERROR_RATE, seen(error="line one\nline two" + "z" * 500), FRESH, 0.0)
    assert v.reason.isprintable() and len(v.reason) < 300


# --------------------------------------------------------------------------------------------- worst / blocking


def test_worst_orders_fail_unknown_pending_pass():
    assert worst([]) is Verdict.PASS
    assert worst([verdict(Verdict.PASS), verdict(Verdict.PENDING)]) is Verdict.PENDING
    assert worst([verdict(Verdict.PENDING), verdict(Verdict.UNKNOWN)]) is Verdict.UNKNOWN
    assert worst([verdict(Verdict.UNKNOWN), verdict(Verdict.FAIL), verdict(Verdict.PASS)]) is Verdict.FAIL


def test_blocking_is_first_of_the_worst():
    vs = [
        verdict(Verdict.PASS, "a"),
        verdict(Verdict.PENDING, "b"),
        verdict(Verdict.FAIL, "c"),
        verdict(Verdict.FAIL, "d"),
        verdict(Verdict.UNKNOWN, "e"),
    ]
    found = blocking(vs)
    assert found is not None and found.gate == "c"
    assert blocking([verdict(Verdict.PASS)]) is None
    pend = blocking([verdict(Verdict.PENDING, "p"), verdict(Verdict.UNKNOWN, "u")])
    assert pend is not None and pend.gate == "u"


def test_evaluates_thousands_per_second():
    # The runner's budget is 2,000/s on one core; leave a wide margin for a loaded test machine.
    obs = seen(0.05)
    start = time.perf_counter()
    memory = FRESH
    for i in range(2000):
        _, memory = evaluate(ERROR_RATE, obs, memory, float(i))
    assert time.perf_counter() - start < 1.0


# --------------------------------------------------------------------------------------------- properties

KINDS = {
    "metric": GateSpec(kind="metric", name="m", max=1.0, unit="%"),
    "health": GateSpec(kind="health", name="h", url="http://h", body_contains="ok"),
    "smoke": GateSpec(kind="smoke", name="s", command=("true",)),
    "soak": GateSpec(kind="soak", name="k", duration=60),
    "alarms": GateSpec(kind="alarms", name="a", none_firing=("*",)),
    "checklist": GateSpec(kind="checklist", name="c", items=("x", "y")),
    "approval": GateSpec(kind="approval", name="p", min=2),
}
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
memories = st.builds(
    GateMemory,
    failures=st.integers(0, 5),
    unknowns=st.integers(0, 5),
    unknown_since=st.none() | st.floats(0, 100),
    baseline=st.none() | finite,
)
missing = st.builds(Observation, value=st.none(), error=st.none() | st.text(max_size=30)) | st.builds(
    Observation, value=finite | st.just(float("nan")), error=st.text(max_size=30)
)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(sorted(KINDS)),
    on_missing=st.sampled_from(["hold", "fail", "pass"]),
    obs=missing,
    memory=memories,
    now=st.floats(100, 1e6),
)
def test_property_never_pass_on_missing_data_unless_configured(kind, on_missing, obs, memory, now):
    spec = replace(KINDS[kind], on_missing=on_missing)
    v, _ = evaluate(spec, obs, memory, now)
    assert (v.status is Verdict.PASS) == (on_missing == "pass")


@settings(max_examples=200, deadline=None)
@given(
    checks=st.lists(st.sampled_from(["pass", "fail", "missing"]), max_size=20),
    on_missing=st.sampled_from(["hold", "fail", "pass"]),
    limit=st.integers(1, 4),
)
def test_property_failures_count_consecutive_failing_checks(checks, on_missing, limit):
    spec = GateSpec(kind="metric", name="m", max=1.0, on_missing=on_missing, failure_limit=limit)
    obs = {"pass": seen(0.5), "fail": seen(2.0), "missing": seen(error="down")}
    memory, expected = FRESH, 0
    for i, check in enumerate(checks):
        v, memory = evaluate(spec, obs[check], memory, float(i))
        failing = check == "fail" or (check == "missing" and on_missing == "fail")
        passing = check == "pass" or (check == "missing" and on_missing == "pass")
        if failing:
            expected += 1
        elif passing:
            expected = 0
        assert v.failures == memory.failures == expected
        assert v.breached == (expected >= limit)
        assert (v.status is Verdict.FAIL) == failing


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(sorted(KINDS)),
    name=st.text(max_size=20),
    value=st.none() | finite,
    error=st.none() | st.text(max_size=40),
    source=st.text(max_size=20),
    detail=st.text(max_size=60),
)
def test_property_reason_is_one_line(kind, name, value, error, source, detail):
    spec = replace(KINDS[kind], name=name)
    obs = Observation(value=value, error=error, source=source, detail=detail)
    v, _ = evaluate(spec, obs, FRESH, 50.0)
    assert len(v.reason.splitlines()) == 1
    assert v.reason.isprintable()
