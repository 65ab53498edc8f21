"""Engine CPU with 20 active rollouts at the 1 s interval, against the real demo service.

The demo service and its ~40 rps of traffic run in a separate process, so only the engine is
measured: every second it scrapes /metrics, checks /health once per rollout, evaluates the error-rate
and P95 guards of 20 canaries sitting at 10% (step_wait 1h, so nothing advances) and decides. After
the rollouts are in the canary and a short warm-up, process CPU (user + sys, every thread) is read over
30 s of Runner.run and reported as percent of one core. Target: <= 2%.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from pathlib import Path

from common import ACTOR, canary_plan, demo_guards, demo_service, emit, start_rollouts, temp_dir, write_config

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


async def measure(engine: Engine, service_pid: int) -> dict[str, float]:
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
        (u0, s0), t0 = cpu_seconds(), time.perf_counter()
        await asyncio.sleep(MEASURE_S)
        (u1, s1), wall = cpu_seconds(), time.perf_counter() - t0
        svc = process_cpu_seconds(service_pid) - svc0
    finally:
        stop.set()
        await task
    user, system = u1 - u0, s1 - s0
    return {
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


def main() -> None:
    with temp_dir("opsconsole-bench-cpu-") as root:
        flag_file = root / "ws" / "flags" / "production.json"
        with demo_service(flag_file, rps=40.0, seconds=120.0) as service:
            gates = f'- {{kind: health, url: "{service.url}/health", timeout: 1s}}'
            plan = canary_plan(
                "cpu", steps="[10, 50, 100]", step_wait="1h", guards=demo_guards(), gates=gates
            )
            ws, config = write_config(root, {"cpu": plan}, metrics_url=f"{service.url}/metrics")
            engine = Engine(config, ws, ACTOR)
            try:
                start_rollouts(engine, "cpu", ROLLOUTS)
                figures = asyncio.run(measure(engine, service.pid))
                rollouts = engine.rollouts()
                states = sorted({str(r.state) for r in rollouts})
                verdicts = {v.gate: f"{v.status}: {v.reason}" for v in rollouts[0].verdicts}
            finally:
                engine.close()
        traffic = service.traffic
    ok = figures["cpu_percent_of_one_core"] <= TARGET_PERCENT and states == ["progressing"]
    emit(
        "engine_cpu",
        target=f"<= {TARGET_PERCENT:g}% of one core",
        ok=ok,
        figures=figures,
        setup={
            "rollouts": ROLLOUTS,
            "interval_s": config.interval,
            "checks_per_rollout": "guards error_rate, p95_ms; gate health (HTTP)",
            "canary_percent": 10,
            "states_after": states,
            "verdicts_of_one_rollout": verdicts,
            "traffic": traffic,
        },
    )


if __name__ == "__main__":
    main()
