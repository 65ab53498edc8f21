"""The query language of a CloudWatch metrics source: one line a gate, a guard or an alarm rule
writes, turned into the MetricDataQueries of one GetMetricData call. Pure: no boto3 here, so the
configuration check reads it too.

A query is either one metric:

    SelfBuilding:improvement_cycles_failed:Sum
    AWS/ApplicationELB:HTTPCode_Target_5XX_Count{LoadBalancer=app/web/1f2e}:Sum:5m

(`namespace:metric{dimension=value,...}:statistic[:period]`), or a metric math expression followed by
the metrics it names, each after a `;`:

    100 * bad / MAX([total, 1]); bad = SelfBuilding:errors:Sum; total = SelfBuilding:requests:Sum

The expression is CloudWatch's own metric math, evaluated by CloudWatch (functions are upper case,
the names of metrics lower case). The number a gate gets is the newest datapoint of the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CloudWatchQuery", "MetricRef", "QuerySyntaxError", "parse_query"]

_STATS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum", "IQM")
_PERCENTILE = re.compile(r"(p|tm|wm|tc|ts)\d{1,2}(\.\d{1,10})?|(p|tm|wm|tc|ts)100")
_ID = re.compile(r"[a-z][a-zA-Z0-9_]*")
_METRIC = re.compile(
    r"\s*(?P<ns>[^:{};=]+?)\s*:\s*(?P<name>[^:{};=]+?)\s*(?:\{(?P<dims>[^{}]*)\})?"
    r"\s*:\s*(?P<stat>[^:\s]+)\s*(?::\s*(?P<period>[^:\s]+)\s*)?"
)
_PERIOD = re.compile(r"(\d+)([smh]?)")
_WORD = re.compile(r"'[^']*'|\"[^\"]*\"|[A-Za-z_][A-Za-z0-9_]*")


class QuerySyntaxError(ValueError):
    """What is wrong with a query, said so that the person who wrote it can fix it."""


@dataclass(frozen=True)
class MetricRef:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str
    period: int | None
    """Seconds; None: the source's period."""


@dataclass(frozen=True)
class CloudWatchQuery:
    expression: str | None
    """Metric math over `metrics`; None when the query is one metric."""
    metrics: tuple[tuple[str, MetricRef], ...]
    """(id, metric) in the order written."""

    def data_queries(self, prefix: str, period: int) -> list[dict[str, object]]:
        """The MetricDataQueries for GetMetricData; the answer's Id is `prefix`. Every id is made
        `prefix_id` so several queries can share one call."""
        out: list[dict[str, object]] = []
        for ident, ref in self.metrics:
            metric: dict[str, object] = {"Namespace": ref.namespace, "MetricName": ref.name}
            if ref.dimensions:
                metric["Dimensions"] = [{"Name": k, "Value": v} for k, v in ref.dimensions]
            out.append(
                {
                    "Id": prefix if self.expression is None else f"{prefix}_{ident}",
                    "MetricStat": {"Metric": metric, "Period": ref.period or period, "Stat": ref.stat},
                    "ReturnData": self.expression is None,
                }
            )
        if self.expression is not None:
            names = {ident for ident, _ in self.metrics}
            expression = _WORD.sub(
                lambda m: f"{prefix}_{m.group(0)}" if m.group(0) in names else m.group(0), self.expression
            )
            out.append({"Id": prefix, "Expression": expression, "ReturnData": True})
        return out


def parse_query(text: str) -> CloudWatchQuery:
    """The query `text` means; raises QuerySyntaxError saying what is wrong."""
    parts = [p.strip() for p in text.split(";")]
    if not parts[0]:
        raise QuerySyntaxError("empty query (write namespace:metric:statistic, or math; id = metric)")
    if len(parts) == 1:
        return CloudWatchQuery(None, (("m", _metric(parts[0])),))
    expression, definitions = parts[0], parts[1:]
    metrics: dict[str, MetricRef] = {}
    for definition in definitions:
        ident, eq, ref = definition.partition("=")
        ident = ident.strip()
        if not eq:
            raise QuerySyntaxError(f"{definition!r} after ';' should be 'id = namespace:metric:statistic'")
        if not _ID.fullmatch(ident):
            raise QuerySyntaxError(
                f"metric id {ident!r} must start with a lower-case letter (letters, digits, '_')"
            )
        if ident in metrics:
            raise QuerySyntaxError(f"metric id {ident!r} is defined twice")
        metrics[ident] = _metric(ref)
    _check_expression(expression, set(metrics))
    return CloudWatchQuery(expression, tuple(metrics.items()))


def _metric(text: str) -> MetricRef:
    m = _METRIC.fullmatch(text)
    if m is None:
        raise QuerySyntaxError(
            f"{text.strip()!r} is not a metric: write namespace:metric{{dimension=value}}:statistic[:period]"
        )
    stat = m.group("stat")
    if stat not in _STATS and not _PERCENTILE.fullmatch(stat):
        raise QuerySyntaxError(
            f"unknown statistic {stat!r} (Sum, Average, Minimum, Maximum, SampleCount, IQM or p99, tm90, ...)"
        )
    dims: list[tuple[str, str]] = []
    for pair in (m.group("dims") or "").split(","):
        if not pair.strip():
            continue
        key, eq, value = pair.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise QuerySyntaxError(f"dimension {pair.strip()!r} should be name=value")
        dims.append((key.strip(), value.strip()))
    if len(dims) > 30:
        raise QuerySyntaxError("a metric has at most 30 dimensions")
    period = _period(m.group("period")) if m.group("period") else None
    return MetricRef(m.group("ns"), m.group("name"), tuple(dims), stat, period)


def _period(text: str) -> int:
    m = _PERIOD.fullmatch(text)
    if m is None:
        raise QuerySyntaxError(f"period {text!r} should be seconds or a duration (60, 5m, 1h)")
    seconds = int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if seconds not in (1, 5, 10, 30) and (seconds <= 0 or seconds % 60):
        raise QuerySyntaxError(
            f"period {text} is not one CloudWatch takes (1, 5, 10, 30 s or a multiple of 60 s)"
        )
    return seconds


def _check_expression(expression: str, names: set[str]) -> None:
    from .prometheus import promql_problem  # the same bracket and quote balance

    problem = promql_problem(expression)
    if problem:
        raise QuerySyntaxError(f"math {expression!r}: {problem}")
    used = set()
    for word in _WORD.findall(expression):
        if word[0] in "'\"":
            continue
        if word[0].islower():
            if word not in names:
                raise QuerySyntaxError(f"math uses {word!r}, which no '; {word} = ...' defines")
            used.add(word)
    if not used and "METRICS(" not in expression and "SEARCH(" not in expression:
        raise QuerySyntaxError(f"math {expression!r} uses none of the metrics defined after it")
