"""The Backups pane against the real engine: a files target in tmp, backed up, verified, restored and
pruned by pressing the pane's keys, then the engine's records asserted."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from opsconsole.engine.backups.model import BackupRun, RunStatus, Trigger
from opsconsole.engine.core import Engine
from opsconsole.engine.session import Session
from opsconsole.tui.app import OpsConsoleApp
from opsconsole.tui.keys import ACTION_TITLES
from opsconsole.tui.panes.backups import BackupsPane
from opsconsole.tui.screens.backup_prune import BackupPruneScreen
from opsconsole.tui.screens.backup_restore import BackupRestoreScreen
from tests.integration.conftest import write_workspace
from tests.tui.conftest import console, engine_for, screen_text, sync, until

NOW = 1_700_000_000.0
"""2023-11-14 22:13:20 UTC: the snapshots' clock."""
BACKUPS = """
backups:
  site:
    kind: files
    paths: ["{data}"]
    keep_last: 2
  small:
    kind: files
    paths: ["{data}"]
    configuration: false
    flags: false
"""


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_poll(self: Session) -> None:
        """Nothing polls: the tests decide when the engine changes."""

    monkeypatch.setattr(Session, "_poll", no_poll)
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("alpha\n")
    (d / "sub" / "b.bin").write_bytes(bytes(range(256)) * 40)
    return d


@pytest.fixture
def ws(tmp_path: Path, data: Path, quiet: None) -> Path:
    return write_workspace(tmp_path, port=9, extra=textwrap.dedent(BACKUPS).format(data=data))


def pane_of(app: OpsConsoleApp) -> BackupsPane:
    return app.query_one(BackupsPane)


async def open_pane(pilot: Pilot[Any], count: int) -> BackupsPane:
    await pilot.press("5")
    pane = pane_of(pilot.app)  # type: ignore[arg-type]
    await until(pilot, lambda: pane.statuses and len(pane.table.keys) == count, f"{count} rows")
    return pane


async def type_text(pilot: Pilot[Any], text: str) -> None:
    for ch in text:
        await pilot.press({" ": "space", "[": "left_square_bracket", "]": "right_square_bracket"}.get(ch, ch))


def seeded(engine: Engine, target: str, n: int, now: float = NOW) -> list[BackupRun]:
    """`n` finished runs of `target`, one an hour back from `now`, written into the real store."""
    runs = []
    for k in range(n):
        started = now - 3600 * (k + 1)
        status = (RunStatus.VERIFIED, RunStatus.OK, RunStatus.FAILED, RunStatus.PRUNED)[k % 4]
        runs.append(
            BackupRun(
                id=f"{target}-{k:05d}",
                target=target,
                kind="files",
                trigger=Trigger.SCHEDULE if k % 2 else Trigger.MANUAL,
                actor="alice",
                started_at=started,
                status=status,
                ended_at=started + 2.5 + k % 7,
                size=0 if status is RunStatus.FAILED else 12_345 * (k + 1),
                sha256="ab" * 32,
                locations=(f"ws/backups/{target}/{target}-{k:05d}.tar.gz",)
                + ((f"s3://bucket/{target}-{k:05d}.tar.gz",) if k % 3 == 0 else ()),
                reason="disk full [bold]\x1b[31m" if status is RunStatus.FAILED else "",
                verified_at=started + 60 if status is RunStatus.VERIFIED else None,
                verified_how="full read, member checksums" if status is RunStatus.VERIFIED else "",
                restore_tested_at=started + 60 if status is RunStatus.VERIFIED else None,
            )
        )
    with engine.store.transaction() as tx:
        for run in runs:
            tx.insert_backup_run(run)
    return runs


# ------------------------------------------------------------------------------------ showing


@sync
async def test_status_on_top_and_history_with_every_column(ws: Path) -> None:
    engine = engine_for(ws, "alice", clock=lambda: NOW)
    seeded(engine, "site", 6)
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 6)
        text = screen_text(app)
        assert "site UNVERIFIED" in text or "site OK" in text
        assert "small UNVERIFIED · no backup yet" in text
        for heading in ("Status", "Age", "Size", "Took", "Verified", "Storage"):
            assert heading in text
        assert "verified" in text and "failed" in text and "pruned" in text
        assert "local+s3" in text and "12.3 kB" in text and "restored" in text and "1h" in text
        assert not pane.table.show_horizontal_scrollbar
        assert pane.table.keys == [f"site-{k:05d}" for k in range(6)]
        await pilot.press("down", "down")  # the failed run: its reason came from a process's message
        await until(pilot, lambda: "site-00002 failed" in screen_text(app), "the failed run's line")
        assert "disk full [bold]\\x1b[31m" in screen_text(app)  # shown as typed, not interpreted


@sync
async def test_without_a_backups_section_the_pane_says_so(tmp_path: Path, quiet: None) -> None:
    ws = write_workspace(tmp_path, port=9)
    app = console(engine_for(ws))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await pilot.pause()
        pane = pane_of(app)
        assert app.focused is pane
        text = screen_text(app)
        assert "Backups: not configured" in text and "'backups:' section" in text
        assert "Meanwhile, back these up yourself" in text
        assert not pane.configured and not pane.check_action("run_backup", ())


# ------------------------------------------------------------------------------------ actions


def runs_of(engine: Engine, target: str = "site") -> list[BackupRun]:
    return engine.backups(target)


@sync
async def test_back_up_verify_and_restore_from_the_keys(ws: Path, tmp_path: Path) -> None:
    engine = engine_for(ws, "alice")
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 0)
        assert "no backups yet: b backs up now" in screen_text(app)
        await pilot.press("b")
        await until(pilot, lambda: len(pane.table.keys) == 1, "the new run in the history", 15)
        run = runs_of(engine)[0]
        assert run.status is RunStatus.OK and run.actor == "alice"
        await until(pilot, lambda: "not yet" in screen_text(app), "the row")
        assert "local" in screen_text(app)

        await pilot.press("v")
        await until(pilot, lambda: runs_of(engine)[0].status is RunStatus.VERIFIED, "verified", 15)
        await until(pilot, lambda: pane.runs[run.id].status is RunStatus.VERIFIED, "the row repainted")
        await until(pilot, lambda: "site OK" in screen_text(app), "restorability ok")

        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, BackupRestoreScreen), "the restore dialog")
        await type_text(pilot, "sitx")
        await pilot.press("enter")
        await until(pilot, lambda: "Type the target's name, site" in screen_text(app), "the name refused")
        await pilot.press("backspace")
        await type_text(pilot, "e")
        await pilot.press("enter")  # the name is right: on to the reason
        await type_text(pilot, "drill")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, BackupRestoreScreen), "restored", 15)
        restored = list((ws / "backups" / "restored").iterdir())
        assert len(restored) == 1
        found = [p.read_text() for p in restored[0].rglob("a.txt")]
        assert found == ["alpha\n"]


@sync
async def test_overwrite_needs_an_approver_and_the_refusal_stays_in_the_dialog(ws: Path) -> None:
    engine = engine_for(ws, "bob")  # an operator
    seeded(engine, "site", 1, now=engine.clock())
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_pane(pilot, 1)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, BackupRestoreScreen), "the restore dialog")
        screen = app.screen
        assert isinstance(screen, BackupRestoreScreen)
        screen.query_one("#overwrite").value = True  # type: ignore[attr-defined]
        await until(pilot, lambda: "only an approver may do this" in screen_text(app), "the warning")
        await type_text(pilot, "site")
        await pilot.press("enter")
        await type_text(pilot, "oops")
        await pilot.press("enter")
        await until(pilot, lambda: "refused" in screen_text(app), "the engine's refusal")
        assert "needs approver" in screen_text(app)
        assert isinstance(app.screen, BackupRestoreScreen)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, BackupRestoreScreen), "closed")


@sync
async def test_prune_shows_the_dry_run_then_deletes(ws: Path) -> None:
    engine = engine_for(ws, "alice")
    for _ in range(3):
        engine.run_backup("site")
    engine.verify_backup("site")
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 3)
        await pilot.press("p")
        await until(pilot, lambda: "would be deleted" in screen_text(app), "the dry run")
        text = screen_text(app)
        assert "1 would be deleted, 2 kept" in text and "delete" in text and "keep" in text
        assert all(r.status is not RunStatus.PRUNED for r in runs_of(engine))  # a dry run
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, BackupPruneScreen), "pruned")
        statuses = [r.status for r in runs_of(engine)]
        assert statuses.count(RunStatus.PRUNED) == 1
        await until(pilot, lambda: "pruned" in screen_text(app), "the pruned row")
        assert len(pane.table.keys) == 3  # the record stays
        await pilot.press("p")  # the same dialog again, asking the engine afresh
        await until(pilot, lambda: "Nothing would be deleted" in screen_text(app), "the second dry run")
        await pilot.press("enter")  # nothing to delete: Enter does nothing
        await pilot.pause()
        assert isinstance(app.screen, BackupPruneScreen)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, BackupPruneScreen), "closed")


@sync
async def test_a_refusal_is_shown_inline_and_the_palette_runs_the_action(ws: Path, data: Path) -> None:
    from opsconsole.tui.commands import console_commands

    engine = engine_for(ws, "alice")
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 0)
        await pilot.press("v")  # nothing to verify yet
        await until(pilot, lambda: "No backup selected" in screen_text(app), "the inline error")
        command = next(c for c in console_commands(app) if c.name == "Back up the current target now")
        await command.run()
        await until(pilot, lambda: len(pane.table.keys) == 1, "the run from the palette", 15)
        shutil.rmtree(data)  # what the target backs up is gone: the run fails, with the reason
        await pilot.press("b")
        error = pane.query_one("#backups-error")
        await until(pilot, lambda: "Backup of site failed" in str(error.render()), "the failure", 15)
        assert [r.status for r in runs_of(engine)] == [RunStatus.FAILED, RunStatus.OK]
        await until(pilot, lambda: "site FAILING" in screen_text(app), "restorability failing")


@sync
async def test_read_only_hides_every_action(ws: Path) -> None:
    from opsconsole.tui.commands import console_commands

    writer = engine_for(ws, "alice")
    seeded(writer, "site", 2)
    writer.close()
    engine = engine_for(ws, "alice", read_only=True)
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 2)
        for action in ("run_backup", "verify_backup", "restore_backup", "prune_backups"):
            assert not pane.check_action(action, ())
        names = {c.name for c in console_commands(app)}
        assert "Go to Backups" in names
        assert (
            not {ACTION_TITLES[a] for a in ("run_backup", "verify_backup", "restore_backup", "prune_backups")}
            & names
        )
        await pilot.press("r")
        await pilot.pause()
        assert not isinstance(app.screen, BackupRestoreScreen)


@sync
async def test_a_new_run_repaints_its_row_only(ws: Path) -> None:
    engine = engine_for(ws, "alice", clock=lambda: NOW)
    seeded(engine, "site", 40)
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 40)
        table = pane.table
        painted: list[int] = []
        refresh_lines = table.refresh_lines

        def counting(y: int, height: int = 1) -> Any:
            painted.append(y)
            return refresh_lines(y, height)

        table.refresh_lines = counting  # type: ignore[method-assign]
        run = runs_of(engine)[1]
        from dataclasses import replace

        with engine.store.transaction() as tx:
            tx.update_backup_run(replace(run, reason="noted"), run.version)
        engine.bus.publish("backups", target="site")
        await until(pilot, lambda: pane.runs[run.id].reason == "noted", "the changed run")
        await pilot.pause(0.1)
        assert painted == [2]  # row 1 of the table; the header is line 0


# ------------------------------------------------------------------------------------ snapshots


def snapshot_steps(*keys: str, shows: tuple[str, ...]) -> Any:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        await pilot.press("5")
        for key in keys:
            await until(pilot, lambda: all(w.is_finished for w in app.workers), "workers")
            await pilot.press(key)

        def done() -> bool:
            text = screen_text(app)  # type: ignore[arg-type]
            focused = app.screen.focused  # the table (its cursor row drawn as focused), or a dialog's input
            ready = focused is not None and focused.__class__.__name__ in ("BackupTable", "Input")
            return ready and all(s in text for s in shows) and all(w.is_finished for w in app.workers)

        await until(pilot, done, f"{shows} on screen")
        for box in app.screen.query(Input):
            box.cursor_blink = False
        await pilot.pause()

    return run_before


def test_pane_snapshot(ws: Path, snap_compare: Any) -> None:
    """80x24: site OK on top (its newest run verified by a full read), small without a backup; the
    history newest first with every status, local and local+s3 storage; the run under the cursor in
    full below."""
    engine = engine_for(ws, "alice", clock=lambda: NOW)
    seeded(engine, "site", 30)
    app = console(engine)
    assert snap_compare(
        app, terminal_size=(80, 24), run_before=snapshot_steps(shows=("site OK", "site-00000"))
    )


def test_restore_dialog_snapshot(ws: Path, snap_compare: Any) -> None:
    """80x24: the restore dialog on the newest run, the name not yet typed."""
    engine = engine_for(ws, "alice", clock=lambda: NOW)
    seeded(engine, "site", 4)
    app = console(engine)
    assert snap_compare(
        app,
        terminal_size=(80, 24),
        run_before=snapshot_steps("r", shows=("Restore site-00000", "to confirm")),
    )


@sync
async def test_the_restore_dialog_opened_again_asks_afresh_about_the_new_run(ws: Path) -> None:
    engine = engine_for(ws, "alice", clock=lambda: NOW)
    seeded(engine, "site", 3)
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_pane(pilot, 3)
        await pilot.press("r")
        await until(pilot, lambda: "Restore site-00000" in screen_text(app), "the first dialog")
        await type_text(pilot, "site")
        await pilot.press("enter")
        await type_text(pilot, "half typed")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, BackupRestoreScreen), "closed")
        await pilot.press("down")
        await pilot.press("r")
        await until(pilot, lambda: "Restore site-00001" in screen_text(app), "the second dialog")
        screen = app.screen
        assert isinstance(screen, BackupRestoreScreen) and screen.run.id == "site-00001"
        assert (
            screen.query_one("#confirm", Input).value == "" and screen.query_one("#reason", Input).value == ""
        )
        await until(pilot, lambda: screen.focused is screen.query_one("#confirm"), "focus on the name")


@sync
async def test_the_engine_refusing_a_verify_is_said_on_the_pane(ws: Path) -> None:
    engine = engine_for(ws, "alice", clock=lambda: NOW)
    seeded(engine, "site", 4)  # site-00003 is pruned: no stored copy to verify
    app = console(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_pane(pilot, 4)
        await pilot.press("end")
        assert pane.table.selected == "site-00003"
        await pilot.press("v")
        error = pane.query_one("#backups-error")
        await until(pilot, lambda: "refused" in str(error.render()), "the refusal on the pane")
        assert "site-00003" in str(error.render()) and isinstance(app.screen, type(app.screen_stack[0]))
