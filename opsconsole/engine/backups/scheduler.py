"""Interval schedules: which targets are due (pure), and the runner's task that takes them.

A target is due when its newest run of any outcome started a full interval ago, so a target whose
backups fail is tried once per interval, not on every tick. A scheduled backup is verified right
after it is taken: a copy counts as restorable only once it has been read back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .model import BackupRun, BackupTarget, RunStatus, Trigger

if TYPE_CHECKING:
    from .service import BackupService

log = logging.getLogger(__name__)


def due(targets: Mapping[str, BackupTarget], newest: Mapping[str, BackupRun | None], now: float) -> list[str]:
    """Targets with a schedule whose newest run started at least one interval before `now`."""
    out = []
    for name, t in sorted(targets.items()):
        if t.schedule is None:
            continue
        last = newest.get(name)
        if last is None or now - last.started_at >= t.schedule:
            out.append(name)
    return out


class BackupScheduler:
    """Started by the runner's tick; one step at a time, in its own task (never awaited by the tick,
    so a long dump never delays a rollout's gates), blocking work in a thread."""

    def __init__(self, service: BackupService) -> None:
        self.service = service
        self._task: asyncio.Task[list[BackupRun]] | None = None

    def kick(self, now: float) -> bool:
        if self._task is not None and not self._task.done():
            return False
        self._task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.step, now))
        return True

    def step(self, now: float) -> list[BackupRun]:
        """Take (and verify) every due backup; returns the runs' final records."""
        targets = self.service.engine.config.backups
        self.service.fail_interrupted(now)
        newest: dict[str, BackupRun | None] = {}
        for name in targets:
            runs: Sequence[BackupRun] = self.service.runs(name, limit=1)
            newest[name] = runs[0] if runs else None
        done = []
        for name in due(targets, newest, now):
            run = self.service.run(name, Trigger.SCHEDULE, "schedule", by_engine=True)
            if run.status == RunStatus.OK:
                run = self.service.verify(name, run.id, by_engine=True)
            else:
                log.warning("scheduled backup of %s failed: %s", name, run.reason)
            done.append(run)
        return done

    async def wait(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    async def close(self) -> None:
        # A thread cannot be cancelled: wait for the backup in hand so its record is finished.
        await self.wait()
