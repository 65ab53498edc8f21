"""The console's own threshold alarms: pending -> firing after `for_`, data gaps, glob matching."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from opsconsole.engine.alarms import AlarmMemory, AlarmStatus, evaluate_rule, matching_firing
from opsconsole.engine.model import AlarmRule, Observation

LATENCY = AlarmRule(name="api-latency", environment="prod", query="p95_ms", max=500, for_=60, severity="page")


def feed(rule: AlarmRule, *points: tuple[float, float | None]) -> list[AlarmStatus]:
    """(time, value) points; value None means the source gave no data."""
    memory: AlarmMemory | None = None
    out = []
    for now, value in points:
        obs = Observation(value=value, error=None if value is not None else "timeout after 2s", at=now)
        status, memory = evaluate_rule(rule, obs, memory, now)
        out.append(status)
    return out


def test_ok_within_limits():
    (s,) = feed(LATENCY, (0, 120))
    assert (s.state, s.since, s.value) == ("ok", 0, 120)
    assert (s.name, s.environment, s.severity) == ("api-latency", "prod", "page")
    assert s.reason == "p95_ms 120 <= 500"


def test_pending_then_firing_after_for():
    states = feed(LATENCY, (0, 600), (30, 700), (59, 650), (60, 620), (90, 610))
    assert [s.state for s in states] == ["pending", "pending", "pending", "firing", "firing"]
    assert states[1].reason == "p95_ms 700 > 500 for 30s of 1m"
    assert states[0].since == 0 and states[2].since == 0
    # `since` is when the alarm began firing, not when the breach began.
    assert states[3].since == 60 and states[4].since == 60
    assert states[4].reason == "p95_ms 610 > 500 for 1m30s"


def test_recovery_clears_and_restarts_the_timer():
    states = feed(LATENCY, (0, 600), (30, 100), (40, 600), (90, 600), (100, 600))
    assert [s.state for s in states] == ["pending", "ok", "pending", "pending", "firing"]
    assert states[1].since == 30 and states[4].since == 100


def test_zero_for_fires_at_once():
    rule = AlarmRule(name="r", environment="e", query="q", max=1)
    (s,) = feed(rule, (5, 2))
    assert s.state == "firing" and s.since == 5


def test_min_breach():
    rule = AlarmRule(name="low-traffic", environment="e", query="rps", min=10)
    (s,) = feed(rule, (0, 3))
    assert s.state == "firing" and s.reason == "rps 3 < 10 for 0s"


def test_no_data_is_unknown():
    states = feed(LATENCY, (0, 100), (10, None), (20, None))
    assert [s.state for s in states] == ["ok", "unknown", "unknown"]
    assert states[2].since == 10 and states[2].value is None
    assert states[1].reason == "no data (timeout after 2s)"


def test_data_gap_keeps_a_firing_alarm_firing():
    states = feed(LATENCY, (0, 900), (60, 900), (70, None), (80, 900), (90, 100))
    assert [s.state for s in states] == ["pending", "firing", "firing", "firing", "ok"]
    assert states[2].since == 60 and "still firing" in states[2].reason
    assert states[3].since == 60


def test_data_gap_restarts_a_pending_breach():
    states = feed(LATENCY, (0, 900), (50, None), (60, 900), (100, 900), (120, 900))
    assert [s.state for s in states] == ["pending", "unknown", "pending", "pending", "firing"]


def test_error_with_value_is_still_no_data():
    status, _ = evaluate_rule(LATENCY, Observation(value=900, error="garbage"), None, 0)
    assert status.state == "unknown"


def test_matching_firing_globs_case_sensitive():
    def status(name: str, state: str) -> AlarmStatus:
        return AlarmStatus(name, "prod", state, "warning", 0.0, 1.0, "")

    statuses = [
        status("api-latency", "firing"),
        status("api-errors", "pending"),
        status("API-down", "firing"),
        status("db-disk", "firing"),
    ]
    assert [s.name for s in matching_firing(statuses, ["api-*"])] == ["api-latency"]
    assert [s.name for s in matching_firing(statuses, ["api-*", "db-?isk"])] == ["api-latency", "db-disk"]
    assert matching_firing(statuses, []) == []
    assert len(matching_firing(statuses, ["*"])) == 3


@settings(max_examples=200, deadline=None)
@given(
    for_=st.sampled_from([0.0, 5.0, 30.0, 60.0]),
    points=st.lists(
        st.tuples(st.floats(0.5, 40), st.none() | st.sampled_from([100.0, 600.0])),
        max_size=25,
    ),
)
def test_property_fires_only_after_for_seconds_of_continuous_breach(for_, points):
    rule = AlarmRule(name="r", environment="e", query="q", max=500, for_=for_)
    memory: AlarmMemory | None = None
    now, breach_start, was_firing = 0.0, None, False
    for gap, value in points:
        now += gap
        obs = Observation(value=value, error=None if value is not None else "down")
        status, memory = evaluate_rule(rule, obs, memory, now)
        breaching = value is not None and value > 500
        if breaching:
            breach_start = now if breach_start is None else breach_start
        elif value is not None or not was_firing:
            breach_start = None  # recovered, or a gap interrupted a breach that had not fired yet
        if status.state == "firing" and not was_firing:
            assert breaching and breach_start is not None and now - breach_start >= for_
        if breaching and breach_start is not None and now - breach_start >= for_:
            assert status.state == "firing"
        if value is not None and not breaching:
            assert status.state == "ok"
        was_firing = status.state == "firing"
