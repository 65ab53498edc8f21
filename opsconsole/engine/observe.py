"""The read side of a tick: fetch what every gate needs, each fetch bounded in time.

A slow or dead source yields an Observation with `error` set (and so an `unknown` verdict); nothing
here may hang the runner. Metric sources are scraped once per tick and shared by every gate and alarm
rule of their environment.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import alarms as alarm_rules
from .aim import placeholders, variants
from .model import CloudWatchAlarms, Config, GateSpec, MetricSource, Observation, Phase, Rollout
from .redact import redact_text, redact_url

if TYPE_CHECKING:
    import httpx

    from .backups.model import BackupRun
    from .core import Engine
    from .sources.alertmanager import AlertmanagerSource
    from .sources.cloudwatch import CloudWatchAlarmSource, CloudWatchSource
    from .sources.prometheus import PrometheusSource
    from .sources.scrape import ScrapeSource

    MetricsSource = ScrapeSource | PrometheusSource | CloudWatchSource
    AlarmsSource = AlertmanagerSource | CloudWatchAlarmSource

_RECENT_RUNS = 20
"""How many of a target's newest runs a `backup` check reads each tick before the whole history."""

SMOKE_INTERVAL = 30.0
"""A smoke command without its own interval reruns at most this often: it may be expensive."""


class Observer:
    def __init__(self, config: Config, keep: float = 0.0) -> None:
        self.config = config
        self.keep = keep
        """Seconds of scrape history kept beyond each source's window (sparklines)."""
        self.watch: set[str] = set()
        """Environments scraped every tick even when no active rollout needs them (the console's)."""
        self._sources: dict[str, MetricsSource] = {}
        self._alarm_sources: dict[str, AlarmsSource] = {}
        self._alarm_reads: dict[str, asyncio.Task[Any]] = {}
        self._client: httpx.AsyncClient | None = None
        self._alarm_memory: dict[str, alarm_rules.AlarmMemory] = {}
        self._shared: dict[tuple[str, ...], asyncio.Task[Observation]] = {}
        self._shared_at: float | None = None
        self.alarms: dict[str, alarm_rules.AlarmStatus] = {}
        self.improvement_counts: dict[tuple[str, str | None], tuple[float, float, float]] = {}
        """(environment, tenant) -> (deployed, kept, rolled back), read from the store by the runner
        each tick for the `improvements` gates of active phases."""
        self.backup_runs: dict[str, tuple[BackupRun | None, BackupRun | None]] = {}
        """target -> (newest verified run, newest run of any outcome), read from the store by the
        runner each tick for the `backup` gates of active phases."""

    def source(self, environment: str) -> MetricsSource | None:
        env = self.config.environments.get(environment)
        if env is None or env.metrics is None:
            return None
        src = self._sources.get(environment)
        if src is None:
            src = self._make_source(environment, env.metrics)
            self._sources[environment] = src
        return src

    def _make_source(self, environment: str, metrics: MetricSource) -> MetricsSource:
        if metrics.kind == "cloudwatch":
            from .sources.cloudwatch import CloudWatchSource

            return CloudWatchSource(
                metrics, configured_queries(self.config).get(environment, ()), keep=self.keep
            )
        if metrics.kind == "prometheus":
            from .sources.prometheus import PrometheusSource

            return PrometheusSource(
                metrics.url,
                timeout=metrics.timeout,
                step=self.config.interval,
                keep=self.keep,
                token_env=metrics.token_env,
                basic_auth_env=metrics.basic_auth_env,
                queries=configured_queries(self.config).get(environment, ()),
            )
        from .sources.scrape import ScrapeSource

        return ScrapeSource(metrics.url, timeout=metrics.timeout, window=metrics.window, keep=self.keep)

    def alarm_source(self, environment: str) -> AlarmsSource | None:
        env = self.config.environments.get(environment)
        if env is None or env.alarms is None:
            return None
        src = self._alarm_sources.get(environment)
        if src is None:
            if isinstance(env.alarms, CloudWatchAlarms):
                from .sources.cloudwatch import CloudWatchAlarmSource

                src = CloudWatchAlarmSource(environment, env.alarms)
            else:
                from .sources.alertmanager import AlertmanagerSource

                src = AlertmanagerSource(environment, env.alarms)
            self._alarm_sources[environment] = src
        return src

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        return self._client

    async def close(self) -> None:
        for task in self._alarm_reads.values():
            task.cancel()
        if self._alarm_reads:
            await asyncio.gather(*self._alarm_reads.values(), return_exceptions=True)
            self._alarm_reads = {}
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def refresh(
        self, environments: Iterable[str], now: float, *, wait_for_alarms: bool = True, alarms: bool = True
    ) -> None:
        """Scrape each named environment's metrics once, and read every environment's alarm source
        (they feed the alarm list and `alarms` gates whatever rollout runs), concurrently; errors are
        kept by the source.

        `wait_for_alarms=False` (the runner's tick, the console's poll): alarm sources are read in
        the background, one read in flight per source, and the tick uses the latest answer, so a slow
        Alertmanager never delays the guards of a canary. Each read ends within its timeout, so the
        answer used is at most a timeout and a tick old; until the first one, `alarms` checks of its
        environment are unknown.

        `alarms=False`: the metrics only (checks that read no alarm, such as a colour's before the
        blue-green switch)."""
        jobs: list[Any] = []
        for name in set(environments):
            src = self.source(name)
            if src is not None:
                jobs.append(src.refresh(self.client(), now))
        reads = self.read_alarm_sources(now) if alarms else []
        if wait_for_alarms:
            jobs.extend(asyncio.shield(t) for t in reads)
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)

    def read_alarm_sources(self, now: float) -> list[asyncio.Task[Any]]:
        """Start a read of every environment's alarm source that has none in flight; the reads."""
        reads = []
        for name in self.config.environments:
            src = self.alarm_source(name)
            if src is None:
                continue
            task = self._alarm_reads.get(name)
            if task is None or task.done():
                task = asyncio.ensure_future(src.refresh(self.client(), now))
                self._alarm_reads[name] = task
            reads.append(task)
        return reads

    def metric(self, environment: str, query: str, now: float) -> Observation:
        src = self.source(environment)
        if src is None:
            return Observation(error=f"environment {environment} has no metrics source", at=now)
        return src.query(query, now)

    def evaluate_alarms(self, now: float) -> dict[str, alarm_rules.AlarmStatus]:
        for rule in self.config.alarm_rules:
            obs = self.metric(rule.environment, rule.query, now)
            status, mem = alarm_rules.evaluate_rule(rule, obs, self._alarm_memory.get(rule.name), now)
            self._alarm_memory[rule.name] = mem
            self.alarms[rule.name] = status
        for key in [k for k, a in self.alarms.items() if a.source != "rules"]:
            del self.alarms[key]
        for src in self._alarm_sources.values():
            if src.checked_at is not None:
                for a in src.statuses():
                    self.alarms.setdefault(a.ident, a)  # a rule of the console's own keeps its name
        return self.alarms

    def metric_environments(self, phases: Iterable[Phase]) -> set[str]:
        envs = {r.environment for r in self.config.alarm_rules}
        for phase in phases:
            for spec in (*phase.gates, *phase.guards):
                if spec.kind == "metric":
                    envs.add(spec.source or phase.environment)
        return envs

    async def read_improvement_counts(self, engine: Engine, phases: Iterable[Phase]) -> None:
        """The queue counts the `improvements` checks of `phases` judge, read from the store in a
        thread (the event loop never waits on the store). A count that cannot be read is left out:
        its check is unknown and holds."""
        keys = {
            (spec.source or phase.environment, spec.tenant)
            for phase in phases
            for spec in (*phase.gates, *phase.guards)
            if spec.kind == "improvements"
        }
        if keys:
            self.improvement_counts = await asyncio.to_thread(_improvement_counts, engine, keys)

    async def read_backup_runs(self, engine: Engine, phases: Iterable[Phase]) -> None:
        """The runs the `backup` checks of `phases` judge, read from the store in a thread. A target
        that cannot be read is left out: its check is unknown and holds."""
        targets = {
            spec.target
            for phase in phases
            for spec in (*phase.gates, *phase.guards)
            if spec.kind == "backup" and spec.target
        }
        if targets:
            self.backup_runs = await asyncio.to_thread(_backup_runs, engine, targets)

    async def observe(
        self,
        spec: GateSpec,
        rollout: Rollout,
        phase: Phase,
        now: float,
        env: Mapping[str, str] | None = None,
    ) -> Observation:
        """One observation of `spec`. `env`: added to a smoke command's environment (the colour it
        is aimed at)."""
        kind = spec.kind
        if kind == "metric":
            if placeholders(spec.query):  # aimed checks arrive substituted: no colour is known here
                return Observation(
                    error="the query names a colour ({colour}, {port}) and no colour takes traffic yet",
                    at=now,
                )
            return self.metric(spec.source or phase.environment, spec.query or "", now)
        if kind == "soak":
            return Observation(value=max(0.0, now - rollout.phase_started_at), source="clock", at=now)
        if kind == "checklist":
            ticked = {t.item for t in rollout.checklist}
            missing = [i for i in spec.items if i not in ticked]
            return Observation(
                value=float(len(spec.items) - len(missing)),
                source="checklist",
                at=now,
                detail=", ".join(missing),
            )
        if kind == "improvements":
            counts = self.improvement_counts.get((spec.source or phase.environment, spec.tenant))
            if counts is None:
                return Observation(error="improvement queue not read yet", source="improvements", at=now)
            deployed, kept, rolled_back = counts
            return Observation(
                value=kept,
                counts=(("deployed", deployed), ("kept", kept), ("rolled_back", rolled_back)),
                source="improvements",
                at=now,
            )
        if kind == "backup":
            return self._backup(spec.target or "", now)
        if kind == "alarms":
            firing = alarm_rules.matching_firing(self.alarms.values(), spec.none_firing)
            failed = alarm_rules.matching_failed(self.alarms.values(), spec.none_firing)
            if not firing:  # a firing alarm is a failure whatever the others say
                # The environment's own alarm source unread or unreachable: none firing is unknown.
                where = spec.source or phase.environment
                src = self.alarm_source(where)
                if src is not None and (src.checked_at is None or src.error is not None):
                    said = src.error or "not read yet"
                    return Observation(error=f"alarm source of {where}: {said}", source="alarms", at=now)
            if failed and not firing:
                first = failed[0]
                names = ", ".join(a.name for a in failed)
                return Observation(
                    error=f"alarm source failed for {names}: {first.reason}", source="alarms", at=now
                )
            return Observation(
                value=float(len(firing)), source="alarms", at=now, detail=", ".join(a.name for a in firing)
            )
        if kind == "health":
            health_key = ("health", spec.url or "", str(spec.timeout), str(spec.retries))
            return await self._once(health_key, now, lambda: self._health(spec, now))
        if kind == "smoke":
            extra = dict(env or {})
            smoke_key = (
                "smoke",
                *spec.command,
                str(spec.timeout),
                *sorted(f"{k}={v}" for k, v in extra.items()),
            )
            return await self._once(smoke_key, now, lambda: self._smoke(spec, now, extra))
        return Observation(error=f"gate kind {kind} cannot be observed", at=now)

    def _backup(self, target: str, now: float) -> Observation:
        read = self.backup_runs.get(target)
        if read is None:
            return Observation(error=f"backups of {target} not read yet", source="backups", at=now)
        verified, newest = read
        if newest is None:
            return Observation(error=f"no backup of {target} yet", source="backups", at=now)
        said = f"{newest.id} {newest.status}"
        if newest.reason and newest.status in ("failed", "verify_failed"):
            said += f": {newest.reason}"
        running = (("running", 1.0),) if newest.status == "running" else ()
        if verified is None:
            return Observation(value=math.inf, source="backups", at=now, detail=said, counts=running)
        detail = "" if newest.id == verified.id else said
        return Observation(
            value=max(0.0, now - verified.started_at),
            source=verified.id,
            at=now,
            detail=detail,
            counts=running,
        )

    async def _once(self, key: tuple[str, ...], now: float, fetch: Any) -> Observation:
        """One fetch per tick for identical checks: twenty rollouts watching the same /health
        make one request, not twenty (concurrent askers await the same task)."""
        if self._shared_at != now:
            self._shared = {}
            self._shared_at = now
        task = self._shared.get(key)
        if task is None:
            task = asyncio.ensure_future(fetch())
            self._shared[key] = task
        return await asyncio.shield(task)

    async def _health(self, spec: GateSpec, now: float) -> Observation:
        import httpx

        url = spec.url or ""
        shown = redact_url(url)  # what verdicts, the store and every screen get: no credentials
        error = ""
        for _attempt in range(spec.retries + 1):
            try:
                resp = await asyncio.wait_for(
                    self.client().get(url, timeout=spec.timeout), spec.timeout + 0.5
                )
                body = redact_text(resp.text[:500])
                return Observation(value=float(resp.status_code), source=shown, at=now, detail=body)
            except (TimeoutError, httpx.TimeoutException):
                error = f"timeout after {spec.timeout:g}s: {shown}"
            except httpx.HTTPError as exc:
                error = redact_text(f"{type(exc).__name__}: {shown}: {exc}")
        return Observation(error=error, source=shown, at=now)

    async def _smoke(self, spec: GateSpec, now: float, env: Mapping[str, str] | None = None) -> Observation:
        cmd = redact_text(" ".join(spec.command))  # a command line may carry --token=...
        try:
            proc = await asyncio.create_subprocess_exec(
                *spec.command,
                env={**os.environ, **env} if env else None,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            return Observation(error=redact_text(f"cannot run {cmd}: {exc}"), source=cmd, at=now)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), spec.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return Observation(error=f"timeout after {spec.timeout:g}s: {cmd}", source=cmd, at=now)
        tail = redact_text(out.decode(errors="replace").strip()[-500:])
        return Observation(value=float(proc.returncode or 0), source=cmd, at=now, detail=tail)


def configured_queries(config: Config) -> dict[str, list[str]]:
    """Environment -> every query the configuration asks of its metrics (gates and guards of every
    plan, alarm rules, the improvement queue's metric), each once: a source that is asked rather
    than scraped (Prometheus) runs them from its first refresh on. A query aimed at a colour
    (`{colour}`, `{port}`) is asked once per colour, substituted, never as written."""
    out: dict[str, dict[str, None]] = {}
    for plan in config.plans.values():
        for phase in plan.phases:
            for written in (*phase.gates, *phase.guards):
                for _aim, spec in variants(config, phase, written):
                    if spec.kind == "metric" and spec.query:
                        out.setdefault(spec.source or phase.environment, {})[spec.query] = None
    for rule in config.alarm_rules:
        if rule.query:
            out.setdefault(rule.environment, {})[rule.query] = None
    for environment, settings in config.improvements.items():
        if settings.metric:
            out.setdefault(environment, {})[settings.metric] = None
    return {env: list(queries) for env, queries in out.items()}


def due(spec: GateSpec, last_checked: float | None, now: float, interval: float) -> bool:
    """Whether a gate should be checked this tick (its own interval, smoke's default, else every tick)."""
    every = spec.interval or (SMOKE_INTERVAL if spec.kind == "smoke" else 0.0)
    if last_checked is None or every <= interval:
        return True
    return now - last_checked >= every - 1e-6


def _improvement_counts(
    engine: Engine, keys: Iterable[tuple[str, str | None]]
) -> dict[tuple[str, str | None], tuple[float, float, float]]:
    from .store import StoreError

    out: dict[tuple[str, str | None], tuple[float, float, float]] = {}
    for environment, tenant in keys:
        try:
            stats = engine.improvement_stats(environment, tenant)
        except StoreError:
            continue
        out[(environment, tenant)] = (float(stats.deployed), float(stats.kept), float(stats.rolled_back))
    return out


def _backup_runs(
    engine: Engine, targets: Iterable[str]
) -> dict[str, tuple[BackupRun | None, BackupRun | None]]:
    from .backups.model import RunStatus
    from .store import StoreError

    out: dict[str, tuple[BackupRun | None, BackupRun | None]] = {}
    for target in targets:
        try:
            # Every tick: the newest runs first, the whole history only when none of them is verified.
            runs = engine.backups(target, limit=_RECENT_RUNS)
            verified = next((r for r in runs if r.status == RunStatus.VERIFIED), None)
            if verified is None and len(runs) >= _RECENT_RUNS:
                older = engine.backups(target)
                verified = next((r for r in older if r.status == RunStatus.VERIFIED), None)
        except (StoreError, ValueError):
            continue
        out[target] = (verified, runs[0] if runs else None)
    return out
