"""Rolled back means the previous version serves again, for a Docker phase too.

A phase with `strategy: {kind: recreate|rolling|blue_green, service: S, image: TAG}` deploys S before
its gates are checked. When its rollout is then rolled back (a guard breached, a gate failed its
limit, a person) or aborted, the runner brings back the version that deploy replaced: a deploy of the
image the deploy tagged `S:rollback` (its journal's `previous_image_id`; by ID when the tag was moved
since), with the phase's strategy (blue_green: the old colour starts again beside the new one, the
switch moves traffic back to it, and the new colour is removed after keep_old), without tests, build,
backup or the phase's checks. It is a deploy like any other: journalled (resumable after a crash),
recorded in the store with `revert_of: ID:INDEX` and `trigger: "rollback of ID"`, audited. The
`:rollback` tag is left naming the version brought back; a revert that fails starts the version it
replaced again (the service is never left with nothing), and says so. The rollout's reason then says
what the service runs ("previous version restored: web runs app:rollback on blue") or why not, and
the `%` column of the Rollouts list says 0% once the previous version serves.

Only the current phase's deploy is reverted (as only a canary of the current phase is settled): a
phase the rollout went past was promoted. Nothing is done when that deploy failed by itself and went
back (exit 4, or refused before its switch); a deploy still running when the rollout stops is
stopped at its next safe point (deploy/service.py: a blue-green deploy watching its new colour
switches back at once) and left at that. Nothing is done either when the service was deployed again
since (that deploy stands, and the rollout's reason says so), or when there is no previous version
(the first deploy of the service: said, nothing changed).

The kill switch's aborts revert too. A paged engineer pulling it wants the safe state everywhere, and
for every other rollout "aborted" means the stable version takes the traffic again (a canary flag to
0, a Docker canary's new colour removed): a Docker phase left serving the new image 100% under an
"aborted" rollout is the one surprise the switch must not have. The switch still never waits on
Docker: it writes its flags and aborts in the store; the revert runs afterwards in a thread of the
runner, the way back to the version the service ran before the rollout, and is not stopped by the
engaged switch (which stops deploys going forward). A deploy in flight when the switch is pulled
stops at its next safe point on its last healthy version, as before.

Idempotent across runners: whether a rollout's revert is owed, running or done is read from the
service's deploy journal (its latest deploy: the phase's own, or a revert of it) and from a mark in
the store (`docker-revert:ID:INDEX`, written with the rollout's new reason in one transaction). The
runner looks when it sees the rollout stop (a command, a decision, the kill switch) and, for a stop it
did not see (the command line, another runner, before it started), every few seconds with the canary
sweep (deploy/phase.py). A revert cut short is taken again by the next runner (the deploy's resume
first finishes what the cut one left); one that ended before its outcome was said is only said.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .journal import DONE, Journal
from .model import DeployError, Revert

if TYPE_CHECKING:
    from ..core import Engine
    from ..model import Config, Rollout, Strategy

log = logging.getLogger(__name__)

KINDS = ("recreate", "rolling", "blue_green")
"""Phase strategies whose deploy a rollback reverts (a canary's is settled: deploy/canary.py)."""
MARK = "docker-revert:"
"""The store's kv key prefix of the mark saying a rollout's revert was dealt with (ID:INDEX after it)."""
RESTORED = "previous version restored"
RETRY_FIRST = 30.0
RETRY_MAX = 600.0
"""A revert that could not start (the Docker engine down, the image gone) is tried again after 30 s,
then twice as long each time, up to 10 minutes."""
JOIN_WAIT = 60.0


def phase_strategy(config: Config, r: Rollout) -> Strategy | None:
    """The Docker strategy of `r`'s current phase when a rollback reverts it, else None."""
    plan = config.plans.get(r.plan)
    if plan is None:
        return None
    phase = plan.phases[min(r.phase_index, len(plan.phases) - 1)]
    s = phase.strategy
    return s if s is not None and s.kind in KINDS and s.service and s.image else None


def reverted_services(config: Config) -> set[str]:
    """The services a plan's phase deploys with a strategy a rollback reverts."""
    return {
        p.strategy.service
        for plan in config.plans.values()
        for p in plan.phases
        if p.strategy is not None and p.strategy.kind in KINDS and p.strategy.service and p.strategy.image
    }


SETTLED = ("aborted", "rolled_back")
"""The states a revert follows. Not `rolling_back`: the engine moves a rollout on to rolled_back at
once (the flags' rollback is committed with it), and a reason written in between would be overwritten
by that move, or make it fail on the rollout's version."""


def _stopped(r: Rollout) -> bool:
    return str(r.state) in SETTLED


class Reverts:
    """The runner's reverts: each in a thread of its own (never on the event loop, never on a
    publisher's thread), one per rollout at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.services = reverted_services(engine.config)
        self._lock = threading.Lock()
        self._claimed: dict[str, str | None] = {}
        """Rollouts being looked at or reverted now -> their service, once known."""
        self._threads: list[threading.Thread] = []
        self._next_try: dict[str, float] = {}
        self._attempts: dict[str, int] = {}
        self._final: set[tuple[str, str]] = set()
        """(service, journal deploy id) known to need nothing more: not read again."""
        self._failed: dict[str, str] = {}
        """The last error of a look at each rollout (said once; the sweep looks again)."""
        self.done: list[str] = []
        """What each look that did something said (for the log and tests)."""

    # ------------------------------------------------------------------------------- scheduling

    def soon(self, rollout_id: str) -> None:
        """Look at `rollout_id` in a thread: revert its phase's deploy when it is owed."""
        with self._lock:
            if rollout_id in self._claimed or time.monotonic() < self._next_try.get(rollout_id, 0.0):
                return
            self._claimed[rollout_id] = None
            self._threads = [t for t in self._threads if t.is_alive()]
            thread = threading.Thread(
                target=self._run, args=(rollout_id,), name=f"revert {rollout_id}", daemon=True
            )
            self._threads.append(thread)
        thread.start()

    def running(self, service: str) -> bool:
        """A revert of `service` is being looked at or run now (a phase deploy of it waits)."""
        with self._lock:
            return service in self._claimed.values()

    def look(self) -> None:
        """Blocking (the sweep's thread): every service's latest deploy, for a stopped rollout whose
        revert is owed. One file read per service; a rollout read per deploy not known settled."""
        from ..core import NotFound

        engine = self.engine
        for service in sorted(self.services):
            try:
                state = Journal(engine.workspace, service, engine.store).read()
            except DeployError:
                continue  # unreadable: the next deploy of the service reports it
            name = str((state or {}).get("revert_of") or (state or {}).get("rollout") or "")
            rid, _, index = name.rpartition(":")
            seen = (service, str((state or {}).get("id")))
            if not rid or not index.isdigit() or seen in self._final:
                continue
            try:
                r = engine.rollout(rid)
            except NotFound:
                self._final.add(seen)
                continue
            if str(r.state) == "completed" or r.phase_index > int(index):
                self._final.add(seen)  # the rollout went past the phase: its deploy stands
            elif _stopped(r) and r.phase_index == int(index):
                if self._mark(name).get("done"):
                    self._final.add(seen)
                else:
                    self.soon(rid)

    async def close(self) -> None:
        import asyncio

        for thread in list(self._threads):
            await asyncio.to_thread(thread.join, JOIN_WAIT)

    # --------------------------------------------------------------------------------- one look

    def _run(self, rollout_id: str) -> None:
        try:
            self._look(rollout_id)
        except Exception as exc:  # noqa: BLE001 - said once; the sweep looks again
            said = f"revert for rollout {rollout_id}: {type(exc).__name__}: {exc}"
            if self._failed.get(rollout_id) != said:
                self._failed[rollout_id] = said
                log.warning("%s", said)
                self.done.append(said)
        else:
            self._failed.pop(rollout_id, None)
        finally:
            with self._lock:
                self._claimed.pop(rollout_id, None)

    def _look(self, rollout_id: str) -> None:
        from ..core import NotFound

        engine = self.engine
        try:
            r = engine.rollout(rollout_id)
        except NotFound:
            return
        strategy = phase_strategy(engine.config, r)
        if not _stopped(r) or strategy is None or strategy.service not in engine.config.services:
            return
        service, key = str(strategy.service), f"{r.id}:{r.phase_index}"
        with self._lock:
            self._claimed[r.id] = service
        if self._mark(key).get("done"):
            return
        journal = Journal(engine.workspace, service, engine.store)
        if journal.busy():
            return  # a deploy of the service runs (this rollout's, stopping at its next safe point)
        state = journal.read() or {}
        if state.get("revert_of") == key:
            if state.get("phase") == DONE and state.get("new_image_id"):
                self._finished(r, key, service, state)  # ended before its outcome was said
                return
            # Cut short (or, read from the store, refused before it began): taken again.
            revert = Revert(
                key,
                str(state.get("restores") or ""),
                str(state.get("replaces") or ""),
                str(state.get("replaces_ref") or ""),
            )
            self._deploy(r, key, service, strategy.kind, revert)
            return
        if state.get("rollout") != key:
            self._moved_on(r, key, service, state)
            return
        if state.get("phase") == DONE and state.get("outcome") != "ok":
            self._went_back(r, key, service, state)
            return
        previous = state.get("previous_image_id") or self._row(state.get("id")).get("previous_image_id")
        image = str(state.get("image") or strategy.image)
        if not previous:
            self._say(
                r,
                key,
                f"{service} has no previous version to restore (its first deploy): it still runs {image}",
                True,
                outcome="no previous version",
                service=service,
            )
            return
        revert = Revert(key, str(previous), str(state.get("new_image_id") or ""), image)
        self._deploy(r, key, service, strategy.kind, revert)

    def _deploy(self, r: Rollout, key: str, service: str, kind: str, revert: Revert) -> None:
        from .service import deploy_service

        engine = self.engine
        spec = engine.config.services[service]
        report = deploy_service(
            engine.config,
            engine.workspace,
            service,
            spec.rollback_ref,
            strategy=kind,
            engine=engine,
            revert=revert,
        )
        state = Journal(engine.workspace, service, engine.store).read() or {}
        if state.get("revert_of") == key and state.get("phase") == DONE:
            self._next_try.pop(r.id, None)
            self._finished(r, key, service, state, report.message, report.colour, report.code == 0)
            return
        # Refused before it changed anything: tried again later, and said unless another deploy of
        # the service only had its lock (the revert follows it).
        tries = self._attempts[r.id] = self._attempts.get(r.id, 0) + 1
        wait = min(RETRY_MAX, RETRY_FIRST * 2 ** (tries - 1))
        self._next_try[r.id] = time.monotonic() + wait
        if "another deploy of" not in report.message:
            self._say(
                r,
                key,
                f"previous version not restored yet: {report.message} (tried {tries} time(s); again in {wait:g}s)",
                False,
                outcome="not started",
                service=service,
            )

    # ----------------------------------------------------------------------------- what it says

    def _finished(
        self,
        r: Rollout,
        key: str,
        service: str,
        state: dict[str, Any],
        message: str | None = None,
        colour: str | None = None,
        ok: bool | None = None,
    ) -> None:
        from .aimed import live_colour

        row = self._row(state.get("id"))
        if ok is None:
            ok = state.get("outcome") == "ok"
        if message is None:
            message = str(row.get("message") or state.get("outcome"))
        if ok:
            colour = colour or live_colour(state)
            where = f" on {colour}" if colour else ""
            note = f"{RESTORED}: {service} runs {state.get('image')}{where}"
        else:
            note = f"previous version NOT restored: {message}"
            if state.get("outcome") == "rolled_back":
                note += f"; {service} runs {state.get('replaces_ref')} again"
        self._say(
            r,
            key,
            note,
            True,
            outcome="restored" if ok else "not restored",
            service=service,
            deploy=state.get("id"),
        )

    def _went_back(self, r: Rollout, key: str, service: str, state: dict[str, Any]) -> None:
        """The phase's deploy ended without the new version: by itself before the rollout stopped
        (its message is already the rollout's reason: nothing to add), or stopped at a safe point
        because the rollout stopped while it ran (said)."""
        row = self._row(state.get("id"))
        if float(row.get("finished_at") or 0.0) <= r.updated_at:
            self._say(r, key, None, True, outcome="went back by itself", service=service)
            return
        message = str(row.get("message") or state.get("outcome"))
        prefix = f"{RESTORED}: " if state.get("outcome") == "rolled_back" else ""
        self._say(
            r,
            key,
            f"{prefix}{service}: {message}",
            True,
            outcome="deploy stopped",
            service=service,
            deploy=state.get("id"),
        )

    def _moved_on(self, r: Rollout, key: str, service: str, state: dict[str, Any]) -> None:
        """The service's latest deploy is not this rollout's: said when the rollout's own had gone
        well (its version was replaced by someone else's deploy, which stands)."""
        if not state.get("id"):
            return
        with self.engine.store.read() as tx:
            found = tx.list_deploys(service, limit=50)
        mine = next((d for d in found if d.get("rollout") == key and not d.get("revert_of")), None)
        if mine is None or mine.get("outcome") != "ok":
            return
        self._say(
            r,
            key,
            f"previous version not restored: {service} was deployed again since "
            f"({state.get('image')}, deploy {state.get('id')}), which stands",
            True,
            outcome="deployed again since",
            service=service,
            deploy=state.get("id"),
        )

    def _row(self, deploy_id: Any) -> dict[str, Any]:
        if not deploy_id:
            return {}
        with self.engine.store.read() as tx:
            return dict(tx.get_deploy(str(deploy_id)) or {})

    def _mark(self, key: str) -> dict[str, Any]:
        with self.engine.store.read() as tx:
            found = tx.get_kv(MARK + key)
        return dict(found) if isinstance(found, dict) else {}

    def _say(self, r: Rollout, key: str, note: str | None, done: bool, **data: Any) -> None:
        """In one transaction: the mark (`done`: nothing more to do), the rollout's reason (its
        reason when it stopped, then `note`) and an audit event; the new reason is published."""
        from ..model import ENGINE_ACTOR

        engine = self.engine
        now = engine.clock()
        with engine.store.transaction() as tx:
            mark = tx.get_kv(MARK + key)
            mark = dict(mark) if isinstance(mark, dict) else {}
            if mark.get("done") or (not done and mark.get("note") == note):
                return
            current = tx.get_rollout(r.id)
            if current is None:
                return
            base = str(mark.get("base", current.reason))
            reason = f"{base}; {note}" if note else current.reason
            written = replace(current, reason=reason)
            if reason != current.reason and not tx.update_rollout(written, current.version):
                raise RuntimeError(f"rollout {r.id} changed while its revert was recorded")
            tx.set_kv(MARK + key, {"done": done, "base": base, "note": note, **data}, now)
            if note:
                tx.append_audit(
                    now, ENGINE_ACTOR, "rollout.docker_revert", f"rollout:{r.id}", {"note": note, **data}
                )
        if note:
            self.done.append(f"{r.id}: {note}")
            log.info("rollout %s: %s", r.id, note)
        if reason != current.reason:
            engine.bus.publish("rollout", rollout=replace(written, version=current.version + 1))
