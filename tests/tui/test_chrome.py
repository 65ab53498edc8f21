"""The console's chrome: themes from files, the generated help, the command palette, and the panes
that are honest empty states. Real keys through the pilot; no runner (run_engine=False), no network."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from textual.command import CommandInput, CommandList, CommandPalette
from textual.filter import Monochrome, NoColor
from textual.widgets import Input

from opsconsole.tui.app import OpsConsoleApp
from opsconsole.tui.commands import console_commands
from opsconsole.tui.panes.backups import BackupsPane
from opsconsole.tui.panes.improvements import ImprovementsPane
from opsconsole.tui.screens.help import HelpScreen
from opsconsole.tui.themes import load_theme_file, load_themes, switch_theme, themes_dir
from tests.integration.conftest import write_workspace
from tests.tui.conftest import console, engine_for, sync, until

SHIPPED = {"opsconsole-dark", "opsconsole-light", "opsconsole-16"}
KILL_KEY = "^\\"  # ctrl+backslash as Textual displays it
GATHERING = "--textual-command-palette-gather-commands"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return write_workspace(tmp_path, port=9)  # nothing connects: the runner is off


def record_notes(app: OpsConsoleApp) -> list[str]:
    notes: list[str] = []
    app.notify = lambda message, **_: notes.append(message)  # type: ignore[method-assign]
    return notes


# ------------------------------------------------------------------------------------ themes


def test_shipped_themes_load_from_files() -> None:
    errors: list[str] = []
    themes = {t.name: t for t in load_themes(errors=errors)}
    assert errors == []
    assert set(themes) >= SHIPPED
    assert themes["opsconsole-16"].ansi and themes["opsconsole-16"].primary.startswith("ansi_")
    assert themes["opsconsole-light"].dark is False
    assert (themes_dir() / "opsconsole-dark.yaml").exists()


def test_broken_theme_files_are_skipped_with_file_line_and_key(tmp_path: Path) -> None:
    folder = tmp_path / "themes"
    shutil.copytree(themes_dir(), folder)
    (folder / "bad-colour.yaml").write_text("name: bad-colour\nprimary: '#123456'\nerror: notacolour\n")
    (folder / "bad-key.yaml").write_text("name: bad-key\nprimary: '#123456'\ncolour: red\n")
    (folder / "bad-yaml.yaml").write_text("name: [unclosed\n")
    (folder / "unquoted.yaml").write_text("name: unquoted\nprimary: #5f87d7\n")
    (folder / "bad-variable.yaml").write_text(
        "name: bad-variable\nprimary: red\nvariables:\n  footer-key-foreground: nonsense here\n"
    )
    errors: list[str] = []
    names = {t.name for t in load_themes(folder, errors)}
    assert names == SHIPPED
    by_file = {Path(e.split(":")[0]).name: e for e in errors}
    assert set(by_file) == {
        "bad-colour.yaml",
        "bad-key.yaml",
        "bad-yaml.yaml",
        "unquoted.yaml",
        "bad-variable.yaml",
    }
    assert "bad-colour.yaml:3: key 'error': 'notacolour' is not a colour" in by_file["bad-colour.yaml"]
    assert "bad-key.yaml:3: key 'colour': unknown key" in by_file["bad-key.yaml"]
    assert "not valid YAML" in by_file["bad-yaml.yaml"]
    assert (
        "unquoted.yaml:2: key 'primary'" in by_file["unquoted.yaml"] and "quote" in by_file["unquoted.yaml"]
    )
    assert "key 'variables.footer-key-foreground'" in by_file["bad-variable.yaml"]


def test_missing_required_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("name: x\n")
    with pytest.raises(ValueError, match=r"x\.yaml: key 'primary' is required"):
        load_theme_file(path)


@sync
async def test_console_starts_despite_a_broken_theme_file_and_an_unknown_theme(
    ws: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "themes"
    shutil.copytree(themes_dir(), folder)
    (folder / "broken.yaml").write_text("name: broken\nprimary: nope\n")
    app = console(engine_for(ws), themes_dir=folder, theme="solarized-nope")
    notes = record_notes(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == "opsconsole-dark"
        assert any("broken.yaml:2: key 'primary'" in note for note in notes)
        assert any("unknown theme 'solarized-nope'" in n and "opsconsole-light" in n for n in notes)


@sync
async def test_no_color_is_honoured_in_every_theme(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Greyscale for truecolour themes; for the ANSI theme the terminal's default colours (greyscale
    would turn its default-coloured text into black on black)."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = console(engine_for(ws), theme="opsconsole-16")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.no_color
        kinds = {type(f) for f in app.get_line_filters()}
        assert NoColor in kinds and Monochrome not in kinds
        switch_theme(app, "opsconsole-dark")
        await pilot.pause()
        kinds = {type(f) for f in app.get_line_filters()}
        assert Monochrome in kinds and NoColor not in kinds


# ------------------------------------------------------------------------------------ header, key bar


@sync
async def test_an_unchanged_header_or_key_bar_is_not_updated(ws: Path) -> None:
    """Static.update repaints, and so writes the line to the terminal, even when it looks the same;
    the header is re-read on every engine tick and the key bar on every focus change."""
    app = console(engine_for(ws))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "kill: off" in str(app.header.render()))
        await pilot.pause()
        updates: list[str] = []
        for widget in (app.header, app.query_one("#keys")):
            original = widget.update

            def counted(*args, _original=original, _id=widget.id, **kwargs):  # type: ignore[no-untyped-def]
                updates.append(_id)
                return _original(*args, **kwargs)

            widget.update = counted  # type: ignore[method-assign]
        for _ in range(3):
            app._show_status(*app._status)
            app.screen.refresh_bindings()
            await pilot.pause()
        assert updates == []
        app._show_status(app._status[0], "store busy since 14:02:11")  # a change is shown at once
        await pilot.pause()
        assert updates == ["status"] and "store busy" in str(app.header.render())


# ------------------------------------------------------------------------------------ help


async def open_help(app: OpsConsoleApp, pilot) -> HelpScreen:  # type: ignore[no-untyped-def]
    await pilot.press("question_mark")
    await pilot.pause()
    assert isinstance(app.screen, HelpScreen)
    return app.screen


@sync
async def test_help_lists_the_approve_and_kill_keys_on_the_rollouts_pane(ws: Path) -> None:
    app = console(engine_for(ws))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        lines = (await open_help(app, pilot)).lines()
        assert any(line.startswith("Rollouts pane: a Approve") for line in lines)
        assert lines[0].startswith(f"Emergency: {KILL_KEY} KILL")  # first, with its confirmation
        assert any(line.startswith("Global: ? Help") for line in lines)
        for key in ("escape", "q", "question_mark"):
            if not isinstance(app.screen, HelpScreen):
                await open_help(app, pilot)
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(app.screen, HelpScreen), key
        assert app.is_running  # q closed the help, it did not quit


@sync
async def test_help_under_read_only_omits_every_hidden_action(ws: Path) -> None:
    app = console(engine_for(ws, read_only=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        lines = (await open_help(app, pilot)).lines()
        for hidden in ("Approve", "Promote", "Abort", "Rollback", "KILL", "Toggle"):
            assert not any(hidden in line for line in lines), hidden
        assert any(line.startswith("Global: ? Help") for line in lines)


@sync
async def test_help_follows_the_kill_key_from_the_config(ws: Path) -> None:
    text = (ws / "opsconsole.yaml").read_text()
    (ws / "opsconsole.yaml").write_text(text.replace("kill_switch:\n", "kill_switch:\n  key: f9\n"))
    app = console(engine_for(ws))
    async with app.run_test(size=(80, 24)) as pilot:
        lines = (await open_help(app, pilot)).lines()
        assert lines[0].startswith("Emergency: f9 KILL")
        assert not any(KILL_KEY in line for line in lines)


# ------------------------------------------------------------------------------------ palette


async def palette_prompts(app: OpsConsoleApp, pilot, query: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Open the palette with `:`, type `query`, and return the first line of every hit shown."""
    await pilot.press("colon")
    await pilot.pause()
    assert CommandPalette.is_open(app)
    app.screen.query_one(CommandInput).value = query  # one search, not one per keystroke
    for _ in range(100):  # the palette gathers hits in a worker
        await pilot.pause(0.02)
        if not any(w.group == GATHERING and not w.is_finished for w in app.workers):
            break
    results = app.screen.query_one(CommandList)
    return [str(results.get_option_at_index(i).prompt).split("\n")[0] for i in range(results.option_count)]


@sync
async def test_palette_under_read_only_offers_nothing_that_changes_state(ws: Path) -> None:
    app = console(engine_for(ws, read_only=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        names = [c.name for c in console_commands(app)]
        assert "Kill switch" not in names
        assert not any(n.startswith(("Approve", "Abort", "Start plan", "Flags: Toggle")) for n in names)
        assert "Help: keys" in names and "Theme: opsconsole-light" in names
        assert "Kill switch" not in await palette_prompts(app, pilot, "kill")


@sync
async def test_palette_starts_a_plan_then_pauses_it_from_the_rollouts_pane(ws: Path) -> None:
    """Palette entries reach the engine through the console handle: a plan starts, and a pane's
    action runs on what that pane has selected."""
    from opsconsole.tui.screens.reason import ReasonScreen

    app = console(engine_for(ws, "bob"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        commands = {c.name: c for c in console_commands(app)}
        commands["Start plan: fast"].run()  # opens its dialog at once
        await until(pilot, lambda: isinstance(app.screen, ReasonScreen), "the reason dialog")
        await pilot.press("enter")  # the reason is optional when starting
        await until(pilot, lambda: bool(app.engine.rollouts()), "the rollout")
        rid = app.engine.rollouts()[0].id
        await until(pilot, lambda: rid in app.panes["rollouts"].rollouts, "the row")  # type: ignore[attr-defined]

        commands = {c.name: c for c in console_commands(app)}
        await commands["Pause the selected rollout"].run()
        await until(pilot, lambda: isinstance(app.screen, ReasonScreen), "the pause reason")
        app.screen.query_one(Input).value = "palette check"
        await pilot.press("enter")
        await until(pilot, lambda: str(app.engine.rollout(rid).state) == "paused", "the pause")


@sync
async def test_theme_option_then_palette_kill_switch_theme_and_pane(ws: Path) -> None:
    app = console(engine_for(ws), theme="opsconsole-light")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == "opsconsole-light" and app.current_theme.dark is False  # --theme applies

        assert "Kill switch" in await palette_prompts(app, pilot, "kill")
        await pilot.press("escape")
        names = [c.name for c in console_commands(app)]
        for expected in ("Start plan: fast", "Go to Flags"):
            assert expected in names
        # no rollout awaits approval here, so approving is not offered
        assert "Approve the selected rollout's phase" not in names

        assert (await palette_prompts(app, pilot, "16"))[0] == "Theme: opsconsole-16"
        await pilot.press("enter")
        await pilot.pause()
        assert app.theme == "opsconsole-16"

        assert (await palette_prompts(app, pilot, "backups"))[0] == "Go to Backups"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.focused, BackupsPane)


# ------------------------------------------------------------------------------------ empty panes


@sync
async def test_improvements_and_backups_say_what_to_configure(ws: Path) -> None:
    app = console(engine_for(ws))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        pane = app.query_one(ImprovementsPane)
        assert app.focused is pane
        text = str(pane.query_one("#improvements-empty").render())
        assert "no 'improvements:' section" in text and "MCP" in text
        assert "enable_autonomous_improvements" in str(pane.query_one("#improvements-flags").render())

        await pilot.press("5")
        await pilot.pause()
        pane = app.query_one(BackupsPane)
        assert app.focused is pane
        assert "does not take or list backups" in str(pane.query_one("#backups-empty").render())
        manual = str(pane.query_one("#backups-manual").render())
        assert str(ws / "flags" / "production.json") in manual

        await pilot.press("question_mark")  # the console's keys still work from an empty pane
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)


@sync
async def test_improvements_pane_shows_the_kill_switch_pause_until_the_all_clear(ws: Path) -> None:
    """The kill switch writes `improvements.paused`; the pane reads it (the queue itself is not there
    yet, the pause is)."""
    app = console(engine_for(ws))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        pane = app.query_one(ImprovementsPane)
        line = pane.query_one("#improvements-paused")
        await pilot.pause(0.2)
        assert not line.display and not app.engine.improvements_paused().paused

        await asyncio.to_thread(app.engine.kill, "drill")
        await until(pilot, lambda: line.display)
        assert app.engine.improvements_paused().paused
        shown = str(line.render())
        assert shown.startswith("Paused by the kill switch at ") and "UTC" in shown and "all-clear" in shown

        await asyncio.to_thread(app.engine.all_clear, "over")
        await until(pilot, lambda: not line.display)
        assert not app.engine.improvements_paused().paused
