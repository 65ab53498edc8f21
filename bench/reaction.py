"""Breach -> rollback reaction time, against the real demo service with a bad canary.

Five times: a fresh demo service (its own process, fault canary-errors: ~30% of v2 answers are 500s,
~60 rps of traffic) and a fresh workspace; a canary plan with steps [0, 50, 100], step_wait 1 s and the
guard error_rate <= 1% with failure_limit 2; Runner.run at the 1 s interval until the rollout ends.
reaction_s is Engine.report(id).reaction_s: from the first breaching measurement to the rollback
applied (flag files written). Target: <= guard interval + 1 s = 2.0 s.
"""

from __future__ import annotations

import asyncio
import time

from common import ACTOR, canary_plan, demo_guards, demo_service, emit, summary, temp_dir, write_config

from opsconsole.engine.core import Engine
from opsconsole.engine.model import TERMINAL_STATES, Rollout, RolloutState
from opsconsole.engine.runner import Runner

RUNS = 5
RPS = 60.0
TIMEOUT_S = 30.0


async def drive(engine: Engine, rollout_id: str) -> Rollout:
    """Run the engine until the rollout ends (or TIMEOUT_S)."""
    runner = Runner(engine)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and not task.done():
            r = engine.rollout(rollout_id)
            if r.state in TERMINAL_STATES:
                return r
            await asyncio.sleep(0.1)
        raise RuntimeError(f"rollout {rollout_id} did not end in {TIMEOUT_S:g}s: {r.state}, {r.reason}")
    finally:
        stop.set()
        await task


def rollback_facts(engine: Engine, rollout_id: str) -> tuple[str, float | None]:
    """Why the engine rolled back, and ms from the tick that found the breach (failure_limit reached)
    to the rollback applied: the engine's own share of the reaction, without the wait for data."""
    events = engine.audit_events(target=f"rollout:{rollout_id}")
    moves = {e.data.get("to"): e for e in events if e.action == "rollout.transition"}
    breached = [v.at for _, v in engine.verdict_history(rollout_id) if v.breached]
    done = moves.get("rolled_back")
    applied = round((done.at - breached[0]) * 1000, 1) if done is not None and breached else None
    start = moves.get("rolling_back")
    return (start.data.get("reason", "") if start is not None else ""), applied


def one_run(index: int) -> dict[str, object]:
    with temp_dir(f"opsconsole-bench-reaction-{index}-") as root:
        flag_file = root / "ws" / "flags" / "production.json"
        with demo_service(flag_file, fault="canary-errors", rps=RPS, seconds=60.0) as service:
            plan = canary_plan(
                "react", steps="[0, 50, 100]", step_wait="1s", guards=demo_guards(failure_limit=2, p95=False)
            )
            ws, config = write_config(root, {"react": plan}, metrics_url=f"{service.url}/metrics")
            engine = Engine(config, ws, ACTOR)
            try:
                t0 = time.monotonic()
                rid = engine.start_rollout("react", "benchmark: bad canary").id
                final = asyncio.run(drive(engine, rid))
                elapsed = time.monotonic() - t0
                report = engine.report(rid)
                rollback, breach = rollback_facts(engine, rid)
            finally:
                engine.close()
    return {
        "state": str(final.state),
        "reaction_s": report.reaction_s,
        "start_to_end_s": round(elapsed, 3),
        "breach_to_applied_ms": breach,
        "rollback_reason": rollback,
        "v2_answers": service.traffic.get("by_version", {}).get("v2"),
    }


def main() -> None:
    runs = [one_run(i) for i in range(RUNS)]
    reactions = [r["reaction_s"] for r in runs if isinstance(r["reaction_s"], float | int)]
    rolled_back = all(r["state"] == str(RolloutState.ROLLED_BACK) for r in runs)
    target = 1.0 + 1.0  # guard interval + 1 s
    figures: dict[str, object] = {"runs": runs}
    ok = rolled_back and len(reactions) == RUNS
    if reactions:
        stats = summary(reactions)
        figures["reaction_s"] = {k: stats[k] for k in ("n", "min", "p50", "max", "mean")}
        ok = ok and stats["max"] <= target
    emit(
        "reaction",
        target=f"reaction_s <= {target:g} s (guard interval 1 s + 1 s), every run rolled back",
        ok=ok,
        figures=figures,
        setup={
            "runs": RUNS,
            "fault": "canary-errors (~30% of v2 answers are 500)",
            "traffic_rps": RPS,
            "plan": "canary [0, 50, 100], step_wait 1s; guard error_rate max 1%, failure_limit 2",
            "interval_s": 1.0,
        },
    )


if __name__ == "__main__":
    main()
