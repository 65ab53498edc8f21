"""Scheduled flag changes: "raise to 25% at 14:00", "from 0 to 100% over 2h in 4 steps". Pure.

The seed's progressive rollout moves a percentage on a clock rather than on gates; this module turns
what a person types into a list of (time, value) steps and says which step is due. Applying a step
is the engine's job (core.py), through the same audited path as any other flag change.

Times are epoch seconds. Clock times ("14:00") mean the next occurrence in local time, because that
is what the person typing them reads on the wall; the caller may pass a zone to pin it (tests do).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, time, timedelta, tzinfo

from .config.values import parse_duration as parse_duration  # the console parses --over with it
from .flags import PERCENTAGE, validate_value
from .flags import value_text as flag_value_text
from .model import FlagDef, FlagSchedule, FlagValue, ScheduleStep
from .units import iso_utc

MAX_STEPS = 1000
"""More steps than anyone plans by hand; a typo like --steps 100000 is refused, not stored."""

PAST_GRACE = 5.0
"""Seconds a first step may lie in the past: "from 0 now" is computed a moment before it is stored."""

_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_TIME_HELP = "a time like 14:00 (next occurrence, local time), +30m, or 2026-10-01T14:00 (ISO)"


def parse_time(text: str, now: float, tz: tzinfo | None = None) -> float:
    """When `text` means, as epoch seconds strictly after `now`.

    "14:00" / "14:00:30": the next time the clock in `tz` (default: local time) shows it;
    "+30m", "+1h30m": that long after now; ISO 8601 ("2026-10-01T14:00", "...Z", "...+02:00"),
    local time (or `tz`) when it names no offset. A time that is not in the future is an error."""
    s = text.strip()
    if s.startswith("+"):
        try:
            seconds = parse_duration(s[1:])
        except ValueError as exc:
            raise ValueError(f"{text!r}: {exc}") from None
        if seconds <= 0:
            raise ValueError(f"{text!r} is not in the future (use e.g. +30m)")
        return now + seconds
    m = _CLOCK.fullmatch(s)
    if m is not None:
        hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(f"{text!r} is not a time of day (00:00 to 23:59)")
        return _next_clock_time(time(hour, minute, second), now, tz)
    try:
        when = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"expected {_TIME_HELP}, got {text!r}") from None
    if when.tzinfo is None and tz is not None:
        when = when.replace(tzinfo=tz)
    at = when.timestamp()  # a naive datetime is local time here
    if at <= now:
        raise ValueError(
            f"{text!r} is in the past ({iso_utc(at, 'seconds')}; now is {iso_utc(now, 'seconds')})"
        )
    return at


def _next_clock_time(clock: time, now: float, tz: tzinfo | None) -> float:
    base = datetime.fromtimestamp(now, tz)  # naive local time when tz is None
    # Combining per day (not adding 24h) keeps 14:00 at 14:00 across a daylight-saving change.
    for days in range(3):
        at = datetime.combine(base.date() + timedelta(days=days), clock, tzinfo=tz).timestamp()
        if at > now:
            return at
    raise ValueError(f"cannot place {clock.isoformat()} after {iso_utc(now, 'seconds')}")  # pragma: no cover


def ramp(start: float, from_value: int, to_value: int, over: float, steps: int) -> tuple[ScheduleStep, ...]:
    """A straight ramp: `from_value` at `start`, then `steps` evenly spaced steps, the last one
    reaching `to_value` at start + over. Values are rounded towards the start, so exposure never runs
    ahead of the straight line and the target is reached exactly at the end. Steps that would not
    change the value are left out (0 -> 3 in 10 steps has 4 distinct values, not 11)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if steps > MAX_STEPS:
        raise ValueError(f"at most {MAX_STEPS} steps, got {steps}")
    if not math.isfinite(over) or over <= 0:
        raise ValueError(f"the ramp must last longer than 0s, got {over:g}s")
    if from_value == to_value:
        raise ValueError(f"from and to are both {from_value}: nothing to ramp")
    out = [ScheduleStep(start, from_value)]
    for i in range(1, steps + 1):
        value = from_value + _towards_zero((to_value - from_value) * i, steps)
        if value != out[-1].value:
            out.append(ScheduleStep(start + over * i / steps, value))
    return tuple(out)


def ramp_for(
    defn: FlagDef, start: float, from_value: object, to_value: object, over: float, steps: int
) -> tuple[ScheduleStep, ...]:
    """`ramp` for a flag: only percentage flags ramp; values are checked like any flag value."""
    if defn.type != PERCENTAGE:
        raise ValueError(
            f"{defn.name} is a {defn.type} flag: only percentage flags ramp (schedule one change with --at)"
        )
    a, b = validate_value(defn, from_value), validate_value(defn, to_value)
    return ramp(start, int(a), int(b), over, steps)


def validate_steps(
    defn: FlagDef, steps: Iterable[ScheduleStep | tuple[float, object]], now: float
) -> tuple[ScheduleStep, ...]:
    """The steps with values normalised for the flag's type, or ValueError saying which step is
    wrong: values the flag cannot take, times out of order, a first step in the past."""
    out: list[ScheduleStep] = []
    for n, step in enumerate(steps, start=1):
        at, value = (step.at, step.value) if isinstance(step, ScheduleStep) else step
        if not isinstance(at, int | float) or isinstance(at, bool) or not math.isfinite(at):
            raise ValueError(f"step {n}: time {at!r} is not a point in time")
        try:
            checked = validate_value(defn, value)
        except ValueError as exc:
            raise ValueError(f"step {n}: {exc}") from None
        if out and at <= out[-1].at:
            raise ValueError(
                f"step {n} at {iso_utc(at, 'seconds')} is not after step {n - 1} at {iso_utc(out[-1].at, 'seconds')}"
            )
        out.append(ScheduleStep(float(at), checked))
        if len(out) > MAX_STEPS:
            raise ValueError(f"at most {MAX_STEPS} steps")
    if not out:
        raise ValueError("a schedule needs at least one step")
    if out[0].at < now - PAST_GRACE:
        raise ValueError(
            f"step 1 at {iso_utc(out[0].at, 'seconds')} is in the past (now is {iso_utc(now, 'seconds')})"
        )
    return tuple(out)


def due_index(schedule: FlagSchedule, now: float) -> int | None:
    """The latest step due at `now` that is not applied yet, or None when nothing is due. When the
    engine was down through several steps, only the latest matters: the schedule says what the
    value should be now, and replaying the missed ones would only flicker the flag."""
    if not schedule.active:
        return None
    due = None
    for i in range(schedule.next_index, len(schedule.steps)):
        if schedule.steps[i].at > now:
            break
        due = i
    return due


def remaining(schedule: FlagSchedule, now: float) -> float | None:
    """Seconds until the next step (0 when it is overdue), None when nothing is left to apply."""
    step = schedule.next_step
    return None if step is None else max(0.0, step.at - now)


def value_text(flag_type: str, value: FlagValue) -> str:
    return flag_value_text(value, flag_type)


def plan_text(flag_type: str, steps: Sequence[ScheduleStep]) -> str:
    """ "0% -> 25% -> 50%": the values in order, as a one-line summary."""
    return " -> ".join(value_text(flag_type, s.value) for s in steps)


def _towards_zero(numerator: int, denominator: int) -> int:
    # Integer arithmetic: 100 * 3 / 4 must be exactly 75, never 74.99999.
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient
