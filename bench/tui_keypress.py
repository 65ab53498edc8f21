"""Keypress to updated screen with 10,000 flags, measured inside the console with Textual's pilot.

The console (`OpsConsoleApp` as `opsconsole` starts it: its runner ticks every second, with no
metrics source and no rollout, so nothing but the keys changes the screen) runs under
`app.run_test(size=(80, 24))` on a workspace defining 10,000 flags with stored values for a third of
them (`common.many_flags_workspace`). The clock starts just before `pilot.press(key)` and
stops when the app hands a screen update to its driver in which the key's effect is visible: the
timing hook wraps `App._display`, and each update is also rendered to the terminal's escape sequences
(`render_segments`), work the headless driver would otherwise skip, so the figure includes all of what
a real terminal's frame costs except the write itself. Actions, PRESSES each:

- `to_flags`: `3` from the Rollouts pane until the flag table is laid out on screen, and
  `to_flags_footer` until the footer shows the Flags pane's keys too (Textual recomposes the footer
  after the focus moved, a few frames later); `to_rollouts`: `1` back until the Rollouts pane shows
  (SWITCHES round trips, each with Textual's tab underline animation, which pilot waits out);
- `cursor_down`: `down` in the flag table until the cursor row moved (scrolling past the first screen);
- `page_down`: `pagedown` until the cursor moved a page;
- `filter_key`: with the filter box open (`/`), a character or a backspace until the filtered list is
  the one for the new text (typing narrows the 10,000 names, backspace widens them again).

Target: p95 <= 100 ms for every action.

`gc` is the evidence for outliers: the cyclic garbage collector's full (generation 2) collections
during the run, how many timed presses had one inside their window, and the objects the heap gained;
`footer_keys_leaked` counts Textual FooterKey widgets no longer on screen but still referenced (the
Footer's data-bind watchers keep every old FooterKey: Textualize/textual#6666).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common import (
    ACTOR,
    MANY_FLAGS,
    emit,
    full_gc_figures,
    keypress_figures,
    many_flags_workspace,
    measure_closed,
    p95,
    temp_dir,
    wait_for_engine,
    worst_p95,
)
from textual.widgets import Static
from textual.widgets._footer import FooterKey

from opsconsole.engine.core import Engine
from opsconsole.tui.app import OpsConsoleApp

PRESSES = 50
SWITCHES = 30
TARGET_P95_MS = 100.0
WAIT_S = 10.0
ACTIONS = ("to_flags", "to_flags_footer", "to_rollouts", "cursor_down", "page_down", "filter_key")
FILTER_KEYS = ("9", "8", "7", "backspace", "backspace", "backspace")
"""One cycle of the filter action: narrow three times, widen back to everything."""


@dataclass
class FrameWatch:
    """Wraps the app's display: records when the first update in which each awaited condition holds
    was produced."""

    app: Any
    waiting: dict[str, Callable[[], bool]] = field(default_factory=dict)
    shown_at: dict[str, float] = field(default_factory=dict)
    frame_bytes: list[int] = field(default_factory=list)
    """Size of the terminal update that first showed a press's effect."""
    full_gcs: list[tuple[float, float]] = field(default_factory=list)
    """(start, milliseconds) of each generation-2 collection."""
    presses_with_full_gc: int = 0
    last_had_full_gc: bool = False
    """Whether a full collection started between the last press and its last awaited update."""
    _gc_started: float = 0.0

    def install(self) -> None:
        gc.callbacks.append(self._on_gc)
        original = self.app._display

        def display(screen: Any, renderable: Any) -> None:
            original(screen, renderable)
            if renderable is None or self.app._batch_count:
                return
            # What the driver would have written: the headless driver skips producing it.
            sequence = renderable.render_segments(self.app.console)
            for name, condition in list(self.waiting.items()):
                if condition():
                    self.shown_at[name] = time.perf_counter()
                    del self.waiting[name]
                    if name == "effect":
                        self.frame_bytes.append(len(sequence.encode()))

        self.app._display = display

    def uninstall(self) -> None:
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.full_gcs.append((self._gc_started, (time.perf_counter() - self._gc_started) * 1000))

    async def press(
        self, pilot: Any, key: str, effect: Callable[[], bool], **later: Callable[[], bool]
    ) -> dict[str, float]:
        """Press `key`; milliseconds to the first update showing `effect` (as "effect"), and to the
        first showing each of the `later` conditions (by name)."""
        self.shown_at = {}
        self.waiting = {"effect": effect, **later}
        t0 = time.perf_counter()
        await pilot.press(key)
        deadline = t0 + WAIT_S
        while self.waiting:
            if time.perf_counter() > deadline:
                self.waiting = {}
                raise RuntimeError(
                    f"pressing {key!r}: the screen did not show its effect within {WAIT_S:g} s"
                )
            await asyncio.sleep(0.001)
        end = max(self.shown_at.values())
        self.last_had_full_gc = any(t0 <= started <= end for started, _ in self.full_gcs[-3:])
        self.presses_with_full_gc += self.last_had_full_gc
        return {name: (at - t0) * 1000 for name, at in self.shown_at.items()}


async def measure(engine: Engine) -> dict[str, Any]:
    app = OpsConsoleApp(engine)
    timings: dict[str, list[float]] = {name: [] for name in ACTIONS}
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_engine(app, pilot)  # the runner starts right after the first frame
        if app.session.mode != "runner":
            raise RuntimeError(f"the console should run its runner, it is {app.session.mode!r}")
        watch = FrameWatch(app)
        watch.install()
        pane = app.panes["flags"]
        table = pane.table
        rollouts = app.panes["rollouts"]
        deadline = time.perf_counter() + 30
        while not pane.states:  # the pane reads and resolves 10,000 flag states in a worker at mount
            if time.perf_counter() > deadline:
                raise RuntimeError("the Flags pane did not load its flag states within 30 s")
            await asyncio.sleep(0.05)
        await pilot.pause()
        gc.collect()
        objects_before = len(gc.get_objects())

        def footer_shows(description: str) -> bool:
            keys = app.screen.query_one("#keys")
            return description in str(keys.render())

        without_gc: dict[str, list[float]] = {name: [] for name in ACTIONS}

        def record(action: str, ms: float) -> None:
            timings[action].append(ms)
            if not watch.last_had_full_gc:
                without_gc[action].append(ms)

        table_on_screen: Callable[[], bool] = lambda: table.region.height > 0  # noqa: E731
        for _ in range(SWITCHES):
            ms = await watch.press(pilot, "3", table_on_screen, footer=lambda: footer_shows("Filter"))
            record("to_flags", ms["effect"])
            record("to_flags_footer", ms["footer"])
            ms = await watch.press(pilot, "1", lambda: rollouts.region.height > 0)
            record("to_rollouts", ms["effect"])
        await watch.press(pilot, "3", table_on_screen)

        for _ in range(PRESSES):
            expected = table.cursor + 1
            ms = await watch.press(pilot, "down", lambda e=expected: table.cursor == e)
            record("cursor_down", ms["effect"])
        await pilot.press("home")
        for _ in range(PRESSES):
            before = table.cursor
            ms = await watch.press(pilot, "pagedown", lambda b=before: table.cursor > b)
            record("page_down", ms["effect"])

        await pilot.press("home", "slash")
        text, matches = "", []
        while len(timings["filter_key"]) < PRESSES:
            for key in FILTER_KEYS:
                text = text[:-1] if key == "backspace" else text + key
                ms = await watch.press(pilot, key, lambda w=text: pane.filter_text == w)
                record("filter_key", ms["effect"])
                matches.append(len(table.keys))
        await pilot.press("escape")
        watch.uninstall()
        gc.collect()
        evidence = full_gc_figures(watch) | {
            "p95_without_those_ms": {name: p95(v) for name, v in without_gc.items() if v},
            "heap_objects_at_start": objects_before,
            "heap_objects_gained": len(gc.get_objects()) - objects_before,
            "footer_keys_leaked": sum(
                1 for o in gc.get_objects() if isinstance(o, (FooterKey, Static)) and not o.is_attached
            ),
        }
    figures = keypress_figures(timings, watch.frame_bytes)
    figures["filter_matches"] = sorted(set(matches))
    figures["gc"] = evidence
    return figures


def main() -> None:
    with temp_dir("opsconsole-bench-keys-") as root:
        ws, config = many_flags_workspace(root)
        figures = measure_closed(Engine(config, ws, ACTOR), measure)
    worst = worst_p95(figures, ACTIONS)
    emit(
        "tui_keypress",
        target=f"p95 keypress -> updated screen <= {TARGET_P95_MS:g} ms for every action, {MANY_FLAGS} flags",
        ok=worst <= TARGET_P95_MS,
        figures={"worst_p95_ms": worst} | figures,
        setup={
            "flags": MANY_FLAGS,
            "stored_values": "a third of the generated flags, staging and production",
            "app": "OpsConsoleApp(engine) (runner mode) under app.run_test(size=(80, 24))",
            "presses_each": PRESSES,
            "pane_round_trips": SWITCHES,
            "units": "ms (frame_bytes: bytes of the terminal update that showed the key's effect)",
        },
    )


if __name__ == "__main__":
    main()
