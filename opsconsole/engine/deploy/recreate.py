"""The `recreate` strategy (seed 003): tag the running image `:rollback`, stop the old containers,
start the new ones, wait for health, smoke-test; on a failure start the rollback image again.

Every step that changes containers is written to the journal first, so `resume` can finish a deploy
that was cut short."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from . import journal as j
from .checks import Stop, run_command, wait_healthy
from .dockertarget import DockerTarget
from .model import DeployError, DeployReport, Hooks, Outcome, Revert, ServiceSpec, StepResult

Scrub = Callable[[str], str]


def _never() -> str | None:
    return None


class Recreate:
    def __init__(
        self,
        spec: ServiceSpec,
        target: DockerTarget,
        journal: j.Journal,
        report: DeployReport,
        env: dict[str, str],
        scrub: Scrub,
    ) -> None:
        self.spec = spec
        self.target = target
        self.journal = journal
        self.report = report
        self.env = env
        self.scrub = scrub
        self.stop: Stop = _never
        self.hooks = Hooks()
        self.revert: Revert | None = None
        """Set when this deploy brings back the version a stopped rollout's deploy replaced."""

    def step(self, name: str, started: float, ok: bool, detail: str = "") -> StepResult:
        result = StepResult(name, ok, time.monotonic() - started, self.scrub(detail))
        self.report.steps.append(result)
        return result

    def keep_rollback(self, previous: str | None) -> tuple[str | None, str | None]:
        """Tag `previous` (the image ID the service runs now) `:rollback`: (the image a failure goes back
        to, the reference it is started from), (None, None) on a first deploy. A revert tags nothing:
        `:rollback` goes on naming the version it brings back, and its own failure starts the version
        it replaces again, by ID."""
        revert = self.revert
        if revert is not None:
            self.report.previous_image = revert.replaces
            self.report.rollback_image = revert.replaces_ref
            return revert.replaces, revert.replaces
        self.report.previous_image = previous
        if previous is None:
            return None, None
        t = time.monotonic()
        self.target.tag(previous, self.spec.rollback_ref)
        self.report.rollback_image = self.spec.rollback_ref
        self.step("tag-rollback", t, True, f"{previous[:19]} tagged {self.spec.rollback_ref}")
        return previous, self.spec.rollback_ref

    def replica_env(self, replica: int) -> dict[str, str]:
        port = self.spec.port(replica)
        return {**self.spec.environment, **self.env, **({"PORT": str(port)} if port else {})}

    # ------------------------------------------------------------------------------------- deploy

    def run(self, ref: str, new_id: str) -> None:
        spec, target = self.spec, self.target
        deploy_id = f"{int(time.time())}-{uuid.uuid4().hex[:6]}"
        old = target.managed(spec.name)
        running = [c for c in old if c.status == "running"]
        previous, back_to = self.keep_rollback(
            running[0].image.id if running else (old[0].image.id if old else None)
        )
        why = self.stop()
        if why:
            self.report.outcome = Outcome.DEPLOY_FAILED
            self.report.message = f"stopped before anything changed: {why}"
            return
        self.journal.write(
            id=deploy_id,
            image=ref,
            new_image_id=new_id,
            previous_image_id=previous,
            rollback_ref=back_to,
            phase=j.STOPPING_OLD,
            started_at=time.time(),
        )
        t = time.monotonic()
        for c in old:
            target.remove(c, spec.stop_timeout)
        self.step("stop-old", t, True, f"{len(old)} container(s) stopped" if old else "none running")
        self.journal.write(phase=j.STARTED_NEW)
        error = self.start_and_check(ref, deploy_id, "start-new", "health", stoppable=True)
        why = self.stop() if error is None else None
        if why:
            error = f"stopped before the smoke test: {why}"
        if error is None and spec.smoke is not None:
            t = time.monotonic()
            ok, detail = run_command(spec.smoke, {"OPSCONSOLE_SERVICE": spec.name, "OPSCONSOLE_IMAGE": ref})
            self.step("smoke", t, ok, detail)
            error = None if ok else f"smoke test failed: {self.scrub(detail)}"
        if error is None:
            self.journal.write(phase=j.DONE, outcome="ok")
            self.report.outcome = Outcome.OK
            self.report.message = f"{spec.name} runs {ref}"
            return
        self.report.message = error
        self.rollback(error)

    def start_and_check(
        self, ref: str, deploy_id: str, start_name: str, health_name: str, stoppable: bool = False
    ) -> str | None:
        """Start every replica from `ref` and wait for each to be healthy: None, or what failed.
        `stoppable`: the wait ends when `stop` asks (never while rolling back)."""
        started: list[Any] = []
        t = time.monotonic()
        try:
            for replica in range(self.spec.replicas):
                started.append(
                    self.target.start(self.spec, ref, replica, deploy_id, self.replica_env(replica))
                )
        except DeployError as exc:
            self.step(start_name, t, False, str(exc))
            return str(exc)
        self.step(start_name, t, True, ", ".join(c.name for c in started))
        t = time.monotonic()
        for replica, c in enumerate(started):
            error = wait_healthy(
                self.target, c, self.spec.health, self.spec.port(replica), self.stop if stoppable else None
            )
            if error is not None:
                self.step(health_name, t, False, error)
                return self.scrub(error)
        self.step(health_name, t, True, f"{len(started)} replica(s) healthy")
        return None

    # ----------------------------------------------------------------------------------- rollback

    def rollback(self, why: str) -> None:
        """Replace whatever runs with the `:rollback` image. Outcome 4 when it is healthy again, 3 when
        there was nothing to roll back to or the rollback failed too."""
        spec, target = self.spec, self.target
        self.journal.write(phase=j.ROLLING_BACK, reason=why)
        t = time.monotonic()
        for c in target.managed(spec.name):
            target.remove(c, spec.stop_timeout)
        self.step("stop-new", t, True)
        rollback_ref = self.journal.data.get("rollback_ref")
        if not rollback_ref:
            self.journal.write(phase=j.DONE, outcome="failed")
            self.report.outcome = Outcome.DEPLOY_FAILED
            self.report.message = f"{why}; no previous version to roll back to (first deploy)"
            return
        deploy_id = f"{int(time.time())}-rb{uuid.uuid4().hex[:4]}"
        error = self.start_and_check(rollback_ref, deploy_id, "start-rollback", "rollback-health")
        if error is None:
            self.journal.write(phase=j.DONE, outcome="rolled_back")
            self.report.outcome = Outcome.ROLLED_BACK
            self.report.message = f"{why}; rolled back to {rollback_ref}"
        else:
            self.journal.write(phase=j.DONE, outcome="rollback_failed")
            self.report.outcome = Outcome.DEPLOY_FAILED
            self.report.message = f"{why}; ROLLBACK FAILED: {error}"
