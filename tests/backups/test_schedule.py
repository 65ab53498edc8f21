"""Interval schedules: which targets are due (pure), and a scheduled step that takes and verifies
a backup on the engine's own authority (a viewer's session still gets its scheduled backups)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opsconsole.engine import Actor, open_engine
from opsconsole.engine.backups.model import BackupRun, BackupTarget, RunStatus, Trigger
from opsconsole.engine.backups.scheduler import BackupScheduler, due


def test_due_once_per_interval_whatever_the_outcome() -> None:
    targets = {
        "a": BackupTarget("a", "files", schedule=3600),
        "b": BackupTarget("b", "files"),
        "c": BackupTarget("c", "files", schedule=60),
    }
    failed = BackupRun("x", "a", "files", Trigger.SCHEDULE, "engine", 1000.0, RunStatus.FAILED)
    assert due(targets, {"a": failed, "c": None}, 1000.0 + 3599) == ["c"]
    assert due(targets, {"a": failed, "c": None}, 1000.0 + 3600) == ["a", "c"]


def test_scheduled_step_takes_and_verifies(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("x")
    cfg = tmp_path / "opsconsole.yaml"
    cfg.write_text(f"backups:\n  site:\n    kind: files\n    paths: [{data}]\n    schedule: 1h\n")
    engine = open_engine(str(cfg), tmp_path / "ws", actor=Actor("vic", "test"))  # viewer by default
    try:
        scheduler = BackupScheduler(engine.backup_service)
        now = engine.clock()
        [run] = scheduler.step(now)
        assert run.status == "verified" and run.trigger == "schedule" and run.actor == "engine"
        assert scheduler.step(now + 10) == []  # not due again within the hour
        assert engine.backup_status("site")["site"].state == "ok"

        async def kicked() -> None:
            assert scheduler.kick(now + 3700)
            await scheduler.wait()

        asyncio.run(kicked())
        assert len(engine.backups("site")) == 2
    finally:
        engine.close()
