"""Keypress to updated screen in the Backups pane holding 2,000 history rows.

Measured the way improvements_pane.py and tui_keypress.py measure (their FrameWatch: the clock starts
just before `pilot.press(key)` and stops when the app hands the driver a screen update in which the
key's effect is visible, each update also rendered to the terminal's escape sequences). The console
is `OpsConsoleApp(engine)` as `opsconsole` starts it (runner mode) at 80x24, on a workspace with a
`backups:` section of two files targets; 2,000 finished runs of `site` (every status: verified, ok,
failed, pruned, local and local+s3 storage) are written into its store before the console opens, as
a year of scheduled backups would have left them. Actions, PRESSES each:

- `cursor_down`: `down` until the cursor moved and the line under the table names the run;
- `page_down`: `pagedown` until the cursor moved a page;
- `open_restore`: `r` until the restore dialog shows the run; `close_restore`: Esc until the history
  is back;
- `open_prune`: `p` until the prune dialog is on screen (saying it asks the engine); reported beside
  it, not judged by the keypress target: `prune_dry_run_shown`, until the dialog lists retention's
  dry run over the 2,000 runs (the engine reads them and decides, in a thread); `close_prune`: Esc
  until the history is back;
- `switch_target`: `]` until the other target's (empty) history is read and shown, then `[` back
  until the 2,000 rows are (`switch_back`: the pane shows its last read at once, then reads again);
- `down_during_reload`: a `backups` engine event (the whole history read again in a thread), then
  `down` at once, until its effect is on screen.

Target: p95 <= 100 ms for every action.
"""

from __future__ import annotations

import time
from typing import Any

from common import (
    ACTOR,
    canary_plan,
    emit_list_pane,
    keypress_figures,
    measure_list_pane,
    temp_dir,
    time_cursor,
    time_down_after,
    wait_for_engine,
    wait_for_rows,
    write_config,
)
from tui_keypress import FrameWatch

from opsconsole.engine.backups.model import BackupRun, RunStatus, Trigger
from opsconsole.engine.core import Engine
from opsconsole.tui.app import OpsConsoleApp

RUNS = 2_000
PRESSES = 50
SWITCHES = 20
TARGET_P95_MS = 100.0
ACTIONS = (
    "cursor_down",
    "page_down",
    "open_restore",
    "close_restore",
    "open_prune",
    "close_prune",
    "switch_target",
    "switch_back",
    "down_during_reload",
)
BACKUPS = """
backups:
  site:
    kind: files
    paths: ["{data}"]
    keep_last: 30
    keep_daily: 14
  small:
    kind: files
    paths: ["{data}"]
"""
STATUSES = (RunStatus.VERIFIED,) * 5 + (RunStatus.PRUNED,) * 3 + (RunStatus.OK, RunStatus.FAILED)


def history(now: float) -> list[BackupRun]:
    """RUNS runs of `site`, one every 4 hours back from `now`."""
    runs = []
    for k in range(RUNS):
        started = now - 4 * 3600 * (k + 1)
        status = STATUSES[k % len(STATUSES)]
        runs.append(
            BackupRun(
                id=f"site-{k:05d}",
                target="site",
                kind="files",
                trigger=Trigger.SCHEDULE,
                actor="engine",
                started_at=started,
                status=status,
                ended_at=started + 3.0 + k % 11,
                size=0 if status is RunStatus.FAILED else 40_000_000 + k * 1000,
                sha256="ab" * 32,
                locations=(f"/srv/backups/site/site-{k:05d}.tar.gz",)
                + ((f"s3://backups/site/site-{k:05d}.tar.gz",) if k % 2 else ()),
                reason="disk full" if status is RunStatus.FAILED else "",
                verified_at=started + 60 if status is RunStatus.VERIFIED else None,
                verified_how="full read, member checksums" if status is RunStatus.VERIFIED else "",
                restore_tested_at=started + 60 if status is RunStatus.VERIFIED else None,
            )
        )
    return runs


def insert(engine: Engine, runs: list[BackupRun]) -> None:
    with engine.store.transaction() as tx:
        for run in runs:
            tx.insert_backup_run(run)


async def measure(engine: Engine) -> dict[str, Any]:
    from opsconsole.tui.panes.backups import BackupsPane
    from opsconsole.tui.screens.backup_prune import BackupPruneScreen
    from opsconsole.tui.screens.backup_restore import BackupRestoreScreen

    app = OpsConsoleApp(engine)
    timings: dict[str, list[float]] = {name: [] for name in (*ACTIONS, "prune_dry_run_shown")}
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_engine(app, pilot)
        watch = FrameWatch(app)
        watch.install()
        await pilot.press("5")
        pane = app.query_one(BackupsPane)
        await wait_for_rows(pilot, pane, RUNS, f"{RUNS} runs")
        table = pane.table
        await time_cursor(watch, pilot, table, pane.query_one("#backup-line"), PRESSES, timings)
        await pilot.press("home")
        for _ in range(PRESSES):
            await pilot.press("down")
            while table.selected is None or pane.runs[table.selected].status in (
                RunStatus.FAILED,
                RunStatus.PRUNED,
            ):
                await pilot.press("down")

            def restore_shown() -> bool:
                return isinstance(app.screen, BackupRestoreScreen)

            ms = await watch.press(pilot, "r", restore_shown)
            timings["open_restore"].append(ms["effect"])
            ms = await watch.press(
                pilot,
                "escape",
                lambda: not isinstance(app.screen, BackupRestoreScreen) and table.region.height > 0,
            )
            timings["close_restore"].append(ms["effect"])
        for _ in range(PRESSES):

            def dry_run_shown() -> bool:
                screen = app.screen
                return isinstance(screen, BackupPruneScreen) and screen.decisions is not None

            ms = await watch.press(
                pilot, "p", lambda: isinstance(app.screen, BackupPruneScreen), dry_run=dry_run_shown
            )
            timings["open_prune"].append(ms["effect"])
            timings["prune_dry_run_shown"].append(ms["dry_run"])
            ms = await watch.press(
                pilot,
                "escape",
                lambda: not isinstance(app.screen, BackupPruneScreen) and table.region.height > 0,
            )
            timings["close_prune"].append(ms["effect"])
        for _ in range(SWITCHES):
            ms = await watch.press(
                pilot,
                "right_square_bracket",
                lambda: pane.target == "small" and table.empty_text.startswith("no backups"),
            )
            timings["switch_target"].append(ms["effect"])
            ms = await watch.press(
                pilot, "left_square_bracket", lambda: pane.target == "site" and len(table.keys) == RUNS
            )
            timings["switch_back"].append(ms["effect"])
        await pilot.press("home")
        for _ in range(PRESSES):
            engine.bus.publish("backups", target="site")
            await time_down_after(watch, pilot, pane, timings["down_during_reload"])
        watch.uninstall()
    return keypress_figures(timings, watch.frame_bytes)


def main() -> None:
    with temp_dir("opsconsole-bench-backups-") as root:
        data = root / "data"
        data.mkdir()
        (data / "a.txt").write_text("alpha\n")
        ws, config = write_config(root, {"canary": canary_plan("canary")}, extra=BACKUPS.format(data=data))
        engine = Engine(config, ws, ACTOR)
        figures, listed = measure_list_pane(
            engine,
            lambda: insert(engine, history(time.time())),
            lambda: len(engine.backups("site")),
            measure,
            ACTIONS,
        )
    emit_list_pane(
        "backups_pane",
        what=f"{RUNS} history rows",
        rows=RUNS,
        listed=listed,
        figures=figures,
        target_ms=TARGET_P95_MS,
        runs=RUNS,
        app="OpsConsoleApp(engine) (runner mode) under app.run_test(size=(80, 24)), Backups pane",
        presses_each=PRESSES,
        switches=SWITCHES,
    )


if __name__ == "__main__":
    main()
