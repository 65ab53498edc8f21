"""CloudWatch as a metrics source (GetMetricData, metric math included) and as an alarm source
(DescribeAlarms: metric and composite alarms, with their state, reason and since when).

Like the Prometheus source, the engine reads answers synchronously during a tick after one
asynchronous `refresh`; a refresh asks CloudWatch at most once per `interval` (a datapoint changes
once a period), every query of the environment in one GetMetricData call. When CloudWatch refuses that
call (a bad query among them), each query is asked alone, so the reason names the one at fault.
Everything that is not a number is no answer: no datapoints, an error, a timeout. Calls run on the
AWS threads (sources/aws.py), each bounded by the timeout: the event loop never waits on boto3.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import alarms as alarm_logic
from ..alarms import AlarmStatus
from ..model import CloudWatchAlarms, MetricSource, Observation
from . import aws
from .cwquery import CloudWatchQuery, QuerySyntaxError, parse_query

__all__ = ["CloudWatchAlarmSource", "CloudWatchSource"]

MAX_QUERIES = 100
"""Bound on the distinct queries a source asks (GetMetricData takes 500 data queries a call)."""
MAX_ALARM_PAGES = 10
"""DescribeAlarms pages read a refresh (100 alarms each)."""


@dataclass(frozen=True)
class _Answer:
    value: float | None = None
    error: str | None = None
    no_series: bool = False
    points: tuple[float | None, ...] = ()


class CloudWatchSource:
    """One environment's CloudWatch metrics, as gates, guards and alarm rules ask for them."""

    incremental = False
    """Sparkline points are CloudWatch's own datapoints, one a period."""

    def __init__(self, spec: MetricSource, queries: Iterable[str] = (), *, keep: float = 0.0) -> None:
        self.spec = spec
        self.region = spec.region
        self.endpoint = spec.url
        self.timeout = spec.timeout
        self.period = int(spec.period)
        self.interval = spec.interval
        self.keep = keep
        self.url = spec.url
        self.shown = aws.where(self.region, self.endpoint)
        self.window = 0.0
        self.last_error: str | None = None
        self.last_refresh: float | None = None
        self._asked_at: float | None = None
        self._wanted: dict[str, None] = dict.fromkeys(q for q in queries if q)
        self._answers: dict[str, _Answer] = {}
        self._answered_at = 0.0

    # ------------------------------------------------------------------------------------ reading

    def query(self, expr: str, now: float) -> Observation:
        """The answer to `expr` from the last call; a query not asked before is asked from the next
        refresh on (unknown until then, never a pass)."""
        answer = self._answers.get(expr)
        if answer is None:
            if expr not in self._wanted and len(self._wanted) < MAX_QUERIES:
                self._wanted[expr] = None
                self._asked_at = None  # a new query is worth a call now, not after the interval
            if self.last_error is not None:
                error = f"query {expr!r}: {self.last_error}"
            else:
                error = f"query {expr!r} not asked of {self.shown} yet (from the next refresh on)"
            return Observation(error=error, source=self.shown, at=now)
        if answer.error is not None:
            return Observation(
                error=f"query {expr!r}: {answer.error}",
                source=self.shown,
                at=self._answered_at,
                no_series=answer.no_series,
            )
        return Observation(value=answer.value, source=self.shown, at=self._answered_at)

    def series(self, expr: str, points: int) -> list[float | None]:
        if points <= 0:
            return []
        answer = self._answers.get(expr)
        values = list(answer.points[-points:]) if answer is not None else []
        return [None] * (points - len(values)) + values

    # ------------------------------------------------------------------------------------ refresh

    async def refresh(self, client: Any, now: float) -> str | None:
        """Ask CloudWatch for every wanted query when the interval is up; `client` (httpx) is not
        used. Returns the error reaching CloudWatch, if any."""
        if self._asked_at is not None and now - self._asked_at < self.interval - 1e-6:
            return self.last_error
        self._asked_at = now
        self.last_refresh = now
        wanted = list(self._wanted)
        if not wanted:
            return None
        try:
            answers = await aws.call(lambda: self._fetch(wanted), self.timeout + 1.0, self.shown)
        except aws.AwsFailed as exc:
            self.last_error = str(exc)
            self._answers = {q: _Answer(error=str(exc)) for q in wanted}
            self._answered_at = now
            return self.last_error
        self.last_error = None
        self._answers = answers
        self._answered_at = now
        return None

    async def check(self) -> None:
        """Reach CloudWatch once (ListMetrics, one page); raises AwsFailed."""

        def ask() -> None:
            self._client().list_metrics(RecentlyActive="PT3H")

        await aws.call(ask, self.timeout + 1.0, self.shown)

    def _client(self) -> Any:
        return aws.client("cloudwatch", self.region, self.endpoint, self.timeout)

    def _fetch(self, wanted: list[str]) -> dict[str, _Answer]:
        """On an AWS thread: every query in one call, each alone when that call is refused."""
        parsed: dict[str, CloudWatchQuery] = {}
        answers: dict[str, _Answer] = {}
        for expr in wanted:
            try:
                parsed[expr] = parse_query(expr)
            except QuerySyntaxError as exc:
                answers[expr] = _Answer(error=f"not a CloudWatch query: {exc}")
        if not parsed:
            return answers
        try:
            answers.update(self._get(parsed))
        except aws.AwsFailed as exc:
            if not exc.query or len(parsed) == 1:
                if exc.query:
                    return {**answers, **{q: _Answer(error=str(exc)) for q in parsed}}
                raise
            # Each alone, within one timeout: what is left by then carries the batch's error.
            deadline = time.monotonic() + self.timeout
            for expr, q in parsed.items():
                if time.monotonic() > deadline:
                    answers[expr] = _Answer(error=str(exc))
                    continue
                try:
                    answers.update(self._get({expr: q}))
                except aws.AwsFailed as one:
                    if not one.query:
                        raise
                    answers[expr] = _Answer(error=str(one))
        return answers

    def _get(self, parsed: dict[str, CloudWatchQuery]) -> dict[str, _Answer]:
        ids = {f"q{i}": expr for i, expr in enumerate(parsed)}
        queries: list[dict[str, object]] = []
        for ident, expr in ids.items():
            queries += parsed[expr].data_queries(ident, self.period)
        end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        lookback = max(3 * self.period, self.keep, 60.0)
        start = end - timedelta(seconds=lookback)
        values: dict[str, list[tuple[datetime, float]]] = {ident: [] for ident in ids}
        status: dict[str, str] = {}
        request: dict[str, Any] = {
            "MetricDataQueries": queries,
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampDescending",
        }
        try:
            for _page in range(5):
                doc = self._client().get_metric_data(**request)
                for result in doc.get("MetricDataResults", []):
                    ident = str(result.get("Id", ""))
                    if ident not in values:
                        continue
                    pairs = zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
                    values[ident] += [(t, float(v)) for t, v in pairs]
                    code = str(result.get("StatusCode", "Complete"))
                    messages = "; ".join(str(m.get("Value", "")) for m in result.get("Messages", []))
                    if code not in ("Complete", "PartialData"):
                        status[ident] = f"CloudWatch says {code}" + (f": {messages}" if messages else "")
                token = doc.get("NextToken")
                if not token:
                    break
                request["NextToken"] = token
        except Exception as exc:
            raise aws.AwsFailed(aws.describe(exc, self.shown), query=aws.is_query_error(exc)) from None
        out: dict[str, _Answer] = {}
        for ident, expr in ids.items():
            series = sorted(values[ident], key=lambda p: p[0])
            points = tuple(v if math.isfinite(v) else None for _, v in series)
            if ident in status:
                out[expr] = _Answer(error=status[ident], points=points)
            elif not series:
                out[expr] = _Answer(
                    error=f"no datapoints in the last {lookback / 60:g} min", no_series=True, points=points
                )
            elif not math.isfinite(series[-1][1]):
                out[expr] = _Answer(error="the newest value is not a number", points=points)
            else:
                out[expr] = _Answer(value=series[-1][1], points=points)
        return out


class CloudWatchAlarmSource:
    """One environment's CloudWatch alarms (metric and composite), as AlarmStatus rows.

    When CloudWatch cannot be asked, an alarm last seen in ALARM stays firing (the outage may be what
    it reports) and the others are unknown because their source failed; before any answer, one
    placeholder row stands for every alarm of the prefix, so an `alarms` gate cannot claim "none
    firing" on silence."""

    def __init__(self, environment: str, spec: CloudWatchAlarms) -> None:
        self.environment = environment
        self.spec = spec
        self.shown = aws.where(spec.region, spec.endpoint)
        self.error: str | None = None
        self.checked_at: float | None = None
        """When the latest answer (or failure) came; None before the first: what the alarms gate asks,
        as of an AlertmanagerSource."""
        self._asked_at: float | None = None
        self.alarms: dict[str, AlarmStatus] = {}

    def placeholder_name(self) -> str:
        return f"{self.spec.prefix}*"

    def statuses(self) -> list[AlarmStatus]:
        return list(self.alarms.values())

    async def refresh(self, client: object, now: float) -> str | None:
        """Ask DescribeAlarms at most once per `interval` (`client` is unused: boto3 has its own,
        the argument keeps the observer's one call for every alarm source)."""
        if self._asked_at is not None and now - self._asked_at < self.spec.interval - 1e-6:
            return self.error
        self._asked_at = now
        try:
            alarms = await aws.call(self._describe, self.spec.timeout + 1.0, self.shown)
        except aws.AwsFailed as exc:
            self.error = str(exc)
            self.alarms = self._failed(str(exc), now)
        else:
            self.error = None
            self.alarms = {a.name: a for a in alarms}
        self.checked_at = now
        return self.error

    async def check(self) -> None:
        def ask() -> None:
            self._client().describe_alarms(MaxRecords=1, AlarmNamePrefix=self.spec.prefix or "")

        await aws.call(ask, self.spec.timeout + 1.0, self.shown)

    def _client(self) -> Any:
        return aws.client("cloudwatch", self.spec.region, self.spec.endpoint, self.spec.timeout)

    def _failed(self, error: str, now: float) -> dict[str, AlarmStatus]:
        out: dict[str, AlarmStatus] = {}
        for name, prior in self.alarms.items():
            if prior.covers is not None:
                continue
            if prior.state == alarm_logic.FIRING:
                reason = f"no data ({error}); last seen in ALARM: {prior.reason}"
                out[name] = _replace(prior, reason=reason)
            else:
                since = prior.since if prior.state == alarm_logic.UNKNOWN else now
                out[name] = _replace(
                    prior,
                    state=alarm_logic.UNKNOWN,
                    since=since,
                    value=None,
                    reason=f"no data ({error})",
                    source_failed=True,
                )
        if not out:
            name = self.placeholder_name()
            before = self.alarms.get(name)
            out[name] = AlarmStatus(
                name,
                self.environment,
                alarm_logic.UNKNOWN,
                self.spec.severity,
                before.since if before is not None else now,
                None,
                f"no data ({error}); which alarms exist is unknown",
                source_failed=True,
                source=self.shown,
                covers=self.spec.prefix,
            )
        return out

    def _describe(self) -> list[AlarmStatus]:
        request: dict[str, Any] = {"AlarmTypes": ["MetricAlarm", "CompositeAlarm"], "MaxRecords": 100}
        if self.spec.prefix:
            request["AlarmNamePrefix"] = self.spec.prefix
        out: list[AlarmStatus] = []
        try:
            for _page in range(MAX_ALARM_PAGES):
                doc = self._client().describe_alarms(**request)
                for kind, alarms in (
                    ("metric", doc.get("MetricAlarms", [])),
                    ("composite", doc.get("CompositeAlarms", [])),
                ):
                    out += [self._status(kind, a) for a in alarms]
                token = doc.get("NextToken")
                if not token:
                    break
                request["NextToken"] = token
        except Exception as exc:
            raise aws.AwsFailed(aws.describe(exc, self.shown)) from None
        return out

    def _status(self, kind: str, a: dict[str, Any]) -> AlarmStatus:
        state = _STATES.get(str(a.get("StateValue", "")), alarm_logic.UNKNOWN)
        stamp = a.get("StateTransitionedTimestamp") or a.get("StateUpdatedTimestamp")
        since = stamp.timestamp() if isinstance(stamp, datetime) else None
        reason = " ".join(str(a.get("StateReason") or a.get("StateValue") or "").split())
        if kind == "composite":
            reason = f"composite ({a.get('AlarmRule', '')}): {reason}"
        elif state == alarm_logic.UNKNOWN:
            reason = f"INSUFFICIENT_DATA: {reason}"
        return AlarmStatus(
            str(a.get("AlarmName", "?")),
            self.environment,
            state,
            self.spec.severity,
            since,
            _latest_value(a.get("StateReasonData")),
            reason[:500],
            source=self.shown,
        )


_STATES = {"ALARM": alarm_logic.FIRING, "OK": alarm_logic.OK, "INSUFFICIENT_DATA": alarm_logic.UNKNOWN}


def _replace(status: AlarmStatus, **changes: Any) -> AlarmStatus:
    from dataclasses import replace

    return replace(status, **changes)


def _latest_value(data: Any) -> float | None:
    """The newest datapoint a metric alarm's StateReasonData quotes, when it quotes one."""
    if not isinstance(data, str):
        return None
    try:
        doc = json.loads(data)
        points = doc.get("recentDatapoints") or []
        value = float(points[0]) if points else None
    except (ValueError, TypeError, AttributeError, IndexError):
        return None
    return value if value is not None and math.isfinite(value) else None
