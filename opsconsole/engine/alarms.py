"""The console's own threshold alarms (config `alarm_rules`), evaluated purely from observations.

An alarm is `pending` while its query breaches the rule and `firing` once it has breached without a
break for `for_` seconds, so one noisy scrape does not page anyone. `alarms` gates read the firing ones
through `matching_firing`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase

from .model import AlarmRule, Observation
from .units import format_duration, format_number

OK = "ok"
PENDING = "pending"
FIRING = "firing"
UNKNOWN = "unknown"
SILENCED = "silenced"
INHIBITED = "inhibited"
"""Alertmanager's suppressed alerts: shown, never counted as firing by an `alarms` gate."""


@dataclass(frozen=True)
class AlarmStatus:
    name: str
    environment: str
    state: str  # ok | pending | firing | unknown | silenced | inhibited
    severity: str
    since: float | None  # when the current state began
    value: float | None
    reason: str
    source_failed: bool = False
    """Unknown because the rule's source failed (timeout, HTTP error, garbage), not for lack of series:
    an `alarms` guard cannot say "none firing" then."""
    source: str = "rules"
    """Where the alarm comes from: the console's own `rules`, else its source's kind first, then where
    it is when that says more ("alertmanager", "cloudwatch us-east-1"); the pane shows the kind."""
    key: str = ""
    """Unique among all alarms (several alerts share an alertname); empty means `name` is."""
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    silenced_by: tuple[str, ...] = ()
    """Ids of the silences that suppress it."""
    covers: str | None = None
    """Set on a placeholder for every alarm whose name starts with this prefix: their source failed
    before it could say which alarms exist."""

    @property
    def ident(self) -> str:
        return self.key or self.name


@dataclass(frozen=True)
class AlarmMemory:
    state: str
    since: float | None
    pending_since: float | None  # start of the current unbroken breach, None when not breaching


def evaluate_rule(
    rule: AlarmRule, obs: Observation, memory: AlarmMemory | None, now: float
) -> tuple[AlarmStatus, AlarmMemory]:
    """One observation of `rule.query` -> the alarm's status and what to remember for the next one."""
    prev_state = memory.state if memory is not None else None
    prev_since = memory.since if memory is not None else None
    value = obs.value

    if obs.error is not None or value is None or math.isnan(value):
        what = obs.error or ("value is NaN" if value is not None else "no value")
        what = " ".join(what.split())
        if memory is not None and prev_state == FIRING:
            # An unreachable source must not silently clear a firing alarm: the outage it reports may
            # be what took the source down. It stays firing (same `since`, breach timer kept) until a
            # real observation says the value is back within limits.
            reason = f"no data ({what}); still firing: a data gap does not clear an alarm"
            return _status(rule, FIRING, prev_since, None, reason), memory
        # Not firing yet: the gap breaks the "continuously breaching" run, so the for_ timer restarts
        # when data returns; an alarm only fires on a breach it actually saw last for for_ seconds.
        since = prev_since if prev_state == UNKNOWN else now
        status = replace(
            _status(rule, UNKNOWN, since, None, f"no data ({what})"), source_failed=not obs.no_series
        )
        return status, AlarmMemory(UNKNOWN, since, None)

    breach = _breach(rule, value)
    if breach is None:
        since = prev_since if prev_state == OK else now
        reason = f"{rule.query} {format_number(value)} {_limits(rule)}"
        return _status(rule, OK, since, value, reason), AlarmMemory(OK, since, None)

    pending_since = now
    if memory is not None and prev_state in (PENDING, FIRING) and memory.pending_since is not None:
        pending_since = memory.pending_since
    lasted = now - pending_since
    if lasted >= rule.for_:
        since = prev_since if prev_state == FIRING and prev_since is not None else now
        reason = f"{rule.query} {breach} for {format_duration(lasted)}"
        return _status(rule, FIRING, since, value, reason), AlarmMemory(FIRING, since, pending_since)
    reason = f"{rule.query} {breach} for {format_duration(lasted)} of {format_duration(rule.for_)}"
    return _status(rule, PENDING, pending_since, value, reason), AlarmMemory(
        PENDING, pending_since, pending_since
    )


def matching_firing(statuses: Iterable[AlarmStatus], patterns: Sequence[str]) -> list[AlarmStatus]:
    """Firing alarms whose name matches any glob in `patterns` (case-sensitive; no patterns, no match)."""
    return [s for s in statuses if s.state == FIRING and any(fnmatchcase(s.name, p) for p in patterns)]


def matching_failed(statuses: Iterable[AlarmStatus], patterns: Sequence[str]) -> list[AlarmStatus]:
    """Alarms matching `patterns` that cannot be evaluated because their source fails: whether they
    would fire is unknown, so "none firing" cannot be claimed for them."""
    return [
        s
        for s in statuses
        if s.state == UNKNOWN
        and s.source_failed
        and any(fnmatchcase(s.name, p) or _may_cover(s.covers, p) for p in patterns)
    ]


def _may_cover(prefix: str | None, pattern: str) -> bool:
    """Whether some name starting with `prefix` could match `pattern` (its literal head and the prefix
    agree as far as both go)."""
    if prefix is None:
        return False
    head = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    return head.startswith(prefix) or prefix.startswith(head)


def _breach(rule: AlarmRule, value: float) -> str | None:
    """How `value` breaks the rule ("612 > 500"), or None when it is within limits."""
    if rule.max is not None and value > rule.max:
        return f"{format_number(value)} > {format_number(rule.max)}"
    if rule.min is not None and value < rule.min:
        return f"{format_number(value)} < {format_number(rule.min)}"
    return None


def _limits(rule: AlarmRule) -> str:
    parts = []
    if rule.min is not None:
        parts.append(f">= {format_number(rule.min)}")
    if rule.max is not None:
        parts.append(f"<= {format_number(rule.max)}")
    return ", ".join(parts) if parts else "(no min or max set)"


def _status(
    rule: AlarmRule, state: str, since: float | None, value: float | None, reason: str
) -> AlarmStatus:
    return AlarmStatus(rule.name, rule.environment, state, rule.severity, since, value, reason)
