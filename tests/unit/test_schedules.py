"""Scheduled flag changes, the pure part: reading times, building ramps, checking steps, what is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsconsole.engine import schedules
from opsconsole.engine.model import FlagDef, FlagSchedule, ScheduleState, ScheduleStep

PCT = FlagDef("new_checkout", type="percentage", default=0)
BOOL = FlagDef("dark_mode")


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


NOW = ts("2026-10-01T13:00:00+00:00")


def schedule(steps: list[tuple[float, int]], next_index: int = 0, state: str = "pending") -> FlagSchedule:
    return FlagSchedule(
        id=1,
        environment="production",
        flag="new_checkout",
        steps=tuple(ScheduleStep(at, v) for at, v in steps),
        next_index=next_index,
        state=ScheduleState(state),
        created_by="alice",
        created_origin="local",
        reason="ramp",
        created_at=NOW,
        updated_at=NOW,
    )


# ------------------------------------------------------------------------------------ parse_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("14:00", "2026-10-01T14:00:00+00:00"),  # later today
        ("13:00", "2026-10-02T13:00:00+00:00"),  # now exactly: the next occurrence is tomorrow
        ("09:30", "2026-10-02T09:30:00+00:00"),  # passed today: tomorrow
        ("13:00:01", "2026-10-01T13:00:01+00:00"),
        ("+30m", "2026-10-01T13:30:00+00:00"),
        ("+1h30m", "2026-10-01T14:30:00+00:00"),
        ("2026-10-03T08:00", "2026-10-03T08:00:00+00:00"),  # no offset: the given zone
        ("2026-10-03T08:00Z", "2026-10-03T08:00:00+00:00"),
        ("2026-10-03T10:00+02:00", "2026-10-03T08:00:00+00:00"),
        ("2026-10-03 08:00", "2026-10-03T08:00:00+00:00"),
    ],
)
def test_parse_time_reads_clock_times_offsets_and_iso(text: str, expected: str) -> None:
    assert schedules.parse_time(text, NOW, UTC) == ts(expected)


def test_clock_time_is_local_to_the_given_zone() -> None:
    plus2 = timezone(timedelta(hours=2))  # 13:00Z is 15:00 here: 14:00 has passed today
    assert schedules.parse_time("14:00", NOW, plus2) == ts("2026-10-02T14:00:00+02:00")
    assert schedules.parse_time("16:00", NOW, plus2) == ts("2026-10-01T16:00:00+02:00")


def test_clock_time_keeps_the_wall_clock_across_a_daylight_saving_change() -> None:
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time-zone database")
    now = ts("2026-10-24T15:00:00+02:00")  # summer time; the clocks go back in the night
    assert schedules.parse_time("14:00", now, berlin) == ts("2026-10-25T14:00:00+01:00")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-09-30T12:00Z", "in the past"),
        ("2026-10-01T13:00Z", "in the past"),  # now is not the future either
        ("+0s", "not in the future"),
        ("+30", "add a unit"),
        ("+soon", "expected a duration"),
        ("25:00", "not a time of day"),
        ("12:61", "not a time of day"),
        ("tomorrow", "14:00"),  # the message shows what would be understood
        ("", "14:00"),
    ],
)
def test_parse_time_refuses_what_it_cannot_place_in_the_future(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        schedules.parse_time(text, NOW, UTC)


# ------------------------------------------------------------------------------------ ramps


def test_ramp_from_zero_to_hundred_over_two_hours_in_four_steps() -> None:
    steps = schedules.ramp(NOW, 0, 100, 7200, 4)
    assert [(s.at - NOW, s.value) for s in steps] == [
        (0, 0),
        (1800, 25),
        (3600, 50),
        (5400, 75),
        (7200, 100),
    ]


def test_ramp_rounds_towards_the_start_and_drops_steps_that_change_nothing() -> None:
    # Never ahead of the straight line: 12.5 -> 12 going up, 87.5 -> 88 going down.
    assert [s.value for s in schedules.ramp(NOW, 100, 0, 60, 8)] == [100, 88, 75, 63, 50, 38, 25, 13, 0]
    assert [s.value for s in schedules.ramp(NOW, 0, 25, 60, 2)] == [0, 12, 25]
    small = schedules.ramp(NOW, 0, 3, 100, 10)
    assert [(s.at - NOW, s.value) for s in small] == [(0, 0), (40, 1), (70, 2), (100, 3)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 100, 3600, 0), "at least 1"),
        ((0, 100, 3600, -2), "at least 1"),
        ((0, 100, 3600, schedules.MAX_STEPS + 1), "at most"),
        ((0, 100, 0, 4), "longer than 0s"),
        ((40, 40, 3600, 4), "nothing to ramp"),
    ],
)
def test_ramp_refuses_nonsense(args: tuple[int, int, float, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        schedules.ramp(NOW, *args)


def test_ramp_for_a_flag_checks_its_type_and_values() -> None:
    assert [s.value for s in schedules.ramp_for(PCT, NOW, "0", "100%", 60, 2)] == [0, 50, 100]
    with pytest.raises(ValueError, match="dark_mode is a boolean flag: only percentage flags ramp"):
        schedules.ramp_for(BOOL, NOW, "false", "true", 60, 2)
    with pytest.raises(ValueError, match="new_checkout: percentage must be an integer 0..100, got '150'"):
        schedules.ramp_for(PCT, NOW, "0", "150", 60, 2)


@settings(max_examples=60, deadline=None)
@given(
    a=st.integers(0, 100),
    b=st.integers(0, 100),
    over=st.floats(1, 7 * 86400),
    n=st.integers(1, 200),
)
def test_ramp_moves_one_way_in_time_order_from_start_value_to_end_value(
    a: int, b: int, over: float, n: int
) -> None:
    if a == b:
        return
    steps = schedules.ramp(NOW, a, b, over, n)
    values = [s.value for s in steps]
    times = [s.at for s in steps]
    assert values[0] == a and values[-1] == b
    assert times[0] == NOW and times[-1] == pytest.approx(NOW + over)
    assert all(t1 < t2 for t1, t2 in zip(times, times[1:], strict=False))
    step = 1 if b > a else -1
    assert all((v2 - v1) * step > 0 for v1, v2 in zip(values, values[1:], strict=False))
    assert len(steps) <= n + 1


# ------------------------------------------------------------------------------------ validation


def test_validate_steps_normalises_values_for_the_flag_type() -> None:
    out = schedules.validate_steps(BOOL, [(NOW + 60, "true"), (NOW + 120, 0)], NOW)
    assert out == (ScheduleStep(NOW + 60, True), ScheduleStep(NOW + 120, False))
    out = schedules.validate_steps(PCT, [ScheduleStep(NOW, "25%")], NOW + schedules.PAST_GRACE)
    assert out == (ScheduleStep(NOW, 25),)


@pytest.mark.parametrize(
    ("flag", "steps", "message"),
    [
        (PCT, [], "at least one step"),
        (PCT, [(NOW + 60, 101)], "step 1: new_checkout: percentage must be an integer 0..100, got 101"),
        (PCT, [(NOW + 60, -1)], "0..100"),
        (BOOL, [(NOW + 60, 50)], "step 1: dark_mode: expected true or false"),
        (PCT, [(NOW + 60, 10), (NOW + 60, 20)], "step 2 at .* is not after step 1"),
        (PCT, [(NOW - 60, 10)], "step 1 at 2026-10-01T12:59:00Z is in the past"),
        (PCT, [(float("nan"), 10)], "not a point in time"),
        (PCT, [("14:00", 10)], "not a point in time"),
    ],
)
def test_validate_steps_says_which_step_is_wrong(flag: FlagDef, steps: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        schedules.validate_steps(flag, steps, NOW)


# ------------------------------------------------------------------------------------ what is due


def test_due_index_is_the_latest_step_due_and_none_when_nothing_is() -> None:
    s = schedule([(NOW, 0), (NOW + 60, 50), (NOW + 120, 100)], next_index=1)
    assert schedules.due_index(s, NOW + 59) is None
    assert schedules.due_index(s, NOW + 60) == 1
    assert schedules.due_index(s, NOW + 500) == 2  # the engine was down: catch up to the latest
    assert schedules.due_index(schedule([(NOW, 0)], state="canceled"), NOW + 10) is None
    assert schedules.due_index(schedule([(NOW, 0)], next_index=1, state="done"), NOW + 10) is None


def test_remaining_time_until_the_next_step() -> None:
    s = schedule([(NOW, 0), (NOW + 90, 50)], next_index=1)
    assert schedules.remaining(s, NOW) == 90
    assert schedules.remaining(s, NOW + 100) == 0  # overdue: due now, never negative
    assert schedules.remaining(schedule([(NOW, 0)], state="stopped"), NOW) is None
    assert s.next_step == ScheduleStep(NOW + 90, 50)


def test_plan_text_reads_like_the_flag() -> None:
    steps = schedules.ramp(NOW, 0, 100, 60, 2)
    assert schedules.plan_text("percentage", steps) == "0% -> 50% -> 100%"
    assert schedules.plan_text("boolean", (ScheduleStep(NOW, True),)) == "true"
