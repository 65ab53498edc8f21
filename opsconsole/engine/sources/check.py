"""`opsconsole sources check`: reach every configured source and target once, and say how it went.

The first thing an on-call engineer runs when numbers look wrong: each environment's metrics source
(a scrape of its endpoint, or one query through Prometheus's API with its credentials), its alarm
source (one read of Alertmanager's alerts, or one DescribeAlarms) and its flag target (the file the
flags are written to), each bounded by its timeout, all at once.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..model import (
    AlarmSource,
    CloudWatchAlarms,
    Config,
    Environment,
    FlagTarget,
    MetricPublishing,
    MetricSource,
)
from ..redact import redact_text, redact_url

if TYPE_CHECKING:
    import httpx

__all__ = ["SourceCheck", "check_sources"]


@dataclass(frozen=True)
class SourceCheck:
    environment: str
    role: str
    """metrics | alarms | flags | publish | deploy (a Docker engine of the `services:` section)"""
    kind: str
    where: str
    """The URL (without credentials) or the path."""
    ok: bool
    latency_ms: float
    error: str = ""


def check_sources(config: Config, environment: str | None = None) -> list[SourceCheck]:
    """Every source and target of `environment` (default: all), checked once, concurrently.
    Raises KeyError naming the environment when there is no such one."""
    if environment is not None and environment not in config.environments:
        raise KeyError(environment)
    envs = [e for name, e in config.environments.items() if environment in (None, name)]
    publish = config.publish if environment is None else None
    checks = asyncio.run(_check_all(envs, config.interval, publish))
    if environment is None and config.services:  # the Docker engines deploys use (no environment)
        from ..deploy.status import check_engines

        checks.extend(SourceCheck(*c) for c in check_engines(config))
    return checks


async def _check_all(
    envs: list[Environment], interval: float, publish: MetricPublishing | None = None
) -> list[SourceCheck]:
    import httpx

    async with httpx.AsyncClient(trust_env=False, follow_redirects=False) as client:
        jobs = []
        for env in envs:
            if env.metrics is not None and env.metrics.kind == "cloudwatch":
                jobs.append(_cloudwatch_metrics(env.name, env.metrics))
            elif env.metrics is not None:
                jobs.append(_metrics(client, env.name, env.metrics, interval))
            if isinstance(env.alarms, CloudWatchAlarms):
                jobs.append(_cloudwatch_alarms(env.name, env.alarms))
            elif env.alarms is not None:
                jobs.append(_alertmanager(client, env.name, env.alarms))
            if env.flags is not None:
                jobs.append(asyncio.to_thread(_flags, env.name, env.flags))
        if publish is not None:
            jobs.append(_publish(publish))
        return list(await asyncio.gather(*jobs))


async def _cloudwatch_metrics(environment: str, metrics: MetricSource) -> SourceCheck:
    from .aws import AwsFailed
    from .cloudwatch import CloudWatchSource

    started = time.perf_counter()
    src = CloudWatchSource(metrics)
    try:
        await src.check()
        error = ""
    except AwsFailed as exc:
        error = str(exc)
    elapsed = (time.perf_counter() - started) * 1000
    return SourceCheck(environment, "metrics", "cloudwatch", src.shown, not error, elapsed, error)


async def _cloudwatch_alarms(environment: str, spec: CloudWatchAlarms) -> SourceCheck:
    from .aws import AwsFailed
    from .cloudwatch import CloudWatchAlarmSource

    started = time.perf_counter()
    src = CloudWatchAlarmSource(environment, spec)
    try:
        await src.check()
        error = ""
    except AwsFailed as exc:
        error = str(exc)
    elapsed = (time.perf_counter() - started) * 1000
    return SourceCheck(environment, "alarms", "cloudwatch", src.shown, not error, elapsed, error)


async def _alertmanager(client: httpx.AsyncClient, environment: str, spec: AlarmSource) -> SourceCheck:
    """One read of the alerts, as a tick makes it (its matchers, its credentials, its timeout)."""
    from .alertmanager import AlertmanagerSource

    started = time.perf_counter()
    src = AlertmanagerSource(environment, spec)
    await src.refresh(client, time.time())
    elapsed = (time.perf_counter() - started) * 1000
    error = src.error or ""
    return SourceCheck(environment, "alarms", spec.kind, src.shown_url, not error, elapsed, error)


async def _publish(spec: MetricPublishing) -> SourceCheck:
    """The publishing target reached with a read of its namespace (nothing is written by a check)."""
    from ..targets.cloudwatch_publish import MetricPublisher
    from .aws import AwsFailed

    started = time.perf_counter()
    try:
        await MetricPublisher.check(spec)
        error = ""
    except AwsFailed as exc:
        error = str(exc)
    elapsed = (time.perf_counter() - started) * 1000
    from .aws import where

    return SourceCheck(
        "*", "publish", "cloudwatch", where(spec.region, spec.endpoint), not error, elapsed, error
    )


async def _metrics(
    client: httpx.AsyncClient, environment: str, metrics: MetricSource, interval: float
) -> SourceCheck:
    started = time.perf_counter()
    error: str | None
    if metrics.kind == "prometheus":
        from .prometheus import PrometheusSource, QueryFailed, SourceFailed

        src = PrometheusSource(
            metrics.url,
            timeout=metrics.timeout,
            step=interval,
            token_env=metrics.token_env,
            basic_auth_env=metrics.basic_auth_env,
        )
        shown = src.shown
        try:
            await src.check(client)
            error = None
        except (SourceFailed, QueryFailed) as exc:
            error = str(exc)
    else:
        from .scrape import ScrapeSource

        scrape = ScrapeSource(metrics.url, timeout=metrics.timeout, window=metrics.window)
        shown = scrape.shown
        error = await scrape.refresh(client, time.time())
    elapsed = (time.perf_counter() - started) * 1000
    return SourceCheck(environment, "metrics", metrics.kind, shown, error is None, elapsed, error or "")


def _flags(environment: str, target: FlagTarget) -> SourceCheck:
    started = time.perf_counter()
    error = ""
    for path in filter(None, (target.path, target.flagd, target.dotenv)):
        error = _writable(Path(path))
        if error:
            break
    elapsed = (time.perf_counter() - started) * 1000
    return SourceCheck(
        environment, "flags", target.kind, redact_url(target.path), not error, elapsed, redact_text(error)
    )


def _writable(path: Path) -> str:
    """Why the flag file at `path` cannot be written where it is, else ''. A directory not made yet
    is made on the first write: then its nearest existing ancestor must be writable."""
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    if not directory.is_dir():
        return f"{directory} is not a directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"directory {directory} is not writable"
    if path.exists():
        if not path.is_file():
            return f"{path} is not a file"
        try:
            with path.open("rb") as fh:
                fh.read(1)
        except OSError as exc:
            return f"cannot read {path}: {exc.strerror or exc}"
    return ""
