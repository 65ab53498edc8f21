"""A plan phase with `strategy: {kind: recreate (rolling, blue_green, canary), service: S, image: TAG}`: the runner
deploys the service in a thread before the phase's gates are checked. A blue_green phase's deploy
checks the phase's checks aimed at the new colour before the switch and watches its guards during
`keep_old` (deploy/aimed.py); once it is done, the runner aims the phase's checks at the colour that
took traffic (`PhaseDeploy.colour`). A canary phase's deploy starts
the new version beside the old (deploy/canary.py) and the flag moves as for any canary; when the
rollout moves on or back, the colour no longer needed is removed (`_on_event`, from the engine's bus).

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
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .aimed import live_colour
from .canary import CANARY_RUNNING
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
    colour: str | None = None
    """blue_green: the colour taking traffic once the deploy was done (what the phase's checks aim at)."""


class PhaseDeploys:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._tasks: dict[Key, asyncio.Task[DeployReport]] = {}
        self._done: dict[Key, PhaseDeploy] = {}
        self._canaries: dict[Key, str] = {}
        """Canary phases whose new version runs beside the old (key -> service), until settled."""
        self._settling: list[threading.Thread] = []
        self.settled: list[str] = []
        """What each settled canary did (for the log and tests)."""
        self._unsubscribe = engine.bus.subscribe(self._on_event)

    def poll(self, key: Key, service: str, image: str, strategy: str = "recreate") -> PhaseDeploy | None:
        if key in self._done:
            return self._done[key]
        task = self._tasks.get(key)
        if task is None or task.cancelled():
            found = self._recorded(key, service)
            if found is not None:
                self._done[key] = found
                if found.ok and strategy == "canary":
                    self._canaries[key] = service
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
                report.colour,
            )
        self._done[key] = outcome
        if outcome.ok and strategy == "canary":
            self._canaries[key] = service
        return outcome

    def colour(self, key: Key, service: str) -> str | None:
        """blue_green: the colour the phase's deploy left taking traffic, once it is done (from this
        runner's outcome, else the service's journal); None before."""
        done = self._done.get(key)
        if done is None and key not in self._tasks:
            done = self._recorded(key, service)
            if done is not None:
                self._done[key] = done
        return done.colour if done is not None else None

    def busy(self) -> bool:
        return any(not t.done() for t in self._tasks.values())

    def _deploy(self, key: Key, service: str, image: str, strategy: str) -> DeployReport:
        from .service import deploy_service

        engine = self.engine
        before_switch = watch = None
        spec = engine.config.services.get(service)
        if strategy == "blue_green" and spec is not None:
            from .aimed import ColourChecks

            checks = ColourChecks(engine, key[0], key[1], spec)
            before_switch = checks.before_switch if checks.aimable() else None
            watch = checks.watch
        return deploy_service(
            engine.config,
            engine.workspace,
            service,
            image,
            strategy=strategy,
            engine=engine,
            rollout=_name(key),
            before_switch=before_switch,
            watch=watch,
        )

    def _recorded(self, key: Key, service: str) -> PhaseDeploy | None:
        try:
            state = Journal(self.engine.workspace, service).read()
        except Exception:  # noqa: BLE001 - unreadable: deploy again (the pipeline reports it)
            return None
        if (
            not state
            or state.get("rollout") != _name(key)
            or state.get("phase") not in (DONE, CANARY_RUNNING)
        ):
            return None
        ok = state.get("outcome") == "ok" or state.get("phase") == CANARY_RUNNING
        return PhaseDeploy(
            ok,
            f"deploy of {state.get('image')} to {service}: {state.get('outcome')} (recorded)",
            live_colour(state),
        )

    def _on_event(self, event: Any) -> None:
        """A canary phase's rollout moved on (next phase, completed) or back (rolled back, aborted):
        the colour no longer needed goes, in a thread of its own (never on the publisher's)."""
        r = event.data.get("rollout") if event.kind == "rollout" else None
        if r is None:
            return
        for key, service in list(self._canaries.items()):
            if key[0] != r.id:
                continue
            from ..model import RolloutState as S

            if r.state in (S.ROLLING_BACK, S.ROLLED_BACK, S.ABORTED):
                promote = False
            elif r.state is S.COMPLETED or r.phase_index > key[1]:
                promote = True
            else:
                continue
            del self._canaries[key]
            thread = threading.Thread(
                target=self._settle,
                args=(key, service, promote),
                name=f"settle canary {service}",
                daemon=True,
            )
            self._settling.append(thread)
            thread.start()

    def _settle(self, key: Key, service: str, promote: bool) -> None:
        from .canary import settle

        engine = self.engine
        try:
            done = settle(
                engine.config.services[service], engine.workspace, engine.store, _name(key), promote
            )
        except Exception as exc:  # noqa: BLE001 - said; the next deploy of the service finds both colours
            done = f"canary of {service} for {_name(key)} not settled: {type(exc).__name__}: {exc}"
            log.warning("%s", done)
        self.settled.append(done)

    async def close(self) -> None:
        # A thread cannot be cancelled: wait for the deploys in hand so their journals are finished.
        for task in list(self._tasks.values()):
            with contextlib.suppress(Exception):
                await task
        self._unsubscribe()
        for thread in self._settling:
            await asyncio.to_thread(thread.join, 60.0)


def _name(key: Key) -> str:
    return f"{key[0]}:{key[1]}"
