"""`gates check`: evaluate a rollout's current gates and guards once, now, as the runner would.

Rates need two scrapes, so when the phase has metric checks the sources are scraped, and scraped
again a moment later, before evaluating. The result is not stored: it answers a question (for a CI
job or a person) and must not change the rollout.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from . import gates as gate_logic
from .model import GateMemory, GateVerdict
from .observe import Observer
from .rollout import current_phase

if TYPE_CHECKING:
    from .core import Engine

RATE_SAMPLE_GAP = 1.0


async def check_now(engine: Engine, rollout_id: str) -> list[tuple[str, GateVerdict]]:
    r = engine.rollout(rollout_id)
    plan = engine.plan(r.plan)
    phase = current_phase(plan, r)
    observer = Observer(engine.config)
    try:
        envs = observer.metric_environments([phase])
        if envs:
            await observer.refresh(envs, engine.clock())
            await asyncio.sleep(RATE_SAMPLE_GAP)
            await observer.refresh(envs, engine.clock())
        else:
            await observer.refresh((), engine.clock())  # the environments' alarm sources, read once
        await observer.read_improvement_counts(engine, [phase])
        await observer.read_backup_runs(engine, [phase])
        now = engine.clock()
        observer.evaluate_alarms(now)
        out = []
        for role, specs in (("gate", phase.gates), ("guard", phase.guards)):
            for spec in specs:
                obs = await observer.observe(spec, r, phase, now)
                v, _ = gate_logic.evaluate(spec, obs, r.memory.get(f"{role}:{spec.name}", GateMemory()), now)
                out.append((role, v))
        return out
    finally:
        await observer.close()
