"""Engine CPU with 20 active rollouts at the 1 s interval, against the real demo service: once with the
scrape source reading its /metrics, once with a real Prometheus (started by the bench, 1 s scrape of
the same service) answering the guards' PromQL.

The demo service and its ~40 rps of traffic run in a separate process, so only the engine is
measured: every second it scrapes /metrics, checks /health once per rollout, evaluates the error-rate
and P95 guards of 20 canaries sitting at 10% (step_wait 1h, so nothing advances) and decides. After
the rollouts are in the canary and a short warm-up, process CPU (user + sys, every thread) is read over
30 s of Runner.run and reported as percent of one core. Target: <= 2% for each case.

The Prometheus case asks the same two guards in PromQL (error rate over 10 s, P95 from the histogram
over 10 s) of a Prometheus scraping the service every second; Prometheus's own CPU (a separate process)
is reported for context, not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from pathlib import Path

from common import ACTOR, canary_plan, demo_guards, demo_service, emit, start_rollouts, temp_dir, write_config
from prom import prometheus

from opsconsole.engine.config import load_config
from opsconsole.engine.core import Engine
from opsconsole.engine.model import RolloutState
from opsconsole.engine.runner import Runner

ROLLOUTS = 20
MEASURE_S = 30.0
WARMUP_S = 3.0
TARGET_PERCENT = 2.0


def cpu_seconds() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of another process, from /proc (for context only: not the engine's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


PROM_ERROR_RATE = (
    '(sum(rate(http_requests_total{version="v2",code=~"5.."}[10s])) or vector(0))'
    ' / sum(rate(http_requests_total{version="v2"}[10s]))'
)
PROM_P95 = (
    'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{version="v2"}[10s])))'
    " * 1000"
)
PROM_GUARDS = f"""
- {{kind: metric, name: error_rate, query: '{PROM_ERROR_RATE}', max: 0.01, unit: "%", failure_limit: 2}}
- {{kind: metric, name: p95_ms, query: '{PROM_P95}', max: 500, unit: ms, failure_limit: 2}}
"""
"""The demo plan's guards (error rate <= 1%, P95 <= 500 ms on v2) in PromQL; no 5xx series yet is 0."""


async def measure(engine: Engine, service_pid: int, other_pid: int | None = None) -> dict[str, float]:
    runner = Runner(engine)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        deadline = time.monotonic() + 15
        while not all(r.state is RolloutState.PROGRESSING for r in engine.rollouts()):
            if time.monotonic() > deadline or task.done():
                raise RuntimeError(f"rollouts did not reach the canary: {engine.rollouts()[0].reason}")
            await asyncio.sleep(0.2)
        await asyncio.sleep(WARMUP_S)  # baselines, the 10 s metric window filling
        ticks0, evals0, commits0 = runner.stats.ticks, runner.stats.evaluations, runner.stats.commits
        svc0 = process_cpu_seconds(service_pid)
        other0 = process_cpu_seconds(other_pid) if other_pid is not None else 0.0
        (u0, s0), t0 = cpu_seconds(), time.perf_counter()
        await asyncio.sleep(MEASURE_S)
        (u1, s1), wall = cpu_seconds(), time.perf_counter() - t0
        svc = process_cpu_seconds(service_pid) - svc0
        other = process_cpu_seconds(other_pid) - other0 if other_pid is not None else None
    finally:
        stop.set()
        await task
    user, system = u1 - u0, s1 - s0
    figures = {
        "cpu_percent_of_one_core": round((user + system) / wall * 100, 3),
        "user_s": round(user, 3),
        "sys_s": round(system, 3),
        "wall_s": round(wall, 3),
        "ticks": runner.stats.ticks - ticks0,
        "evaluations": runner.stats.evaluations - evals0,
        "commits": runner.stats.commits - commits0,
        "last_tick_ms": round(runner.stats.last_ms, 2),
        "service_process_cpu_percent": round(svc / wall * 100, 2),
    }
    if other is not None:
        figures["prometheus_process_cpu_percent"] = round(other / wall * 100, 2)
    return figures


def run_case(kind: str) -> tuple[dict[str, float], dict[str, object]]:
    """One case (`scrape` or `prometheus`) on a fresh service and workspace: (figures, setup)."""
    with temp_dir(f"opsconsole-bench-cpu-{kind}-") as root:
        flag_file = root / "ws" / "flags" / "production.json"
        with demo_service(flag_file, rps=40.0, seconds=150.0) as service, contextlib.ExitStack() as stack:
            gates = f'- {{kind: health, url: "{service.url}/health", timeout: 1s}}'
            guards = demo_guards() if kind == "scrape" else PROM_GUARDS
            plan = canary_plan("cpu", steps="[10, 50, 100]", step_wait="1h", guards=guards, gates=gates)
            if kind == "scrape":
                ws, config = write_config(root, {"cpu": plan}, metrics_url=f"{service.url}/metrics")
                prom_pid = None
            else:
                # Written without the plan first: its PromQL is checked against the source it names.
                unguarded = canary_plan("cpu", steps="[10, 50, 100]", step_wait="1h", gates=gates)
                ws, _ = write_config(root, {"cpu": unguarded}, metrics_url=f"{service.url}/metrics")
                prom = stack.enter_context(prometheus(root, [f"127.0.0.1:{service.port}"]))
                prom_pid = prom.pid
                (root / "plans" / "cpu.yaml").write_text(plan)
                path = ws / "opsconsole.yaml"
                scrape = f'metrics: {{kind: scrape, url: "{service.url}/metrics", timeout: 1s, window: 10s}}'
                prom_source = f'metrics: {{kind: prometheus, url: "{prom.url}", timeout: 1s}}'
                path.write_text(path.read_text().replace(scrape, prom_source))
                config = load_config(path, {"WORKSPACE": str(ws)})
            engine = Engine(config, ws, ACTOR)
            try:
                start_rollouts(engine, "cpu", ROLLOUTS)
                figures = asyncio.run(measure(engine, service.pid, prom_pid))
                rollouts = engine.rollouts()
                states = sorted({str(r.state) for r in rollouts})
                verdicts = {v.gate: f"{v.status}: {v.reason}" for v in rollouts[0].verdicts}
            finally:
                engine.close()
        traffic = service.traffic
    setup: dict[str, object] = {
        "metrics_source": kind,
        "states_after": states,
        "verdicts_of_one_rollout": verdicts,
        "traffic": traffic,
    }
    return figures, setup


def main() -> None:
    cases = {kind: run_case(kind) for kind in ("scrape", "prometheus")}
    ok = all(
        figures["cpu_percent_of_one_core"] <= TARGET_PERCENT and setup["states_after"] == ["progressing"]
        for figures, setup in cases.values()
    )
    scrape_figures = cases["scrape"][0]
    emit(
        "engine_cpu",
        target=f"<= {TARGET_PERCENT:g}% of one core (each case)",
        ok=ok,
        figures=scrape_figures,
        prometheus={"figures": cases["prometheus"][0], "setup": cases["prometheus"][1]},
        setup={
            "rollouts": ROLLOUTS,
            "interval_s": 1.0,
            "checks_per_rollout": "guards error_rate, p95_ms; gate health (HTTP)",
            "canary_percent": 10,
            "prometheus_guards": {"error_rate": PROM_ERROR_RATE, "p95_ms": PROM_P95},
            **cases["scrape"][1],
        },
    )


if __name__ == "__main__":
    main()
