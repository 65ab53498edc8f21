"""CloudWatch settings: an environment's `metrics: {kind: cloudwatch}` and `alarms: {kind: cloudwatch}`,
and the top-level `publish: {kind: cloudwatch}` (the console's own figures, with PutMetricData).

Credentials are never written here: boto3 finds them in its usual chain (environment, ~/.aws, an
instance or task role). The region too, unless `region:` says it; `endpoint:` points at another
server (a test server, a VPC endpoint).
"""

from __future__ import annotations

import re

from ..model import CloudWatchAlarms, MetricPublishing, MetricSource
from .fields import Fields
from .values import http_url, positive_duration

METRIC_KEYS = ("kind", "region", "endpoint", "timeout", "period", "interval")
ALARM_KEYS = ("kind", "region", "endpoint", "timeout", "prefix", "severity", "interval")
PUBLISH_KEYS = ("kind", "namespace", "region", "endpoint", "timeout", "interval", "dimensions")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
_NAMESPACE = re.compile(r"[A-Za-z0-9._/#:-]{1,255}")


def _region(f: Fields) -> str | None:
    region: str | None = f.text("region")
    if region is not None and not _REGION.fullmatch(region):
        f.issue("region", f"expected an AWS region like us-east-1, got {region!r}")
        return None
    return region


def _endpoint(f: Fields) -> str:
    endpoint: str | None = f.parsed("endpoint", http_url)
    return endpoint.rstrip("/") if endpoint else ""


def _period(f: Fields) -> float:
    period: float = f.parsed("period", positive_duration, 60.0)
    if period not in (1, 5, 10, 30) and period % 60:
        f.issue("period", f"period {period:g}s is not one CloudWatch takes (1, 5, 10, 30 s or whole minutes)")
        return 60.0
    return period


def cloudwatch_metrics(f: Fields) -> MetricSource:
    """`metrics: {kind: cloudwatch, region, endpoint, timeout, period, interval}`."""
    endpoint = _endpoint(f)
    return MetricSource(
        kind="cloudwatch",
        url=endpoint,
        timeout=f.parsed("timeout", positive_duration, 5.0),
        region=_region(f),
        period=_period(f),
        interval=f.parsed("interval", positive_duration, 30.0),
    )


def cloudwatch_alarms(f: Fields) -> CloudWatchAlarms:
    """`alarms: {kind: cloudwatch, region, endpoint, timeout, prefix, severity, interval}`."""
    prefix: str = f.text("prefix", "")
    if len(prefix) > 255:
        f.issue("prefix", "an alarm name prefix is at most 255 characters")
    return CloudWatchAlarms(
        region=_region(f),
        endpoint=_endpoint(f),
        timeout=f.parsed("timeout", positive_duration, 5.0),
        prefix=prefix,
        severity=f.text("severity", "warning"),
        interval=f.parsed("interval", positive_duration, 30.0),
    )


def read_publish(main: Fields) -> MetricPublishing | None:
    """The top-level `publish: {kind: cloudwatch, namespace, region, endpoint, timeout, interval,
    dimensions}`; None when not set."""
    f = main.mapping("publish", PUBLISH_KEYS, required=("kind",))
    if f is None:
        return None
    kind = f.text("kind")
    if kind is not None and kind != "cloudwatch":
        f.issue("kind", f"unknown kind '{kind}' (available: cloudwatch)")
        return None
    namespace: str = f.text("namespace", "OpsConsole")
    if not _NAMESPACE.fullmatch(namespace) or namespace.startswith("AWS/"):
        f.issue("namespace", f"{namespace!r} is not a namespace the console may publish to")
    dims: list[tuple[str, str]] = []
    d = f.mapping("dimensions")
    for name, _node in d or ():
        value = d.text(name) if d is not None else None
        if value is not None:
            dims.append((name, value))
    if len(dims) > 29:
        f.issue("dimensions", "at most 29 dimensions (CloudWatch takes 30 a metric)")
    return MetricPublishing(
        namespace=namespace,
        region=_region(f),
        endpoint=_endpoint(f),
        timeout=f.parsed("timeout", positive_duration, 5.0),
        interval=f.parsed("interval", positive_duration, 60.0),
        dimensions=tuple(dims),
    )
