"""The gate evaluator: one observation plus what the gate remembers -> a verdict and new memory.

Pure on purpose (no I/O, no clock: `now` is passed in) so the rollout runner can evaluate thousands of
gates per second and tests can replay any sequence of observations. Gates and guards share this code;
only what the rollout machine does with `breached` / `inconclusive` / `escalate` differs.

Missing data is never a pass unless the gate says `on_missing: pass`: an unreachable metrics source
during a canary is exactly when a rollout must not move forward.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from ..textsafe import visible
from .model import GateMemory, GateSpec, GateVerdict, Observation, Verdict
from .redact import redact_text, redact_url
from .units import format_duration, format_number, format_value, iso_utc

SEVERITY = {Verdict.FAIL: 3, Verdict.UNKNOWN: 2, Verdict.PENDING: 1, Verdict.PASS: 0}
"""How much a verdict stops progress: a failure outranks missing data, which outranks waiting."""

ON_MISSING = frozenset({"hold", "fail", "pass"})

_TEXT_LIMIT = 160
"""Remote text (errors, command output) quoted in a reason is cut here: the reason is one line."""

# What a kind's check decided, before failure counting: (status, reason, threshold, baseline).
_Outcome = tuple[Verdict, str, str, float | None]


def evaluate(
    spec: GateSpec, obs: Observation, memory: GateMemory, now: float
) -> tuple[GateVerdict, GateMemory]:
    """Judge one observation of `spec`. Raises ValueError for an unknown kind or on_missing, or a gate
    that lacks the setting its kind needs (config validation should have caught those)."""
    check = _CHECKS.get(spec.kind)
    if check is None:
        raise ValueError(f"gate {spec.name}{_at(spec)}: unknown kind {spec.kind!r}")
    value = obs.value
    if obs.error is not None or value is None or math.isnan(value):
        return _missing(spec, obs, memory, now)
    status, reason, threshold, baseline = check(spec, value, obs, memory)
    return _judged(spec, obs, memory, now, status, reason, threshold, baseline)


def worst(verdicts: Iterable[GateVerdict]) -> Verdict:
    """The most blocking status among `verdicts` (FAIL > UNKNOWN > PENDING > PASS); PASS when empty."""
    result = Verdict.PASS
    for v in verdicts:
        if SEVERITY[v.status] > SEVERITY[result]:
            result = v.status
    return result


def blocking(verdicts: Iterable[GateVerdict]) -> GateVerdict | None:
    """The verdict that explains why progress stops: the first of the worst non-PASS ones, or None."""
    found: GateVerdict | None = None
    for v in verdicts:
        if v.status is not Verdict.PASS and (found is None or SEVERITY[v.status] > SEVERITY[found.status]):
            found = v
    return found


# --------------------------------------------------------------------------------------------- common


def _at(spec: GateSpec) -> str:
    return f" ({spec.where})" if spec.where else ""


def _limit(spec: GateSpec) -> int:
    # A limit below 1 would mark a gate breached before it ever failed.
    return spec.failure_limit if spec.failure_limit > 1 else 1


def _one_line(text: str) -> str:
    # Reasons quote remote text (HTTP errors, command output); a newline or escape code in it must not
    # break the console's one-line "why".
    if text.isprintable():
        return text
    # Escape codes are shown rather than dropped, so the reason still says what the remote end sent.
    text = visible(text)
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def _quote(text: str) -> str:
    text = _one_line(text)
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 1] + "…"


def _checks(n: int, limit: int) -> str:
    return f"{n} of {limit} checks" if n <= limit else f"{n} checks (limit {limit})"


def _judged(
    spec: GateSpec,
    obs: Observation,
    memory: GateMemory,
    now: float,
    status: Verdict,
    reason: str,
    threshold: str,
    baseline: float | None,
) -> tuple[GateVerdict, GateMemory]:
    limit = _limit(spec)
    failures = memory.failures + 1 if status is Verdict.FAIL else 0
    if status is Verdict.FAIL and spec.kind != "metric" and limit > 1:
        reason = f"{reason} ({_checks(failures, limit)})"
    elif status is Verdict.FAIL and spec.kind == "metric":
        reason = f"{reason} for {_checks(failures, limit)}"
    verdict = GateVerdict(
        gate=spec.name,
        kind=spec.kind,
        status=status,
        reason=_one_line(reason),
        value=obs.value,
        threshold=threshold,
        source=obs.source,
        at=now,
        failures=failures,
        failure_limit=limit,
        breached=failures >= limit,
    )
    new_memory = GateMemory(
        failures=failures,
        unknowns=0,
        unknown_since=None,
        baseline=memory.baseline if baseline is None else baseline,
        last_checked=now,
    )
    return verdict, new_memory


def _missing(
    spec: GateSpec, obs: Observation, memory: GateMemory, now: float
) -> tuple[GateVerdict, GateMemory]:
    if obs.error is not None:
        what = _quote(obs.error) or "error without a message"
    elif obs.value is None:
        what = f"no value from {_quote(obs.source)}" if obs.source else "no value"
    else:
        what = "value is NaN"
    limit = _limit(spec)
    mode = spec.on_missing
    # `fail` and `pass` decide a data gap on the spot, so only `hold` counts towards inconclusive and
    # escalate; the others keep the counters as they were (on_missing does not change mid-phase).
    unknowns, since = memory.unknowns, memory.unknown_since
    inconclusive = escalate = False
    if mode == "hold":
        status, failures = Verdict.UNKNOWN, memory.failures
        unknowns += 1
        since = now if since is None else since
        inconclusive = spec.inconclusive_limit is not None and unknowns >= spec.inconclusive_limit
        escalate = spec.escalate_after is not None and now - since >= spec.escalate_after
        # Said with the time the gap began, not its length or a running count: a reason that
        # changes every check is a row repainted every second on every screen that shows it.
        reason = (
            f"no data ({what}); on_missing: hold, without data since {iso_utc(since, 'seconds')[11:19]} UTC"
        )
        if spec.inconclusive_limit is not None:
            reason += f", {_checks(min(unknowns, spec.inconclusive_limit), spec.inconclusive_limit)} before inconclusive"
    elif mode == "fail":
        status, failures = Verdict.FAIL, memory.failures + 1
        reason = f"no data ({what}); on_missing: fail, {_checks(failures, limit)}"
    elif mode == "pass":
        status, failures = Verdict.PASS, 0
        reason = f"no data ({what}); on_missing: pass"
    else:
        raise ValueError(f"gate {spec.name}{_at(spec)}: on_missing must be hold, fail or pass, not {mode!r}")
    verdict = GateVerdict(
        gate=spec.name,
        kind=spec.kind,
        status=status,
        reason=_one_line(reason),
        value=None,
        threshold=_THRESHOLDS[spec.kind](spec, memory.baseline),
        source=obs.source,
        at=now,
        failures=failures,
        failure_limit=limit,
        breached=failures >= limit,
        inconclusive=inconclusive,
        escalate=escalate,
        no_series=obs.no_series and obs.error is not None,
    )
    new_memory = GateMemory(
        failures=failures,
        unknowns=unknowns,
        unknown_since=since,
        baseline=memory.baseline,
        last_checked=now,
    )
    return verdict, new_memory


# --------------------------------------------------------------------------------------------- metric


def _metric_threshold(spec: GateSpec, baseline: float | None) -> str:
    parts = []
    if spec.min is not None:
        parts.append(f">= {format_value(spec.min, spec.unit)}")
    if spec.max is not None:
        parts.append(f"<= {format_value(spec.max, spec.unit)}")
    if spec.max_increase is not None:
        if baseline is None:
            parts.append(f"<= baseline +{format_number(spec.max_increase * 100)}%")
        else:
            parts.append(f"<= {1 + spec.max_increase:.2f}x baseline {format_value(baseline, spec.unit)}")
    return ", ".join(parts)


def _metric(spec: GateSpec, value: float, obs: Observation, memory: GateMemory) -> _Outcome:
    if spec.min is None and spec.max is None and spec.max_increase is None:
        raise ValueError(f"metric gate {spec.name}{_at(spec)} needs min, max or max_increase")
    unit = spec.unit
    shown = format_value(value, unit)
    baseline = memory.baseline
    captured = False
    if spec.max_increase is not None and baseline is None:
        baseline = value
        captured = True
    threshold = _metric_threshold(spec, baseline)
    if spec.min is not None and value < spec.min:
        return Verdict.FAIL, f"{spec.name} {shown} < {format_value(spec.min, unit)}", threshold, baseline
    if spec.max is not None and value > spec.max:
        return Verdict.FAIL, f"{spec.name} {shown} > {format_value(spec.max, unit)}", threshold, baseline
    if captured:
        return Verdict.PASS, f"baseline captured: {shown}", threshold, baseline
    if spec.max_increase is not None and baseline is not None:
        # abs() keeps "at most N% worse" meaningful for a negative baseline; same as baseline*(1+x) otherwise.
        limit = baseline + abs(baseline) * spec.max_increase
        if value > limit:
            reason = (
                f"{spec.name} {shown} > {format_value(limit, unit)} "
                f"(baseline {format_value(baseline, unit)} +{format_number(spec.max_increase * 100)}%)"
            )
            return Verdict.FAIL, reason, threshold, baseline
    return Verdict.PASS, f"{spec.name} {shown} {threshold}", threshold, baseline


# --------------------------------------------------------------------------------------------- others


def _health_threshold(spec: GateSpec, baseline: float | None) -> str:
    if spec.body_contains is None:
        return f"HTTP {spec.expect_status}"
    return f"HTTP {spec.expect_status}, body contains {spec.body_contains!r}"


def _health(spec: GateSpec, value: float, obs: Observation, memory: GateMemory) -> _Outcome:
    threshold = _health_threshold(spec, None)
    where = _quote(obs.source or redact_url(spec.url or "?"))
    status = format_number(value)
    if value != spec.expect_status:
        return Verdict.FAIL, f"HTTP {status} from {where}, expected {spec.expect_status}", threshold, None
    if spec.body_contains is not None and spec.body_contains not in obs.detail:
        return Verdict.FAIL, f"HTTP {status} from {where}, body lacks {spec.body_contains!r}", threshold, None
    return Verdict.PASS, f"HTTP {status} from {where}", threshold, None


def _smoke_threshold(spec: GateSpec, baseline: float | None) -> str:
    return "exit 0"


def _smoke(spec: GateSpec, value: float, obs: Observation, memory: GateMemory) -> _Outcome:
    command = _quote(obs.source or redact_text(" ".join(spec.command)) or "?")
    if value == 0:
        return Verdict.PASS, f"exit 0 from {command}", "exit 0", None
    reason = f"exit {format_number(value)} from {command}"
    tail = obs.detail.rstrip()
    if tail:
        reason += f": {_quote(tail.splitlines()[-1].strip())}"
    return Verdict.FAIL, reason, "exit 0", None


def _soak_duration(spec: GateSpec) -> float:
    if spec.duration is None:
        raise ValueError(f"soak gate {spec.name}{_at(spec)} needs a duration")
    return spec.duration


def _soak_threshold(spec: GateSpec, baseline: float | None) -> str:
    return f">= {format_duration(_soak_duration(spec))} in phase"


def _soak(spec: GateSpec, value: float, obs: Observation, memory: GateMemory) -> _Outcome:
    duration = _soak_duration(spec)
    threshold = _soak_threshold(spec, None)
    done, total = format_duration(value), format_duration(duration)
    if value >= duration:
        return Verdict.PASS, f"soaked {done} of {total}", threshold, None
    left = format_duration(duration - value)
    return Verdict.PENDING, f"soak {done} of {total} ({left} left)", threshold, None


def _alarms_threshold(spec: GateSpec, baseline: float | None) -> str:
    return "none firing: " + ", ".join(spec.none_firing) if spec.none_firing else "none firing"


def _alarms(spec: GateSpec, value: float, obs: Observation, memory: GateMemory) -> _Outcome:
    threshold = _alarms_threshold(spec, None)
    if value == 0:
        return Verdict.PASS, "no matching alarms firing", threshold, None
    noun = "alarm" if value == 1 else "alarms"
    names = _quote(obs.detail) if obs.detail else "names unknown"
    return Verdict.FAIL, f"{format_number(value)} {noun} firing: {names}", threshold, None


def _checklist_threshold(spec: GateSpec, baseline: float | None) -> str:
    return f"all {len(spec.items)} items ticked"


def _checklist(spec: GateSpec, value: float, obs: Observation, memory: GateMemory) -> _Outcome:
    threshold = _checklist_threshold(spec, None)
    total = len(spec.items)
    ticked = format_number(value)
    if value >= total:
        return Verdict.PASS, f"{ticked} of {total} ticked", threshold, None
    missing = f"; missing: {_quote(obs.detail)}" if obs.detail else ""
    return Verdict.PENDING, f"{ticked} of {total} ticked{missing}", threshold, None


def _approvals_required(spec: GateSpec) -> int:
    return int(spec.min or 1)


def _approval_threshold(spec: GateSpec, baseline: float | None) -> str:
    return f">= {_approvals_required(spec)} approvals"


def _approval(spec: GateSpec, value: float, obs: Observation, memory: GateMemory) -> _Outcome:
    required = _approvals_required(spec)
    status = Verdict.PASS if value >= required else Verdict.PENDING
    noun = "approval" if required == 1 else "approvals"
    return status, f"{format_number(value)} of {required} {noun}", _approval_threshold(spec, None), None


def _improvements_threshold(spec: GateSpec, baseline: float | None) -> str:
    parts = []
    if spec.min_deployed is not None:
        parts.append(f">= {spec.min_deployed} deployed")
    if spec.min_kept is not None:
        parts.append(f">= {spec.min_kept} kept")
    if spec.max_rollback_rate is not None:
        parts.append(f"rollback rate < {format_number(spec.max_rollback_rate * 100)}%")
    return ", ".join(parts) + (f" (tenant {spec.tenant})" if spec.tenant else "")


def _improvements(spec: GateSpec, value: float, obs: Observation, memory: GateMemory) -> _Outcome:
    """The seed's phase criteria over the improvement queue ("5+ improvements deployed, <20%
    rollback rate"). Too few yet is pending (the queue is still working); a rollback rate at or over
    the limit once enough are deployed fails (as a guard it can roll the rollout back)."""
    threshold = _improvements_threshold(spec, None)
    counts = dict(obs.counts)
    deployed, kept, rolled_back = counts.get("deployed", 0.0), value, counts.get("rolled_back", 0.0)
    rate = rolled_back / deployed if deployed else None
    said = f"{format_number(deployed)} deployed, {format_number(kept)} kept, {format_number(rolled_back)} rolled back"
    if rate is not None:
        said += f" (rollback rate {format_number(rate * 100)}%)"
    short = []
    if spec.min_deployed is not None and deployed < spec.min_deployed:
        short.append(f"{format_number(spec.min_deployed - deployed)} more deployed")
    if spec.min_kept is not None and kept < spec.min_kept:
        short.append(f"{format_number(spec.min_kept - kept)} more kept")
    enough = spec.min_deployed is None or deployed >= spec.min_deployed
    if spec.max_rollback_rate is not None and rate is not None and rate >= spec.max_rollback_rate and enough:
        return (
            Verdict.FAIL,
            f"{said}: rollback rate over {format_number(spec.max_rollback_rate * 100)}%",
            threshold,
            None,
        )
    if spec.max_rollback_rate is not None and rate is None:
        short.append("nothing deployed yet")
    if short:
        return Verdict.PENDING, f"{said}; waiting for {', '.join(short)}", threshold, None
    return Verdict.PASS, said, threshold, None


def _backup_max_age(spec: GateSpec) -> float:
    if spec.max_age is None or not spec.target:
        raise ValueError(f"backup gate {spec.name}{_at(spec)} needs target and max_age")
    return spec.max_age


def _backup_threshold(spec: GateSpec, baseline: float | None) -> str:
    return f"verified backup of {spec.target} younger than {format_duration(_backup_max_age(spec))}"


def _backup(spec: GateSpec, value: float, obs: Observation, memory: GateMemory) -> _Outcome:
    """ "A verified backup of TARGET younger than max_age". `value` is the age of the newest verified
    backup (infinite: none verified); `detail` says what the newest run of any outcome is, so a
    failing gate names the backup that failed, not only the old one that passed once."""
    limit = _backup_max_age(spec)
    threshold = _backup_threshold(spec, None)
    newest = f"; newest run: {_quote(obs.detail)}" if obs.detail else ""
    counts = dict(obs.counts)
    if math.isinf(value):
        if counts.get("running"):
            return Verdict.PENDING, f"no verified backup of {spec.target} yet{newest}", threshold, None
        return Verdict.FAIL, f"no verified backup of {spec.target}{newest}", threshold, None
    said = f"verified backup {_quote(obs.source)} of {spec.target}"
    if value <= limit:
        # Said with the time it was taken, not its age: a reason that changes every check is a row
        # repainted every second on every screen that shows it.
        taken = iso_utc(obs.at - value, "seconds")[11:19]
        return Verdict.PASS, f"{said} taken {taken} UTC (max age {format_duration(limit)})", threshold, None
    status = Verdict.PENDING if counts.get("running") else Verdict.FAIL
    age = format_duration(value)
    return status, f"{said} is {age} old, over max_age {format_duration(limit)}{newest}", threshold, None


_CHECKS: dict[str, Callable[[GateSpec, float, Observation, GateMemory], _Outcome]] = {
    "metric": _metric,
    "health": _health,
    "smoke": _smoke,
    "soak": _soak,
    "alarms": _alarms,
    "checklist": _checklist,
    "approval": _approval,
    "improvements": _improvements,
    "backup": _backup,
}

_THRESHOLDS: dict[str, Callable[[GateSpec, float | None], str]] = {
    "metric": _metric_threshold,
    "health": _health_threshold,
    "smoke": _smoke_threshold,
    "soak": _soak_threshold,
    "alarms": _alarms_threshold,
    "checklist": _checklist_threshold,
    "approval": _approval_threshold,
    "improvements": _improvements_threshold,
    "backup": _backup_threshold,
}
