"""A plan phase with `strategy: {kind: recreate (rolling, blue_green), service: S, image: TAG}`: the runner deploys the
service in a thread before the phase's gates are checked.

The runner asks `poll` every tick while the rollout is progressing in that phase: the first ask
starts the deploy in its own task (never awaited by the tick: the kill switch and other rollouts never
wait on Docker), later asks return None until it has ended, then its outcome (every later ask too).
A restarted runner finds the outcome in the service's deploy journal (it names the rollout and phase)
and does not deploy again; a deploy the dead runner left half way is rolled back by the next deploy
(pipeline.resume) and taken again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .journal import DONE, Journal
from .model import DeployReport

if TYPE_CHECKING:
    from ..core import Engine

log = logging.getLogger(__name__)

Key = tuple[str, int]


@dataclass(frozen=True)
class PhaseDeploy:
    ok: bool
    reason: str


class PhaseDeploys:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._tasks: dict[Key, asyncio.Task[DeployReport]] = {}
        self._done: dict[Key, PhaseDeploy] = {}

    def poll(self, key: Key, service: str, image: str, strategy: str = "recreate") -> PhaseDeploy | None:
        if key in self._done:
            return self._done[key]
        task = self._tasks.get(key)
        if task is None or task.cancelled():
            found = self._recorded(key, service)
            if found is not None:
                self._done[key] = found
                return found
            if Journal(self.engine.workspace, service).busy():
                return None  # a deploy this runner lost track of (its loop ended) is still going
            task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(self._deploy, key, service, image, strategy)
            )
            self._tasks[key] = task
            return None
        if not task.done():
            return None
        del self._tasks[key]
        try:
            report = task.result()
        except Exception as exc:  # a programming or store error: the phase rolls back with it
            log.warning("deploy of %s for %s failed: %s", service, key, exc)
            outcome = PhaseDeploy(False, f"deploy of {service} failed: {type(exc).__name__}: {exc}")
        else:
            outcome = PhaseDeploy(
                report.code == 0,
                f"deploy of {report.image} to {service}: {report.outcome.name.lower()} "
                f"(exit {report.code}): {report.message}",
            )
        self._done[key] = outcome
        return outcome

    def busy(self) -> bool:
        return any(not t.done() for t in self._tasks.values())

    def _deploy(self, key: Key, service: str, image: str, strategy: str) -> DeployReport:
        from .service import deploy_service

        engine = self.engine
        return deploy_service(
            engine.config,
            engine.workspace,
            service,
            image,
            strategy=strategy,
            engine=engine,
            rollout=_name(key),
        )

    def _recorded(self, key: Key, service: str) -> PhaseDeploy | None:
        try:
            state = Journal(self.engine.workspace, service).read()
        except Exception:  # noqa: BLE001 - unreadable: deploy again (the pipeline reports it)
            return None
        if not state or state.get("rollout") != _name(key) or state.get("phase") != DONE:
            return None
        ok = state.get("outcome") == "ok"
        return PhaseDeploy(
            ok, f"deploy of {state.get('image')} to {service}: {state.get('outcome')} (recorded)"
        )

    async def close(self) -> None:
        # A thread cannot be cancelled: wait for the deploys in hand so their journals are finished.
        for task in list(self._tasks.values()):
            with contextlib.suppress(Exception):
                await task


def _name(key: Key) -> str:
    return f"{key[0]}:{key[1]}"
