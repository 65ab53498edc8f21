"""`backup_before: TARGET`: the backup a phase waits for, taken and verified in a thread.

The runner asks `poll` every tick for each rollout whose current phase waits for its backup; the
first ask starts the work in its own task (never awaited by the tick: a long dump or the kill switch
never waits on it), later asks return None until the outcome is there, then the outcome once.

A restarted runner finds what an earlier one did by the run's reason (it names the rollout and the
phase): a verified run is used as it is (no second backup), a run taken but not verified is verified,
and a run left `running` by the dead runner is marked failed (interrupted) and a new one is taken.
Only the runner holding the workspace takes these backups, so a `running` one that this runner did
not start belongs to a process that ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..model import ENGINE_ACTOR
from .model import BackupRun, RunStatus, Trigger

if TYPE_CHECKING:
    from .service import BackupService

log = logging.getLogger(__name__)

Key = tuple[str, int]
"""(rollout id, phase index)."""


@dataclass(frozen=True)
class PhaseBackup:
    run: str
    ok: bool
    reason: str = ""


class PhaseBackups:
    def __init__(self, service: BackupService) -> None:
        self.service = service
        self._tasks: dict[Key, tuple[float, asyncio.Task[PhaseBackup]]] = {}

    def poll(self, key: Key, target: str, reason: str, since: float) -> PhaseBackup | None:
        """The outcome of this phase's backup once there (given once), else None (started if not
        yet). A failure of an attempt started before `since` (the rollout's last change: a resume
        asks for a new attempt) is dropped and the backup taken again; a success is used."""
        held = self._tasks.get(key)
        if held is not None and held[1].cancelled():
            held = None  # its event loop ended under it: what it did is found in the store again
        elif held is not None and held[1].done() and held[0] < since and not _ok(held[1]):
            held = None
        if held is None:
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.take, target, reason))
            self._tasks[key] = (self.service.engine.clock(), task)
            return None
        task = held[1]
        if not task.done():
            return None
        del self._tasks[key]
        try:
            return task.result()
        except Exception as exc:  # a store or programming error: the phase is held with it, not lost
            log.warning("backup of %s (%s) failed: %s", target, reason, exc)
            return PhaseBackup("", False, f"{type(exc).__name__}: {exc}")

    def busy(self, key: Key) -> bool:
        held = self._tasks.get(key)
        return held is not None and not held[1].done()

    def forget(self, keep: Iterable[Key]) -> None:
        """Drop finished outcomes nobody will ask for (the rollout ended or moved on meanwhile)."""
        wanted = set(keep)
        for key, (_, task) in list(self._tasks.items()):
            if key not in wanted and task.done():
                del self._tasks[key]

    def take(self, target: str, reason: str) -> PhaseBackup:
        """Blocking: find or take the backup, then verify it."""
        service = self.service
        mine = [r for r in service.runs(target) if r.trigger == Trigger.BEFORE_PHASE and r.reason == reason]
        run: BackupRun | None = None
        if mine:
            newest = mine[0]
            if newest.status == RunStatus.VERIFIED:
                return PhaseBackup(newest.id, True)
            if newest.status == RunStatus.OK:
                run = newest  # taken by a runner that ended before verifying it
            elif newest.status == RunStatus.RUNNING:
                self._interrupted(newest)
        if run is None:
            run = service.run(target, Trigger.BEFORE_PHASE, reason, by_engine=True)
            if run.status != RunStatus.OK:
                return PhaseBackup(run.id, False, f"backup {run.id} {run.status}: {run.reason}")
        checked = service.verify(target, run.id, by_engine=True)
        if checked.status != RunStatus.VERIFIED:
            return PhaseBackup(run.id, False, f"backup {run.id} {checked.status}: {checked.reason}")
        return PhaseBackup(run.id, True)

    def _interrupted(self, run: BackupRun) -> None:
        engine = self.service.engine
        now = engine.clock()
        failed = replace(
            run,
            status=RunStatus.FAILED,
            ended_at=now,
            reason=run.reason,
            error_kind="interrupted",
        )
        with engine.store.transaction() as tx:
            if tx.update_backup_run(failed, run.version):
                tx.append_audit(
                    now,
                    ENGINE_ACTOR,
                    "backup.interrupted",
                    f"backup:{run.target}",
                    {"run": run.id, "why": "the engine that took it ended; a new backup is taken"},
                )
        engine.bus.publish("backups", target=run.target)

    async def close(self) -> None:
        # A thread cannot be cancelled: wait for the backups in hand so their records are finished.
        for _, task in list(self._tasks.values()):
            with contextlib.suppress(Exception):
                await task


def _ok(task: asyncio.Task[PhaseBackup]) -> bool:
    return not task.cancelled() and task.exception() is None and task.result().ok
