"""The first frame's light tab strip (layout.FirstTabs) is swapped for Textual's tabs right after that
frame, and the swap changes no cell of the screen: the same characters in the same colours, the
same rows in the table, the cursor and the focus where they were. Before and after are rendered
from two consoles on the same workspace, both still opening their engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rich.style import Style
from textual.widgets import TabbedContent

from opsconsole.tui.app import OpsConsoleApp
from opsconsole.tui.layout import FirstTabs
from tests.tui.conftest import until
from tests.tui.test_first_look import _gated, _look, _workspace


def _cells(app: OpsConsoleApp) -> list[list[tuple[str, str]]]:
    """Every line of the screen as (text, style) per run of cells, merged so that equal screens
    compare equal whatever their segments. A blank's colour is its background alone: its foreground
    shows nowhere (Textual draws a Tab's padding without one, the strip with the text's)."""
    lines = []
    for strip in app.screen._compositor.render_strips():
        cells: list[tuple[str, str]] = []
        for segment in strip:
            style = segment.style or Style()
            if not segment.text.strip(" ") and not (style.underline or style.reverse or style.strike):
                style = Style(bgcolor=style.bgcolor)
            if cells and cells[-1][1] == str(style):
                cells[-1] = (cells[-1][0] + segment.text, cells[-1][1])
            else:
                cells.append((segment.text, str(style)))
        lines.append(cells)
    return lines


async def _frame(ws: Path, *, swap: bool, theme: str | None, monkeypatch: pytest.MonkeyPatch) -> list:
    opener, release = _gated(ws)
    with monkeypatch.context() as patch:
        if not swap:

            async def keep_first_tabs(self: OpsConsoleApp) -> None:
                return None

            patch.setattr(OpsConsoleApp, "_swap_in_tabs", keep_first_tabs)
        app = OpsConsoleApp(opener=opener, look=lambda: _look(ws), run_engine=False, theme=theme)
        async with app.run_test(size=(80, 24)) as pilot:
            if swap:
                await until(pilot, lambda: app._tabs_ready)
                assert not app.query(FirstTabs) and app.query(TabbedContent)
            else:
                await pilot.pause(0.2)
                assert app.query(FirstTabs) and not app.query(TabbedContent)
            await until(
                pilot, lambda: app.query_one("#rollouts").has_focus_within, "the Rollouts pane focused"
            )
            cells = _cells(app)
            release.set()  # and let the engine's opening end before the console does
            await until(pilot, lambda: app.opened or app._opened_early is not None)
    return cells


@pytest.mark.parametrize("theme", [None, "textual-light", "textual-ansi"])
def test_the_swap_to_the_real_tabs_changes_no_cell(tmp_path: Path, theme: str | None, monkeypatch) -> None:
    ws, rid = _workspace(tmp_path)

    async def run() -> None:
        first = await _frame(ws, swap=False, theme=theme, monkeypatch=monkeypatch)
        swapped = await _frame(ws, swap=True, theme=theme, monkeypatch=monkeypatch)
        assert rid in "".join(text for text, _style in first[4])  # the row is there
        for number, (a, b) in enumerate(zip(first, swapped, strict=True)):
            assert a == b, f"line {number} differs:\n{a}\n{b}"

    asyncio.run(run())


def test_help_opened_over_the_first_frame_does_not_hold_the_swap(tmp_path: Path) -> None:
    """A screen pushed over the first frame (help, typed ahead) holds that screen's refresh
    callbacks until it closes; the swap to the real tabs happens beneath it all the same, and the
    real Rollouts pane has the focus when it closes (then the engine's rows go to it)."""
    ws, _rid = _workspace(tmp_path)
    opener, release = _gated(ws)

    async def run() -> None:
        app = OpsConsoleApp(opener=opener, look=lambda: _look(ws), run_engine=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("question_mark")  # help, over the first frame
            await until(pilot, lambda: app._tabs_ready)
            assert app.screen.id != "_default"
            await pilot.press("escape")
            await until(pilot, lambda: app.query_one("#rollouts").has_focus_within)
            release.set()
            await until(pilot, lambda: app.opened and "rollouts" in app.panes)
            assert app.panes["rollouts"] is app.query_one("#rollouts")

    asyncio.run(run())
