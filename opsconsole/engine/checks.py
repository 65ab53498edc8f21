"""`gates check`: evaluate a rollout's current gates and guards once, now, as the runner would.

In a blue_green phase, checks aimed at a colour (`{colour}`, `{port}` in a metric query; smoke
commands) measure the colour the service's deploy journal says takes traffic, and their verdicts say
which colour and the query as asked.

Rates need two scrapes, so when the phase has metric checks the sources are scraped, and scraped
again a moment later, before evaluating. The result is not stored: it answers a question (for a CI
job or a person) and must not change the rollout.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from . import gates as gate_logic
from .aim import Aim, aim_of, aimed, colour_ports, said
from .model import GateMemory, GateVerdict, Phase
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
        aim = await asyncio.to_thread(live_aim, engine, phase)
        env = aim.env() if aim is not None else None
        for role, specs in (("gate", phase.gates), ("guard", phase.guards)):
            for written in specs:
                spec = aimed(written, aim)
                obs = await observer.observe(spec, r, phase, now, env if spec.kind == "smoke" else None)
                v, _ = gate_logic.evaluate(spec, obs, r.memory.get(f"{role}:{spec.name}", GateMemory()), now)
                out.append((role, said(v, written, aim)))
        return out
    finally:
        await observer.close()


def live_aim(engine: Engine, phase: Phase) -> Aim | None:
    """The colour of a blue_green phase's service that takes traffic now (its deploy journal), which
    the phase's checks aim at; None for any other phase or before a deploy of the service."""
    if not colour_ports(engine.config, phase) or phase.strategy is None or not phase.strategy.service:
        return None
    from .deploy.aimed import live_colour
    from .deploy.journal import Journal

    try:
        state = Journal(engine.workspace, phase.strategy.service, engine.store).read()
    except Exception:  # noqa: BLE001 - unreadable: the aimed checks say no colour is known
        return None
    return aim_of(engine.config, phase, live_colour(state))
