"""Keypress to updated screen in the Improvements pane holding 5,000 proposals.

Measured the way tui_keypress.py measures the Flags pane (its FrameWatch: the clock starts just
before `pilot.press(key)` and stops when the app hands the driver a screen update in which the key's
effect is visible, each update also rendered to the terminal's escape sequences). The console is
`OpsConsoleApp(engine)` as `opsconsole` starts it (runner mode) at 80x24, on a workspace whose
production environment has an improvement queue; 5,000 proposals in every status are written into
its store before the console opens (as a sync would have written them). The agent's URL is a closed
port: the runner's sync fails at once and the header says the agent is unreachable. Actions,
PRESSES each:

- `cursor_down`: `down` until the cursor row moved and the line under the table names it;
- `page_down`: `pagedown` until the cursor moved a page;
- `select`: `space` until the row carries the selection mark (and the header the count);
- `open_detail`: Enter until the detail screen shows the improvement's facts;
- `close_detail`: Esc until the queue is back on screen.

Target: p95 <= 100 ms for every action.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from common import (
    ACTOR,
    canary_plan,
    emit_list_pane,
    full_gc_figures,
    keypress_figures,
    measure_list_pane,
    temp_dir,
    time_cursor,
    time_down_after,
    wait_for_engine,
    wait_for_rows,
    write_config,
)
from tui_keypress import WAIT_S, FrameWatch

from opsconsole.engine.core import Engine
from opsconsole.engine.improvements.model import Improvement, ImprovementStatus, Sample
from opsconsole.engine.improvements.protocol import PredictedImpact, Proposal
from opsconsole.tui.app import OpsConsoleApp

PROPOSALS = 5_000
PRESSES = 50
TARGET_P95_MS = 100.0
ACTIONS = ("cursor_down", "page_down", "select", "open_detail", "close_detail", "down_during_reload")
EVENTS = 30
"""Engine events of each kind (sample_event, reload_event)."""
QUEUE = """
improvements:
  production:
    agent: {url: "http://127.0.0.1:9/mcp", timeout: 1s}
    cycle_interval: 6h
    quality_threshold: 0.85
    risk_tolerance: 0.10
    max_concurrent: 2
    monitoring: 30m
    rollback_threshold: 0.10
"""
S = ImprovementStatus
STATUSES = (S.PROPOSED,) * 4 + (S.KEPT,) * 2 + (S.ROLLED_BACK,) + (S.REJECTED,) * 3
"""Most of a long-lived queue: waiting for review, or finished."""
LIVE = 2
APPROVED = 10
"""Within the concurrency limit: 2 monitored, 10 approved waiting for a deploy slot (the agent is
down, so the runner's deploy attempts fail and back off, as they would)."""


class EventWatch(FrameWatch):
    async def event(self, fire: Callable[[], object], effect: Callable[[], bool]) -> float:
        """Milliseconds from `fire()` (an engine event) to the first update showing `effect`."""
        self.shown_at = {}
        self.waiting = {"effect": effect}
        t0 = time.perf_counter()
        fire()
        deadline = t0 + WAIT_S
        while self.waiting:
            if time.perf_counter() > deadline:
                self.waiting = {}
                raise RuntimeError(f"the screen did not show an engine event within {WAIT_S:g} s")
            await asyncio.sleep(0.001)
        return (self.shown_at["effect"] - t0) * 1000


def proposals(now: float) -> list[Improvement]:
    """PROPOSALS items: scores spread over 0..1, a tenth with long titles and descriptions, LIVE
    monitored ones with a minute of samples, APPROVED approved, the rest proposed or finished."""
    items = []
    for n in range(PROPOSALS):
        status = (
            S.MONITORING if n < LIVE else S.APPROVED if n < LIVE + APPROVED else STATUSES[n % len(STATUSES)]
        )
        long = n % 10 == 0
        p = Proposal(
            id=f"imp-{n:05d}",
            title=f"Tune the connection pool of service {n % 97} " + ("and more " * 30 if long else ""),
            description=("A change the agent found. " * (400 if long else 4)).strip(),
            component=f"service-{n % 97}",
            tenant=("meetmind", "acme", "globex", "")[n % 4],
            kind="tuning",
            impact=PredictedImpact("quantile(0.95, http_request_duration_seconds) * 1000", -0.1, "lower"),
            quality_score=round((n * 7919 % 1000) / 1000, 3),
            risk=round((n * 104729 % 200) / 1000, 3),
            created_at=now - 86400 + n,
        )
        item = Improvement(environment="production", proposal=p, status=status, proposed_at=now - 86400 + n)
        if status is S.MONITORING:
            samples = tuple(Sample(now - 60 + k, 180.0 - k * 0.5) for k in range(60))
            item = replace(
                item, deployed_at=now - 60, monitor_until=now + 1740, baseline=180.0, samples=samples
            )
        items.append(item)
    return items


def insert(engine: Engine, items: list[Improvement]) -> None:
    with engine.store.transaction() as tx:
        tx.insert_improvements(items)


async def measure(engine: Engine) -> dict[str, Any]:
    from opsconsole.tui.panes.improvements import SELECTED_MARK, ImprovementsPane
    from opsconsole.tui.screens.improvement import ImprovementDetailScreen

    app = OpsConsoleApp(engine)
    timings: dict[str, list[float]] = {name: [] for name in (*ACTIONS, "sample_event", "reload_event")}
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_engine(app, pilot)
        watch = EventWatch(app)
        watch.install()
        await pilot.press("4")
        pane = app.query_one(ImprovementsPane)
        await wait_for_rows(pilot, pane, PROPOSALS, "5,000 proposals")
        table = pane.table
        await time_cursor(watch, pilot, table, pane.query_one("#improvement-line"), PRESSES, timings)
        for _ in range(PRESSES):
            key = table.selected
            assert key is not None
            ms = await watch.press(
                pilot,
                "space",
                lambda k=key: k in pane.selection and pane._cells(k)["mark"][0] == SELECTED_MARK,
            )
            timings["select"].append(ms["effect"])
            await pilot.press("down")
        pane.selection.clear()
        for _ in range(PRESSES):
            await pilot.press("down")

            def detail_shown() -> bool:
                screen = app.screen
                return isinstance(screen, ImprovementDetailScreen) and bool(
                    str(screen.query_one("#improvement-facts").render())
                )

            ms = await watch.press(pilot, "enter", detail_shown)
            timings["open_detail"].append(ms["effect"])
            ms = await watch.press(
                pilot,
                "escape",
                lambda: not isinstance(app.screen, ImprovementDetailScreen) and table.region.height > 0,
            )
            timings["close_detail"].append(ms["effect"])
        # The engine's runner writes a monitoring sample and publishes the item it wrote: the row
        # and the header follow without reading the queue back.
        await pilot.press("home")
        monitored = [k for k in table.keys if pane.items[k].status is S.MONITORING]
        for n in range(EVENTS):
            key = monitored[n % len(monitored)]
            item = engine.improvement("production", key)
            sampled = replace(
                item, observed=170.0 - n, samples=(*item.samples, Sample(time.time(), 170.0 - n))
            )
            with engine.store.transaction() as tx:
                tx.update_improvement(sampled, item.version)
            written = replace(sampled, version=item.version + 1)
            ms = await watch.event(
                lambda w=written: engine.bus.publish("improvements", environment="production", items=[w]),
                lambda k=key, w=written: pane.items[k].version == w.version,
            )
            timings.setdefault("sample_event", []).append(ms)
            await pilot.pause(0.05)
        # An event without items (a sync, another process's decision): the whole queue is read
        # again in a thread. Timed: until the read is shown; and a key pressed right after the
        # event, while the read holds the interpreter, until its effect is on screen.
        reads = [0]
        apply = pane.apply

        def counted(*args: Any) -> None:
            reads[0] += 1
            apply(*args)

        pane.apply = counted  # type: ignore[method-assign]
        for _ in range(EVENTS):
            done = reads[0] + 1
            ms = await watch.event(
                lambda: engine.bus.publish("improvements", environment="production"),
                lambda d=done: reads[0] >= d,
            )
            timings.setdefault("reload_event", []).append(ms)
            engine.bus.publish("improvements", environment="production")
            await time_down_after(watch, pilot, pane, timings["down_during_reload"])
        watch.uninstall()
    figures = keypress_figures(timings, watch.frame_bytes)
    figures["gc"] = full_gc_figures(watch)
    return figures


def main() -> None:
    with temp_dir("opsconsole-bench-improvements-") as root:
        ws, config = write_config(root, {"canary": canary_plan("canary")}, extra=QUEUE)
        engine = Engine(config, ws, ACTOR)
        figures, listed = measure_list_pane(
            engine,
            lambda: insert(engine, proposals(time.time())),
            lambda: len(engine.improvements("production")),
            measure,
            ACTIONS,
        )
    emit_list_pane(
        "improvements_pane",
        what=f"{PROPOSALS} proposals",
        rows=PROPOSALS,
        listed=listed,
        figures=figures,
        target_ms=TARGET_P95_MS,
        proposals=PROPOSALS,
        app="OpsConsoleApp(engine) (runner mode) under app.run_test(size=(80, 24)), Improvements pane",
        presses_each=PRESSES,
    )


if __name__ == "__main__":
    main()
