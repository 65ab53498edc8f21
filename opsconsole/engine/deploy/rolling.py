"""The `rolling` strategy: replace `max_unavailable` replicas at a time (replica i keeps its port),
each batch health-checked before the next; the smoke command runs once all are replaced. A failing
replica stops the rollout there: the replicas already replaced and the failing ones are put back on
the `:rollback` image one batch at a time, and the replicas not reached are never touched."""

from __future__ import annotations

import time
import uuid
from typing import Any

from . import journal as j
from .checks import run_command, wait_healthy
from .model import LABEL_DEPLOY, LABEL_REPLICA, DeployError, Outcome
from .recreate import Recreate


class Rolling(Recreate):
    def run(self, ref: str, new_id: str) -> None:
        spec, target = self.spec, self.target
        deploy_id = f"{int(time.time())}-{uuid.uuid4().hex[:6]}"
        old: dict[int, Any] = {int(c.labels.get(LABEL_REPLICA, "0")): c for c in target.managed(spec.name)}
        running = [c for c in old.values() if c.status == "running"]
        previous, back_to = self.keep_rollback(running[0].image.id if running else None)
        self.journal.write(
            id=deploy_id,
            image=ref,
            new_image_id=new_id,
            previous_image_id=previous,
            rollback_ref=back_to,
            phase=j.STOPPING_OLD,
            replaced=[],
            started_at=time.time(),
        )
        replaced: list[int] = []
        size = spec.max_unavailable
        for first in range(0, spec.replicas, size):
            batch = list(range(first, min(first + size, spec.replicas)))
            why = self.stop()
            if why and not replaced:
                self.journal.write(phase=j.DONE, outcome="failed")
                self.report.outcome = Outcome.DEPLOY_FAILED
                self.report.message = f"stopped before anything changed: {why}"
                return
            if why:
                stopped = f"stopped after replica(s) {', '.join(map(str, replaced))}: {why}"
                self.report.message = stopped
                self.restore(replaced, stopped)
                return
            error = self._replace(batch, old, ref, deploy_id, f"replica {', '.join(map(str, batch))}", True)
            if error is not None:
                self.report.message = error
                self.restore(replaced + batch, error)
                return
            replaced += batch
            self.journal.write(replaced=replaced)
        t = time.monotonic()
        extra = [c for i, c in old.items() if i >= spec.replicas]
        for c in extra:  # scaled down: replicas beyond the new count go
            target.remove(c, spec.stop_timeout)
        if extra:
            self.step("scale-down", t, True, f"{len(extra)} container(s) removed")
        if spec.smoke is not None:
            t = time.monotonic()
            ok, detail = run_command(spec.smoke, {"OPSCONSOLE_SERVICE": spec.name, "OPSCONSOLE_IMAGE": ref})
            self.step("smoke", t, ok, detail)
            if not ok:
                error = f"smoke test failed: {self.scrub(detail)}"
                self.report.message = error
                self.restore(replaced, error)
                return
        self.journal.write(phase=j.DONE, outcome="ok")
        self.report.outcome = Outcome.OK
        self.report.message = f"{spec.name} runs {ref} ({spec.replicas} replica(s), {size} at a time)"

    def _replace(
        self,
        batch: list[int],
        old: dict[int, Any],
        ref: str,
        deploy_id: str,
        what: str,
        stoppable: bool = False,
    ) -> str | None:
        """Stop the batch's old containers, start theirs from `ref`, wait for each: None or why not."""
        spec, target = self.spec, self.target
        t = time.monotonic()
        for i in batch:
            if i in old:
                target.remove(old.pop(i), spec.stop_timeout)
        started: list[tuple[int, Any]] = []
        try:
            for i in batch:
                started.append((i, target.start(spec, ref, i, deploy_id, self.replica_env(i))))
        except DeployError as exc:
            self.step(f"start {what}", t, False, str(exc))
            return str(exc)
        for i, c in started:
            error = wait_healthy(target, c, spec.health, spec.port(i), self.stop if stoppable else None)
            if error is not None:
                self.step(f"replace {what}", t, False, error)
                return self.scrub(error)
        self.step(f"replace {what}", t, True, ", ".join(c.name for _, c in started))
        return None

    def restore(self, indices: list[int], why: str) -> None:
        """Put `indices` back on the rollback image, a batch at a time (4), or say it could not (3)."""
        spec, target = self.spec, self.target
        self.journal.write(phase=j.ROLLING_BACK, reason=why)
        rollback_ref = self.journal.data.get("rollback_ref")
        deploy_id = str(self.journal.data.get("id", ""))
        mine = {
            int(c.labels.get(LABEL_REPLICA, "0")): c
            for c in target.managed(spec.name)
            if c.labels.get(LABEL_DEPLOY) == deploy_id
        }
        if not rollback_ref:
            for c in mine.values():
                target.remove(c, spec.stop_timeout)
            self.journal.write(phase=j.DONE, outcome="failed")
            self.report.outcome = Outcome.DEPLOY_FAILED
            self.report.message = f"{why}; no previous version to roll back to (first deploy)"
            return
        back_id = f"{int(time.time())}-rb{uuid.uuid4().hex[:4]}"
        todo = sorted(set(indices))
        size = spec.max_unavailable
        for first in range(0, len(todo), size):
            batch = todo[first : first + size]
            error = self._replace(
                batch, mine, str(rollback_ref), back_id, f"restore {', '.join(map(str, batch))}"
            )
            if error is not None:
                self.journal.write(phase=j.DONE, outcome="rollback_failed")
                self.report.outcome = Outcome.DEPLOY_FAILED
                self.report.message = f"{why}; ROLLBACK FAILED: {error}"
                return
        self.journal.write(phase=j.DONE, outcome="rolled_back")
        self.report.outcome = Outcome.ROLLED_BACK
        self.report.message = f"{why}; replicas {', '.join(map(str, todo))} rolled back to {rollback_ref}"
