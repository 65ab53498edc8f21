"""A canary phase on Docker (`strategy: {kind: canary, flag: F, service: S, image: TAG}`): the new
version is started on the other colour's ports (the service's `canary:` ports, or its `blue_green:`
ones, whose switch a canary never needs) beside the live one and checked (health, smoke); no switch
runs: the phase's canary flag, moved by the engine step by step as for any canary, says what share
of the traffic the application or its router sends to the new colour. When the rollout has gone
past the phase (or completed) the old colour is removed; when it is rolled back or aborted, the new
one is (`settle`): seen live by the runner that deployed it, or found later by any runner
(`left_running`): a rollout moved while no runner watched (by the command line, another runner or
the kill switch) is settled when a runner next looks.

While the canary runs the journal says `canary_running` (both colours up, on purpose); a deploy
killed before that is resumed like a blue-green one cut short before its switch (the new colour goes)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from . import journal as j
from .bluegreen import BlueGreen
from .dockertarget import DockerTarget
from .model import DeployError, DeployReport, Outcome, ServiceSpec

if TYPE_CHECKING:
    from ..model import Rollout
    from ..store import Store

CANARY_RUNNING = "canary_running"


class Canary(BlueGreen):
    def run(self, ref: str, new_id: str) -> None:
        self.bg  # noqa: B018 - refuses a service without colours' ports (the pipeline did already)
        deploy_id, live, new = self.begin_colours(ref, new_id, "canary")
        saved, self.spec = self.spec, self.coloured(new)
        try:
            error = self.start_and_check(ref, deploy_id, f"start-{new}", f"health-{new}", stoppable=True)
            why = self.stop() if error is None else None
            if why:
                error = f"stopped before the canary took traffic: {why}"
        finally:
            self.spec = saved
        if error is not None:
            self.remove_all(self.of_colour(new))
            self.finish(
                Outcome.ROLLED_BACK if live and not why else Outcome.DEPLOY_FAILED,
                f"{error}; the canary flag was not moved, traffic stays on {live or 'nothing'}",
            )
            return
        self.journal.write(phase=CANARY_RUNNING)
        self.report.outcome = Outcome.OK
        self.report.message = (
            f"{ref} runs on {new} beside {live or 'nothing'}; the canary flag moves the traffic"
        )


def settle(spec: ServiceSpec, workspace: Path, store: Store | None, rollout: str, promote: bool) -> str:
    """End the canary `rollout` (`id:index`) left running: promoted, the old colour goes (the new one
    is live); else the new colour goes. Nothing when the journal names another deploy."""
    journal = j.Journal(workspace, spec.name, store)
    with journal.locked():
        state = journal.read()
        if not state or state.get("phase") != CANARY_RUNNING or state.get("rollout") != rollout:
            return "nothing to settle"
        journal.data = dict(state)
        target = DockerTarget(spec.docker_host, spec.docker_timeout)
        report = DeployReport(spec.name, str(state.get("image")), "canary")
        try:
            bg = BlueGreen(spec, target, journal, report, {}, lambda text: text)
            gone = state.get("live") if promote else state.get("new")
            removed = bg.of_colour(str(gone)) if gone else []
            bg.remove_all(removed)
        finally:
            target.close()
        outcome = "ok" if promote else "rolled_back"
        journal.write(phase=j.DONE, outcome=outcome, settled_at=time.time())
    return f"canary of {spec.name} {outcome}: {len(removed)} {gone} container(s) removed"


def promoted(r: Rollout, index: int) -> bool | None:
    """How the canary of phase `index` of `r` ends: True when the rollout went past the phase or
    completed (the old colour goes), False when it is rolled back or aborted (the new one goes), None
    while the rollout is still in that phase (nothing is touched)."""
    from ..model import RolloutState as S

    if r.state in (S.ROLLING_BACK, S.ROLLED_BACK, S.ABORTED):
        return False
    if r.state is S.COMPLETED or r.phase_index > index:
        return True
    return None


def left_running(
    services: Mapping[str, ServiceSpec], workspace: Path, store: Store | None
) -> Iterator[tuple[str, str]]:
    """(service, rollout `id:index`) of each canary whose journal says both colours run: one file read
    per service with colours' ports (the store's row when the file is gone)."""
    for name, spec in services.items():
        if spec.blue_green is None:
            continue
        try:
            state = j.Journal(workspace, name, store).read()
        except DeployError:  # unreadable: the next deploy of the service reports it
            continue
        if state and state.get("phase") == CANARY_RUNNING and state.get("rollout"):
            yield name, str(state["rollout"])
