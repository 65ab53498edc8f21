"""A console's hold on the engine.

The console runs the runner in its own event loop when nobody holds the workspace, so it runs the same
gates in the background that `opsconsole engine` runs. When another runner already holds it, the
console attaches as a client: it never starts a second runner, and it polls the store and scrapes the
metrics itself (read-only work) to keep its panes live.

On a PostgreSQL store the console also listens for what other processes commit (live.py): a change
made anywhere is on its panes within a second, and the header says who leads and how many consoles
are attached.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import health
from .aim import variants
from .model import GateSpec
from .observe import Observer
from .runner import EngineBusy, Runner

if TYPE_CHECKING:
    from .alarms import AlarmStatus
    from .core import Engine
    from .live import LiveFeed
    from .observe import MetricsSource

SPARK_POINTS = 60
"""How many recent scrapes a sparkline shows (one a tick: a minute at the default interval)."""

STALE_REFRESHES = 3
"""A value is stale once it is older than this many of its source's refresh intervals (plus one
timeout). One late refresh is normal (a tick delayed by a slow gate, a source answering near its
timeout); two in a row happen; three missed means the number on screen no longer describes the
system, whatever the reason (source down, runner stopped, refreshes hanging)."""

SOURCE_KIND = {"scrape": "scrape", "prometheus": "prom", "cloudwatch": "cw"}
"""How the pane names a series' source kind."""


@dataclass(frozen=True)
class MetricRow:
    """One key metric of an environment, as the Metrics pane shows it."""

    environment: str
    name: str
    query: str
    unit: str
    min: float | None
    max: float | None
    value: float | None
    error: str | None
    series: tuple[float | None, ...]
    source: str = ""
    """The source kind: scrape, prom or cw."""
    read_at: float | None = None
    """When the newest good value of this query was read from its source (None: never)."""
    age: float | None = None
    """Seconds since `read_at`, as of the moment the row was made."""
    stale_after: float = 0.0
    """The age past which the value is stale: STALE_REFRESHES source intervals plus one timeout."""
    fresh_within: float = 0.0
    """The age a value has between two good refreshes: one source interval plus one timeout."""

    @property
    def stale(self) -> bool:
        return self.age is not None and self.age > self.stale_after


class Session:
    def __init__(self, engine: Engine, *, run_engine: bool = True) -> None:
        self.engine = engine
        self.run_engine = run_engine
        self.runner: Runner | None = None
        self.mode = "stopped"  # runner | client | stopped
        self.error = ""
        """Why the runner stopped when nobody asked it to."""
        self._own_observer: Observer | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._series: dict[tuple[str, str], tuple[float | None, tuple[float | None, ...]]] = {}
        """(environment, query) -> (the source's last_refresh then, its last SPARK_POINTS points)."""
        self.live: LiveFeed | None = None
        """Listens for other processes' changes on a PostgreSQL store (None on SQLite)."""
        self._read_at: dict[tuple[str, str], float] = {}
        """(environment, query) -> when its newest good value was read (one entry per key metric)."""

    @property
    def observer(self) -> Observer:
        if self.runner is not None:
            return self.runner.observer
        if self._own_observer is None:
            self._own_observer = Observer(self.engine.config, keep=SPARK_POINTS * self.engine.config.interval)
        return self._own_observer

    async def start(self) -> None:
        await asyncio.to_thread(self.prepare)
        self.launch()

    def prepare(self) -> None:
        """The blocking half of start(), for a thread: apply EMERGENCY_SHUTDOWN, take the runner's
        lock if nobody holds it. Afterwards `mode` says what launch() will run; nothing ticks yet."""
        envs = {name for name, env in self.engine.config.environments.items() if env.metrics is not None}
        if self.run_engine:
            self._engage_from_environment()
        if self.run_engine and Runner.holder(self.engine.workspace) is None:
            runner = Runner(self.engine, keep=SPARK_POINTS * self.engine.config.interval)
            runner.observer.watch |= envs
            try:
                runner.acquire()  # another console or engine may have started since holder()
            except EngineBusy:
                pass
            else:
                self.runner = runner
                self.mode = "runner"
                return
        self.mode = "client"
        self.observer.watch |= envs

    def launch(self) -> None:
        """The runner's loop (or the client's poll) on the running event loop, after prepare(); the
        live feed in its own thread (it connects there, never on the loop)."""
        if self.live is None:
            from . import live

            self.live = live.start(self.engine)
        if self.runner is not None:
            self._task = asyncio.create_task(self.runner.run(self._stop))
            self._task.add_done_callback(self._runner_ended)
        else:
            self._task = asyncio.create_task(self._poll())

    def _engage_from_environment(self) -> None:
        from .authz import Forbidden

        try:
            self.engine.engage_from_environment()
        except Forbidden as exc:
            self.engine.bus.publish("warning", message=f"EMERGENCY_SHUTDOWN is set but not applied: {exc}")

    def _runner_ended(self, task: asyncio.Task[Any]) -> None:
        # The header must not go on saying "local" about a runner that is gone.
        if self._stop.is_set():
            return
        self.mode = "stopped"
        self.error = "" if task.cancelled() or task.exception() is None else str(task.exception())
        self.engine.bus.publish("engine", state="stopped", error=self.error)

    def health_note(self) -> str:
        """What the engine is waiting on ("store busy since 14:02:11"), empty when nothing. In client
        mode it is the other runner's, from its health file: call it off the event loop."""
        if self.mode == "runner" and self.runner is not None:
            return _joined(self.runner.health.current.note(), self.runner.notify_note)
        if self.mode == "client":
            other = health.read(self.engine.workspace, Runner.holder(self.engine.workspace))
            return _joined(other.note() if other is not None else "", self._notify_note())
        return _joined(self.error, self._notify_note())

    def _notify_note(self) -> str:
        """Notifications that did not get through, from the store's outbox ("" when it cannot say)."""
        from .store import StoreError
        from .targets import notify

        try:
            return notify.summary(self.engine.store, self.engine.clock()).note()
        except StoreError:
            return ""

    async def _poll(self) -> None:
        """Client mode: keep metrics and alarms fresh and tell subscribers to re-read the store."""
        observer = self.observer
        interval = self.engine.config.interval
        try:
            while not self._stop.is_set():
                now = self.engine.clock()
                await observer.refresh(observer.watch, now, wait_for_alarms=False)
                alarms = observer.evaluate_alarms(now)
                self.engine.bus.publish("alarms", alarms=dict(alarms))
                self.engine.bus.publish("poll")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), interval)
        finally:
            await observer.close()

    def team_text(self) -> str:
        """ "leader: host pid 12 │ 3 consoles" on a PostgreSQL store; empty on SQLite."""
        return self.live.status.text() if self.live is not None else ""

    async def stop(self) -> None:
        self._stop.set()
        if self.live is not None:
            live, self.live = self.live, None
            await asyncio.to_thread(live.stop)
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        elif self.runner is not None:
            self.runner.release()  # prepared, never launched: the lock is still ours
        self.mode = "stopped"

    # ------------------------------------------------------------------------------------ read models

    def alarms(self) -> list[AlarmStatus]:
        return sorted(self.observer.alarms.values(), key=lambda a: (a.state != "firing", a.name))

    def metric_rows(self, points: int = SPARK_POINTS) -> list[MetricRow]:
        """Every environment's key metrics: the metric gates and guards its plans name, and the
        queries of its alarm rules, each once."""
        now = self.engine.clock()
        rows: list[MetricRow] = []
        for env, specs in key_metrics(self.engine).items():
            src = self.observer.source(env)
            if src is None:
                continue
            metrics = self.engine.config.environments[env].metrics
            kind = SOURCE_KIND.get(metrics.kind, metrics.kind) if metrics is not None else ""
            stale_after = self.stale_after(src)
            fresh_within = stale_after - (STALE_REFRESHES - 1) * self._every(src)
            for spec in specs:
                query = spec.query or ""
                obs = src.query(query, now)
                read_at = self._read_at.get((env, query))
                if obs.error is None and obs.value is not None:
                    # A scrape source answers at the asking instant from its newest scrape: the value
                    # is as old as that scrape. Prometheus and CloudWatch stamp the refresh that read it.
                    read_at = obs.at if src.last_refresh is None else min(obs.at, src.last_refresh)
                    self._read_at[(env, query)] = read_at
                rows.append(
                    MetricRow(
                        env,
                        spec.name,
                        query,
                        spec.unit,
                        spec.min,
                        spec.max,
                        obs.value,
                        obs.error,
                        self._recent(env, src, query, points),
                        source=kind,
                        read_at=read_at,
                        age=None if read_at is None else max(0.0, now - read_at),
                        stale_after=stale_after,
                        fresh_within=fresh_within,
                    )
                )
        return rows

    def stale_after(self, src: MetricsSource) -> float:
        """How old a value of `src` may be before it is stale: STALE_REFRESHES of its refresh
        interval (the engine's tick; CloudWatch's own interval when longer) plus one timeout."""
        return STALE_REFRESHES * self._every(src) + float(src.timeout)

    def _every(self, src: MetricsSource) -> float:
        """How often `src` is refreshed: every tick, or CloudWatch's own interval when longer."""
        return max(float(self.engine.config.interval), float(getattr(src, "interval", 0.0) or 0.0))

    def _recent(self, env: str, src: MetricsSource, query: str, points: int) -> tuple[float | None, ...]:
        """src.series(query, points), computed incrementally: a point is the query's value at one scrape
        and never changes, so after the first call each new scrape costs two evaluations, not `points`
        (a console refreshing a 60-point sparkline every tick would otherwise spend tens of ms a tick).
        A Prometheus source fetches its points (query_range) and hands them over as they are."""
        if not src.incremental or src.last_refresh is None or not 0 < points <= SPARK_POINTS:
            return tuple(src.series(query, points))  # fed without refresh(): nothing to key a cache on
        key = (env, query)
        cached = self._series.get(key)
        if cached is None:
            series = tuple(src.series(query, SPARK_POINTS))
        elif cached[0] == src.last_refresh or src.last_error is not None:
            series = cached[1]  # no scrape since, or a failed one: it recorded nothing
        else:
            before, newest = src.series(query, 2)
            # The point before the newest is the one we ended on unless scrapes were missed meanwhile.
            if before == cached[1][-1]:
                series = (*cached[1][1:], newest)
            else:
                series = tuple(src.series(query, SPARK_POINTS))
        self._series[key] = (src.last_refresh, series)
        return series[-points:]


def key_metrics(engine: Engine) -> dict[str, list[GateSpec]]:
    out: dict[str, dict[tuple[str, str], GateSpec]] = {}
    for plan in engine.config.plans.values():
        for phase in plan.phases:
            for written in (*phase.guards, *phase.gates):
                # A check aimed at a colour is one row per colour, its query as asked.
                for aim, spec in variants(engine.config, phase, written):
                    if spec.kind == "metric" and spec.query:
                        env = spec.source or phase.environment
                        name = f"{spec.name} ({aim.colour})" if aim is not None else spec.name
                        out.setdefault(env, {}).setdefault((name, spec.query), replace(spec, name=name))
    for rule in engine.config.alarm_rules:
        spec = GateSpec(kind="metric", name=rule.name, query=rule.query, min=rule.min, max=rule.max)
        out.setdefault(rule.environment, {}).setdefault((rule.name, rule.query), spec)
    return {env: list(specs.values()) for env, specs in out.items()}


def _joined(*notes: str) -> str:
    return " │ ".join(n for n in notes if n)
