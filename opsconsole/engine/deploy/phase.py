"""A plan phase with `strategy: {kind: recreate (rolling, blue_green, canary), service: S, image: TAG}`: the runner
deploys the service in a thread before the phase's gates are checked. A blue_green phase's deploy
checks the phase's checks aimed at the new colour before the switch and watches its guards during
`keep_old` (deploy/aimed.py); once it is done, the runner aims the phase's checks at the colour that
took traffic (`PhaseDeploy.colour`). A canary phase's deploy starts
the new version beside the old (deploy/canary.py) and the flag moves as for any canary; when the
rollout moves on or back, the colour no longer needed is removed: at once for a move this process
sees (`_on_event`, from the engine's bus: a command, a decision, the kill switch), and by `sweep`, which
the runner calls every tick, for one it did not (the rollout moved by the command line, another runner
or the kill switch while no runner ran, or before this runner started): every SWEEP_EVERY seconds
it reads the journals of the services with colours and settles each canary whose rollout is no longer
in its phase.

When the rollout of a recreate, rolling or blue_green phase is rolled back or aborted after its
deploy, the previous version is brought back (deploy/revert.py), seen the same two ways: the bus's
events, and the sweep (which reads the journals of the services such phases deploy).

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
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .aimed import live_colour
from .canary import CANARY_RUNNING, left_running, promoted
from .journal import DONE, Journal
from .model import DeployReport
from .revert import SETTLED, Reverts, phase_strategy

SWEEP_EVERY = 2.0
"""Seconds between two looks for canaries left running (a file read per service with colours, and the
rollout's row for each canary found)."""

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
        self._tasks: dict[Key, asyncio.Task[DeployReport | None]] = {}
        self._done: dict[Key, PhaseDeploy] = {}
        self._canaries: dict[Key, str] = {}
        """Canary phases whose new version runs beside the old (key -> service), until settled."""
        self._settling: list[threading.Thread] = []
        self.waiting: dict[Key, str] = {}
        """Phases whose deploy waits for another process's deploy of the service, and why."""
        self._claimed: dict[Key, str] = {}
        """Canaries being settled now (key -> service), by an event or the sweep: one settle at a time."""
        self._claim_lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._swept = float("-inf")
        self._failed: dict[Key, str] = {}
        """The last failure to settle each canary (said once; the sweep tries again)."""
        self.settled: list[str] = []
        """What each settled canary did (for the log and tests)."""
        self.reverts = Reverts(engine)
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
            if (
                Journal(self.engine.workspace, service).busy()
                or self._settling_now(service)
                or self.reverts.running(service)
            ):
                return None  # a deploy this runner lost track of (its loop ended), a settle or a revert
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
            if report is None:  # another host of the team deploys the service: ask again next tick
                return None
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

    def _deploy(self, key: Key, service: str, image: str, strategy: str) -> DeployReport | None:
        """The phase's deploy (in a thread); None, nothing done, while another process of the team
        holds the service's deploy lock on the shared store (the phase waits for it, as for a deploy
        of this host's: a deploy that slips in between is refused by the lock, and said)."""
        from ..store import StoreError
        from .journal import lock_name
        from .service import deploy_service

        engine = self.engine
        try:
            with engine.store.exclusive(lock_name(service)) as holder:
                if holder is not None:
                    said = f"another deploy of {service} is running ({holder})"
                    if self.waiting.get(key) != said:
                        log.warning("phase %s waits: %s", _name(key), said)
                    self.waiting[key] = said
                    return None
        except StoreError:
            pass  # said by the deploy itself, which refuses without the lock
        self.waiting.pop(key, None)
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
        """A canary phase's rollout moved on (next phase, completed) or back (rolled back, aborted,
        also by the kill switch, which says which rollouts it aborted): the colour no longer needed
        goes, in a thread of its own (never on the publisher's: the kill switch never waits on it)."""
        if event.kind == "kill_switch" and event.data.get("engaged"):
            aborted = set(event.data.get("aborted") or ())
            for key, service in list(self._canaries.items()):
                if key[0] in aborted:
                    self._settle_soon(key, service, False)
            for rollout_id in sorted(aborted):
                self.reverts.soon(rollout_id)  # reads the rollout in its thread: a Docker phase's?
            return
        r = event.data.get("rollout") if event.kind == "rollout" else None
        if r is None:
            return
        if str(r.state) in SETTLED and phase_strategy(self.engine.config, r):
            self.reverts.soon(r.id)
        for key, service in list(self._canaries.items()):
            if key[0] != r.id:
                continue
            promote = promoted(r, key[1])
            if promote is not None:
                self._settle_soon(key, service, promote)

    def sweep(self) -> None:
        """Settle, in a thread (at most one, every SWEEP_EVERY seconds), the canaries journals say run
        whose rollout has left their phase, however it left. Cheap when there are none; never waits."""
        now = time.monotonic()
        if (self._sweeper is not None and self._sweeper.is_alive()) or now - self._swept < SWEEP_EVERY:
            return
        self._swept = now
        self._sweeper = threading.Thread(target=self._sweep, name="settle canaries left", daemon=True)
        self._sweeper.start()

    def _sweep(self) -> None:
        try:
            self._sweep_once()
        except Exception as exc:  # noqa: BLE001 - said; the next sweep looks again
            log.warning("looking for canaries to settle failed: %s: %s", type(exc).__name__, exc)
        try:
            self.reverts.look()
        except Exception as exc:  # noqa: BLE001 - said; the next sweep looks again
            log.warning("looking for Docker phases to revert failed: %s: %s", type(exc).__name__, exc)

    def _sweep_once(self) -> None:
        engine = self.engine
        for service, rollout in left_running(engine.config.services, engine.workspace, engine.store):
            key = _key(rollout)
            if key is None:
                continue
            try:
                r = engine.rollout(key[0])
            except Exception:  # noqa: BLE001 - no such rollout, or the store busy: left as it is
                continue
            promote = promoted(r, key[1])
            if promote is None or Journal(engine.workspace, service).busy():
                continue  # still in its phase; or a deploy of the service holds it (looked at again)
            if self._claim(key, service):
                self._settle(key, service, promote)

    def _settle_soon(self, key: Key, service: str, promote: bool) -> None:
        if not self._claim(key, service):
            return
        thread = threading.Thread(
            target=self._settle,
            args=(key, service, promote),
            name=f"settle canary {service}",
            daemon=True,
        )
        self._settling.append(thread)
        thread.start()

    def _settling_now(self, service: str) -> bool:
        with self._claim_lock:
            return service in self._claimed.values()

    def _claim(self, key: Key, service: str) -> bool:
        with self._claim_lock:
            if key in self._claimed:
                return False
            self._claimed[key] = service
            self._canaries.pop(key, None)
            return True

    def _settle(self, key: Key, service: str, promote: bool) -> None:
        """Run with `key` claimed; released at the end (a failure is tried again by the next sweep)."""
        from .canary import settle

        engine = self.engine
        try:
            done = settle(
                engine.config.services[service], engine.workspace, engine.store, _name(key), promote
            )
        except Exception as exc:  # noqa: BLE001 - said once; the sweep tries again
            done = f"canary of {service} for {_name(key)} not settled: {type(exc).__name__}: {exc}"
            if self._failed.get(key) != done:
                self._failed[key] = done
                log.warning("%s", done)
                self.settled.append(done)
        else:
            self._failed.pop(key, None)
            self.settled.append(done)
        finally:
            with self._claim_lock:
                self._claimed.pop(key, None)

    async def close(self) -> None:
        # A thread cannot be cancelled: wait for the deploys in hand so their journals are finished.
        for task in list(self._tasks.values()):
            with contextlib.suppress(Exception):
                await task
        self._unsubscribe()
        for thread in [*self._settling, *([self._sweeper] if self._sweeper is not None else [])]:
            await asyncio.to_thread(thread.join, 60.0)
        await self.reverts.close()


def _name(key: Key) -> str:
    return f"{key[0]}:{key[1]}"


def _key(name: str) -> Key | None:
    """`id:index` (a journal's `rollout`) -> its key; None for anything else."""
    rid, _, index = name.rpartition(":")
    return (rid, int(index)) if rid and index.isdigit() else None
