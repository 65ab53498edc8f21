"""A blue_green phase's checks aimed at its colours: what the engine hands a blue-green deploy as its
Hooks (`before_switch`, `watch`), and the colour that takes traffic once a deploy is done.

Before the switch, every check of the phase that can be aimed at the new colour is checked on it:
`health` checks on the colour's own port (the host of the service's health URL), `smoke` commands
with OPSCONSOLE_COLOUR and OPSCONSOLE_PORT in their environment, and `metric` checks whose query says
`{colour}` or `{port}` (the metrics source is asked the substituted query; a `max_increase` is judged
against the live colour's value of the same query). Gates must pass, guards must not breach, within
BEFORE_SWITCH_WAIT. The others (soak, approvals, checklists, alarms, metric queries without a
placeholder, which measure the live traffic) cannot say anything about a colour that has no traffic
yet: the runner checks them after the switch.

During `keep_old` the phase's guards (metric guards aimed at the new colour or reading the live
traffic, alarms, health, smoke) run in a thread of their own beside the deploy's health watch, each on
its interval; the first that breaches ends the watch, and the deploy switches traffic back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ..aim import Aim, aim_of, aimable, aimed, said
from ..model import GateMemory, Verdict

if TYPE_CHECKING:
    from ..core import Engine
    from ..model import GateSpec, GateVerdict, Phase, Rollout
    from ..observe import Observer
    from .model import ServiceSpec

log = logging.getLogger(__name__)

BEFORE_SWITCH_WAIT = 60.0
"""Bound on how long a check may stay undecided (unknown, pending) on the new colour before the switch."""
PAUSE = 0.5
"""Seconds between two rounds of the checks before the switch."""
WATCHED = ("metric", "alarms", "health", "smoke")
"""Guard kinds watched during keep_old (an `improvements` guard reads the store: the runner's)."""
CLOSE_WAIT = 10.0
"""Bound on waiting for the guard watch's thread to end (a round is bounded by the sources' timeouts)."""


def on_port(url: str, health_url: str | None, port: int) -> str:
    """`url` (a gate's) on the colour's own address: the host of the service's health URL (or
    127.0.0.1) and the colour's port; the path, query and scheme kept."""
    host = urlsplit((health_url or "").replace("{port}", str(port))).hostname or "127.0.0.1"
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{host}:{port}"))


def live_colour(state: Mapping[str, Any] | None) -> str | None:
    """The colour taking traffic, from a blue-green deploy's journal: the new one once switched (and
    kept when the deploy succeeded), else the one that was live."""
    if not state or state.get("strategy") not in (None, "blue_green"):  # the store's row has no strategy
        return None
    from .bluegreen import BG_SWITCHED
    from .journal import DONE

    phase, new, live = state.get("phase"), state.get("new"), state.get("live")
    if phase == BG_SWITCHED or (phase == DONE and state.get("outcome") == "ok"):
        return str(new) if new else None
    return str(live) if live else None


@dataclass(frozen=True)
class _Check:
    role: str
    """gate or guard"""
    written: GateSpec
    asked: GateSpec
    """`written` aimed at the colour."""
    env: dict[str, str] | None
    """A smoke command's extra environment."""


class ColourChecks:
    """The hooks of one blue_green phase's deploy. Made in the deploy's thread (it reads the store)."""

    def __init__(self, engine: Engine, rollout_id: str, phase_index: int, service: ServiceSpec) -> None:
        self.engine = engine
        self.rollout: Rollout = engine.rollout(rollout_id)
        self.phase: Phase = engine.plan(self.rollout.plan).phases[phase_index]
        self.service = service

    # ------------------------------------------------------------------------------ before the switch

    def aimable(self) -> list[tuple[str, GateSpec]]:
        """The phase's checks that can be aimed at a colour."""
        return [
            (role, spec)
            for role, specs in (("gate", self.phase.gates), ("guard", self.phase.guards))
            for spec in specs
            if (spec.kind == "health" and spec.url) or spec.kind == "smoke" or aimable(spec)
        ]

    def before_switch(self, colour: str, ports: tuple[int, ...], live: str | None) -> tuple[bool, str]:
        """Blocks (the deploy's thread) until the aimed checks are decided on `colour`, bounded. Checks
        that cannot run at all refuse the switch (the new colour is removed, traffic stays)."""
        try:
            return asyncio.run(self._before_switch(colour, ports, live))
        except Exception as exc:  # noqa: BLE001 - never a switch to a colour nobody could check
            log.warning("checks on %s could not run: %s: %s", colour, type(exc).__name__, exc)
            return False, f"the checks could not run: {type(exc).__name__}: {exc}"

    def _aim(self, colour: str, ports: tuple[int, ...]) -> Aim:
        return aim_of(self.engine.config, self.phase, colour) or Aim(colour, ports[0] if ports else None)

    async def _before_switch(self, colour: str, ports: tuple[int, ...], live: str | None) -> tuple[bool, str]:
        from .. import gates as gate_logic
        from ..observe import Observer

        aim = self._aim(colour, ports)
        port = aim.port or 0
        old = aim_of(self.engine.config, self.phase, live) if live and live != colour else None
        checks = []
        for role, spec in self.aimable():
            if spec.kind == "health":
                moved = replace(spec, url=on_port(spec.url or "", self.service.health.url, port))
                checks.append(_Check(role, spec, moved, None))
            elif spec.kind == "smoke":
                checks.append(
                    _Check(role, spec, spec, {"OPSCONSOLE_SERVICE": self.service.name, **aim.env()})
                )
            else:
                checks.append(_Check(role, spec, aimed(spec, aim), None))
        observer = Observer(self.engine.config)
        envs = {c.asked.source or self.phase.environment for c in checks if c.asked.kind == "metric"}
        memory = {i: GateMemory() for i in range(len(checks))}
        last: dict[int, GateVerdict] = {}
        left = list(range(len(checks)))
        deadline = time.monotonic() + BEFORE_SWITCH_WAIT
        try:
            for c in checks:  # asked from the first refresh on (a source that is asked, not scraped)
                if c.asked.kind == "metric":
                    env = c.asked.source or self.phase.environment
                    observer.metric(env, c.asked.query or "", time.time())
                    if old is not None and c.asked.max_increase is not None:
                        observer.metric(env, aimed(c.written, old).query or "", time.time())
            while True:
                now = time.time()
                if envs:
                    await observer.refresh(envs, now, alarms=False)
                seen = await asyncio.gather(
                    *(
                        observer.observe(checks[i].asked, self.rollout, self.phase, now, checks[i].env)
                        for i in left
                    )
                )
                for i, obs in zip(list(left), seen, strict=True):
                    c = checks[i]
                    mem = memory[i]
                    if old is not None and c.asked.max_increase is not None and mem.baseline is None:
                        # "No worse than the live colour": the baseline is the live colour's value.
                        base = self._baseline(observer, c, old, now)
                        if base is None:
                            continue
                        mem = replace(mem, baseline=base)
                    verdict, memory[i] = gate_logic.evaluate(c.asked, obs, mem, now)
                    verdict = said(verdict, c.written, aim)
                    last[i] = verdict
                    if verdict.status is Verdict.PASS:
                        left.remove(i)
                    elif verdict.breached:
                        return False, f"{c.role} {c.written.name}: {verdict.reason}"
                if not left:
                    return True, _passed(colour, checks, last)
                if time.monotonic() > deadline:
                    gates = [i for i in left if checks[i].role == "gate"]
                    if gates:
                        c, v = checks[gates[0]], last.get(gates[0])
                        why = f"{v.status}: {v.reason}" if v is not None else f"no baseline from {live}"
                        return (
                            False,
                            f"gate {c.written.name} still undecided after {BEFORE_SWITCH_WAIT:g}s ({why})",
                        )
                    return True, _passed(colour, checks, last)
                await asyncio.sleep(PAUSE)
        finally:
            await observer.close()

    def _baseline(self, observer: Observer, c: _Check, old: Aim, now: float) -> float | None:
        env = c.asked.source or self.phase.environment
        obs = observer.metric(env, aimed(c.written, old).query or "", now)
        return obs.value if obs.error is None else None

    # ------------------------------------------------------------------------------ during keep_old

    def watch(self, colour: str, ports: tuple[int, ...]) -> PhaseGuardWatch | None:
        guards = [g for g in self.phase.guards if g.kind in WATCHED]
        if not guards:
            return None
        watch = PhaseGuardWatch(self.engine, self.rollout, self.phase, guards, self._aim(colour, ports))
        watch.start()
        return watch


def _passed(colour: str, checks: list[_Check], last: dict[int, GateVerdict]) -> str:
    parts = []
    for i, c in enumerate(checks):
        v = last.get(i)
        if v is None:
            parts.append(f"{c.role} {c.written.name}: no baseline yet; watched after the switch")
        elif v.status is Verdict.PASS:
            parts.append(f"{c.role} {c.written.name}: {v.reason}")
        else:
            parts.append(f"{c.role} {c.written.name}: {v.status} ({v.reason}); watched after the switch")
    return f"the phase's gates pass on {colour}: " + "; ".join(parts)


class PhaseGuardWatch:
    """The phase's guards, aimed at the new colour, checked in a thread with its own event loop until
    closed or one breaches (deploy.model.GuardWatch)."""

    def __init__(
        self, engine: Engine, rollout: Rollout, phase: Phase, guards: list[GateSpec], aim: Aim
    ) -> None:
        self.engine = engine
        self.rollout = rollout
        self.phase = phase
        self.guards = guards
        self.aim = aim
        self.interval = max(0.2, float(engine.config.interval))
        self._breach: str | None = None
        self._breached = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"guards on {aim.colour}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait(self, timeout: float) -> str | None:
        self._breached.wait(max(0.0, timeout))
        return self._breach

    def close(self) -> None:
        self._stop.set()
        self._thread.join(CLOSE_WAIT)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception as exc:  # noqa: BLE001 - a broken watch is said; the health watch goes on
            log.warning("guards on %s not watched: %s: %s", self.aim.colour, type(exc).__name__, exc)

    async def _run(self) -> None:
        from .. import gates as gate_logic
        from ..observe import Observer, due

        config = self.engine.config
        observer = Observer(config)
        asked = [aimed(g, self.aim) for g in self.guards]
        alarms = any(g.kind == "alarms" for g in asked)
        envs = {g.source or self.phase.environment for g in asked if g.kind == "metric"}
        if alarms:
            envs |= {rule.environment for rule in config.alarm_rules}
        memory: dict[str, GateMemory] = {}
        try:
            for g in asked:
                if g.kind == "metric":
                    observer.metric(g.source or self.phase.environment, g.query or "", time.time())
            while not self._stop.is_set():
                now = time.time()
                await observer.refresh(envs, now, alarms=alarms)
                if alarms:
                    observer.evaluate_alarms(now)
                todo = [
                    (written, g)
                    for written, g in zip(self.guards, asked, strict=True)
                    if due(g, memory.get(g.name, GateMemory()).last_checked, now, self.interval)
                ]
                seen = await asyncio.gather(
                    *(
                        observer.observe(
                            g, self.rollout, self.phase, now, self.aim.env() if g.kind == "smoke" else None
                        )
                        for _, g in todo
                    )
                )
                for (written, g), obs in zip(todo, seen, strict=True):
                    verdict, mem = gate_logic.evaluate(g, obs, memory.get(g.name, GateMemory()), now)
                    memory[g.name] = replace(mem, last_checked=now)
                    if verdict.breached:
                        verdict = said(verdict, written, self.aim)
                        self._breach = f"guard {written.name} breached: {verdict.reason}"
                        self._breached.set()
                        return
                await asyncio.to_thread(self._stop.wait, self.interval)
        finally:
            await observer.close()
