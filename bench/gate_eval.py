"""Gate evaluations per second on one core (the process is pinned to one CPU).

(a) `gates.evaluate` alone over a realistic mix of checks — absolute and relative metrics, health, soak,
    alarms, checklist — passing and failing, with observations computed beforehand.
(b) The runner's whole tick on 50 canary rollouts with 7 checks each: load the rollouts from SQLite,
    query the metric history, evaluate, decide, commit what changed. Metrics come from a ScrapeSource
    fed with synthetic snapshots (no HTTP) and health answers are canned, so the figure is the engine's
    own work. A simulated clock moves 1 s per tick, as the real 1 s interval would, so the metric history
    holds what a 10 s window really holds. Evaluations counted by Runner.stats over wall time.
Target: >= 2,000 evaluations per second.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable

from common import (
    ACTOR,
    ERROR_RATE_QUERY,
    P95_QUERY,
    canary_plan,
    emit,
    start_rollouts,
    temp_dir,
    write_config,
)

from opsconsole.demo.service import BUCKETS
from opsconsole.engine import gates
from opsconsole.engine.core import Engine
from opsconsole.engine.model import Config, GateMemory, GateSpec, Observation, Phase, Rollout, RolloutState
from opsconsole.engine.observe import Observer
from opsconsole.engine.runner import Runner
from opsconsole.engine.sources.promtext import Sample

TARGET_PER_S = 2000.0
PURE_SECONDS = 2.0
TICK_SECONDS = 5.0
ROLLOUTS = 50
URL = "http://127.0.0.1:9/health"  # never contacted: health answers are canned in (b)


def pure_cases() -> list[tuple[GateSpec, Observation, GateMemory]]:
    err = GateSpec("metric", "error_rate", query=ERROR_RATE_QUERY, max=0.01, unit="%", failure_limit=2)
    p95 = GateSpec("metric", "p95_ms", query=P95_QUERY, max=500, unit="ms", failure_limit=2)
    rel = GateSpec("metric", "p95_vs_baseline", query=P95_QUERY, max_increase=0.2, unit="ms")
    health = GateSpec("health", "health", url=URL, body_contains="ok")
    soak = GateSpec("soak", "soak", duration=600)
    alarms = GateSpec("alarms", "alarms", none_firing=("Demo*", "SelfBuilding-*"))
    checklist = GateSpec("checklist", "checklist", items=("release notes", "on-call told", "runbook"))
    fresh, failing, based = GateMemory(), GateMemory(failures=1), GateMemory(baseline=120.0)
    src = "http://127.0.0.1:8780/metrics"
    return [
        (err, Observation(0.002, source=src), fresh),
        (err, Observation(0.031, source=src), failing),
        (p95, Observation(84.0, source=src), fresh),
        (p95, Observation(730.0, source=src), fresh),
        (rel, Observation(121.0, source=src), fresh),  # captures the baseline
        (rel, Observation(130.0, source=src), based),
        (rel, Observation(190.0, source=src), based),
        (health, Observation(200.0, source=URL, detail='{"status": "ok"}'), fresh),
        (health, Observation(503.0, source=URL, detail="unavailable"), fresh),
        (soak, Observation(240.0, source="clock"), fresh),
        (soak, Observation(900.0, source="clock"), fresh),
        (alarms, Observation(0.0, source="alarms"), fresh),
        (alarms, Observation(1.0, source="alarms", detail="DemoHighErrorRate"), fresh),
        (checklist, Observation(1.0, source="checklist", detail="on-call told, runbook"), fresh),
        (checklist, Observation(3.0, source="checklist"), fresh),
    ]


def bench_pure() -> dict[str, float]:
    cases = pure_cases()
    count, now = 0, time.time()
    cpu0, t0 = time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < PURE_SECONDS:
        for spec, obs, memory in cases:
            gates.evaluate(spec, obs, memory, now)
        count += len(cases)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "evaluations": count,
        "wall_s": round(wall, 3),
        "per_s": round(count / wall),
        "cpu_s": round(cpu, 3),
    }


# ------------------------------------------------------------------------------------------ (b)


class SimClock:
    """Engine time that moves only when told: one tick = one interval, however fast ticks run."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class SyntheticMetrics:
    """Cumulative counters of a service taking 40 rps, 10% of it on the canary (v2), no v2 errors,
    an occasional v1 error, latencies of 5-10 ms: the demo service's series, without the service."""

    def __init__(self) -> None:
        self.seconds = 0
        self.requests = {("v1", "200"): 0, ("v1", "500"): 0, ("v2", "200"): 0, ("v2", "500"): 0}
        self.buckets = {v: [0] * (len(BUCKETS) + 1) for v in ("v1", "v2")}

    def advance(self) -> list[Sample]:
        self.seconds += 1
        error = 1 if self.seconds % 7 == 0 else 0
        for key, n in ((("v1", "200"), 36 - error), (("v1", "500"), error), (("v2", "200"), 4)):
            self.requests[key] += n
        for version, n in (("v1", 36), ("v2", 4)):
            self.buckets[version][0] += n // 2
            self.buckets[version][1] += n - n // 2
        out = [
            Sample("http_requests_total", (("version", v), ("code", c)), float(n))
            for (v, c), n in self.requests.items()
        ]
        for version, counts in self.buckets.items():
            total = 0
            for bound, count in zip((*BUCKETS, "+Inf"), counts, strict=True):
                total += count
                labels = (("version", version), ("le", str(bound)))
                out.append(Sample("http_request_duration_seconds_bucket", labels, float(total)))
            out.append(Sample("http_request_duration_seconds_count", (("version", version),), float(total)))
        return out


class RecordedObserver(Observer):
    """The runner's observer, with each scrape replaced by the next synthetic snapshot and health
    checks answered 200 without a request."""

    def __init__(self, config: Config, metrics: SyntheticMetrics) -> None:
        super().__init__(config)
        self.metrics = metrics

    async def refresh(self, environments: Iterable[str], now: float) -> None:
        samples = self.metrics.advance()
        for name in set(environments):
            src = self.source(name)
            if src is not None:
                src.record(samples, now)
                src.last_error, src.last_refresh = None, now

    async def observe(self, spec: GateSpec, rollout: Rollout, phase: Phase, now: float) -> Observation:
        if spec.kind == "health":
            return Observation(200.0, source=spec.url or "", at=now, detail='{"status": "ok"}')
        return await super().observe(spec, rollout, phase, now)


GUARDS = f"""
- {{kind: metric, name: error_rate, query: '{ERROR_RATE_QUERY}', max: 0.01, unit: "%", failure_limit: 2}}
- {{kind: metric, name: p95_ms, query: '{P95_QUERY}', max: 500, unit: ms, failure_limit: 2}}
- {{kind: metric, name: p95_vs_baseline, query: '{P95_QUERY}', max_increase: 50%, unit: ms, failure_limit: 2}}
- {{kind: alarms, none_firing: ["Bench*"]}}
"""
GATES = f"""
- {{kind: health, url: "{URL}", timeout: 1s}}
- {{kind: soak, min: 10m}}
- {{kind: checklist, items: ["release notes", "on-call told"]}}
"""
ALARM_RULES = """
alarms:
  rules:
    - {name: BenchHighErrorRate, environment: production, query: 'ratio(http_requests_total{code=~"5.."}, http_requests_total)', max: 0.05, for: 10s}
"""


async def run_ticks(engine: Engine, clock: SimClock) -> dict[str, float]:
    runner = Runner(engine)
    runner.observer = RecordedObserver(engine.config, SyntheticMetrics())
    try:
        for _ in range(3):  # warm-up: pending -> progressing, baselines captured, history filled
            clock.now += runner.interval
            await runner.tick()
        evals0, commits0, ticks0 = runner.stats.evaluations, runner.stats.commits, runner.stats.ticks
        cpu0, t0 = time.process_time(), time.perf_counter()
        while time.perf_counter() - t0 < TICK_SECONDS:
            clock.now += runner.interval
            await runner.tick()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        await runner.observer.close()
    evaluations = runner.stats.evaluations - evals0
    ticks = runner.stats.ticks - ticks0
    return {
        "evaluations": evaluations,
        "ticks": ticks,
        "commits": runner.stats.commits - commits0,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "per_s": round(evaluations / wall),
        "ms_per_tick": round(wall / ticks * 1000, 2),
        "evaluations_per_tick": evaluations // ticks,
    }


def bench_ticks() -> dict[str, float]:
    with temp_dir("opsconsole-bench-gates-") as root:
        plan = canary_plan("gates", steps="[10, 50, 100]", guards=GUARDS, gates=GATES)
        ws, config = write_config(
            root, {"gates": plan}, metrics_url="http://127.0.0.1:9/metrics", extra=ALARM_RULES
        )
        clock = SimClock()
        engine = Engine(config, ws, ACTOR, clock=clock)
        try:
            start_rollouts(engine, "gates", ROLLOUTS)
            out = asyncio.run(run_ticks(engine, clock))
            states = {r.state for r in engine.rollouts()}
            assert states == {RolloutState.PROGRESSING}, states  # nothing advanced or rolled back
        finally:
            engine.close()
    return out | {"rollouts": ROLLOUTS}


def main() -> None:
    allowed = os.sched_getaffinity(0)
    cpu = max(allowed)
    os.sched_setaffinity(0, {cpu})  # "one core": every thread of this process on one CPU
    try:
        pure, ticks = bench_pure(), bench_ticks()
    finally:
        os.sched_setaffinity(0, allowed)
    emit(
        "gate_eval",
        target=f">= {TARGET_PER_S:,.0f} evaluations/s (runner tick)",
        ok=ticks["per_s"] >= TARGET_PER_S and pure["per_s"] >= TARGET_PER_S,
        figures={"pure_evaluate": pure, "runner_tick": ticks},
        setup={
            "pinned_cpu": cpu,
            "pure_mix": "metric absolute/relative, health, soak, alarms, checklist; passing and failing",
            "tick_checks_per_rollout": "guards: error_rate, p95_ms, p95_vs_baseline, alarms; "
            "gates: health (canned 200), soak, checklist",
            "store": "sqlite (WAL, synchronous=FULL)",
        },
    )


if __name__ == "__main__":
    main()
