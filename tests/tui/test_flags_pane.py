"""The Flags pane and its dialogs driven by real keys; assertions on engine state and flag files."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from opsconsole.engine.config import load_config
from opsconsole.engine.core import Engine
from opsconsole.engine.model import Actor
from opsconsole.tui.app import OpsConsoleApp
from opsconsole.tui.panes.flags import FlagsPane, FlagTable
from opsconsole.tui.screens.flag_edit import FlagEditScreen
from opsconsole.tui.screens.flag_explain import FlagExplainScreen
from opsconsole.tui.screens.flag_history import FlagHistoryScreen
from tests.tui.conftest import console, screen_text, sync, until

FLAGS = """
flags:
  new_checkout:
    type: percentage
    default: 0
    risk: high
    owner: payments
    description: Share of users on the new checkout
  dark_mode:
    default: false
    risk: low
    owner: web
    description: "Dark theme [bold]BOLD[/bold] \\e[31m red"
  search_v2:
    default: true
    risk: medium
    description: New search backend
  search_v2_ranking:
    default: true
    depends_on: search_v2
    description: Ranking model for search v2
  checkout_copy:
    type: variant
    default: false
    depends_on: new_checkout
    environments: [production]
    variants: {control: 50, short: 25, long: 25}
    kind: experiment
    description: Checkout button text experiment
  old_banner:
    default: true
    environments: [production]
    created: 2024-01-01
    description: Holiday banner
"""

MAIN = """
roles:
  default: viewer
  users: {alice: operator, vera: viewer}
environments:
  staging:
    flags: {kind: file, path: "${WORKSPACE}/flags/staging.json"}
  production:
    production: true
    flags: {kind: file, path: "${WORKSPACE}/flags/production.json"}
flags: flags.yaml
kill_switch: {flags_off: [search_v2], flags_on: []}
"""


def make_engine(tmp_path: Path, user: str = "alice", main: str = MAIN, **kwargs: object) -> Engine:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    (ws / "flags.yaml").write_text(textwrap.dedent(FLAGS))
    (ws / "opsconsole.yaml").write_text(textwrap.dedent(main))
    config = load_config(ws / "opsconsole.yaml", {"WORKSPACE": str(ws)})
    kwargs.setdefault("environ", {})
    return Engine(config, ws, Actor(user, "test"), **kwargs)  # type: ignore[arg-type]


async def open_flags(app: OpsConsoleApp, pilot: Pilot[None]) -> FlagsPane:
    await pilot.press("3")
    pane: FlagsPane = app.panes["flags"]
    for _ in range(50):
        await pilot.pause(0.02)
        if pane.states:
            break
    assert pane.states, "flag states never loaded"
    return pane


async def select(pilot: Pilot[None], pane: FlagsPane, name: str) -> None:
    table = pane.query_one(FlagTable)
    table.move_to(table.keys.index(name))
    await pilot.pause()


def fill(app: OpsConsoleApp, text: str) -> None:
    """Put text in the focused input at once: pilot spends ~80 ms per key, typing is not under test."""
    box = app.focused
    assert isinstance(box, Input), box
    box.value = text


def row_text(pane: FlagsPane, name: str) -> dict[str, str]:
    return {key: text for key, (text, _) in pane._cells(name).items()}


@sync
async def test_lists_flags_with_the_rule_that_decided(tmp_path: Path) -> None:
    # Overrides the staging services run with, as declared; the engine's own environment is not shown.
    declared = MAIN.replace(
        '    flags: {kind: file, path: "${WORKSPACE}/flags/staging.json"}\n',
        '    flags: {kind: file, path: "${WORKSPACE}/flags/staging.json"}\n'
        '    overrides: {DARK_MODE: "true", SEARCH_V2: "off"}\n',
    )
    engine = make_engine(tmp_path, main=declared, environ={"NEW_CHECKOUT": "100"})
    app = console(engine, environment="staging")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_flags(app, pilot)
        assert pane.query_one(FlagTable).keys == [
            "new_checkout",
            "dark_mode",
            "search_v2",
            "search_v2_ranking",
        ]
        dark = row_text(pane, "dark_mode")
        assert (dark["value"], dark["decided"]) == ("true", "env DARK_MODE")
        assert row_text(pane, "new_checkout")["value"] == "0%"
        assert row_text(pane, "new_checkout")["decided"] == "default"
        assert row_text(pane, "new_checkout")["risk"] == "HIGH"
        child = row_text(pane, "search_v2_ranking")
        assert (child["value"], child["decided"]) == ("false", "parent search_v2")
        screen = screen_text(app)
        assert "env DARK_MODE" in screen and "HIGH" in screen
        await pilot.press("slash", *"env")  # the filter sees the decider too
        assert pane.query_one(FlagTable).keys == ["dark_mode", "search_v2"]


@sync
async def test_filter_narrows_and_escape_clears(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    app = console(engine, environment="staging")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_flags(app, pilot)
        table = pane.query_one(FlagTable)
        await pilot.press("slash", "v", "2", "_")
        assert table.keys == ["search_v2_ranking"]
        await pilot.press("backspace", "enter")  # Enter keeps the filter and goes back to the rows
        assert table.keys == ["search_v2", "search_v2_ranking"]
        assert app.focused is table
        assert pane.check_action("clear_filter", ()) is True  # the footer offers Esc while filtering
        await pilot.press("escape")
        assert len(table.keys) == 4 and pane.filter_text == ""
        assert pane.check_action("clear_filter", ()) is False
        await pilot.press("slash")
        fill(app, "share")  # descriptions match too
        await pilot.pause()
        assert table.keys == ["new_checkout"]
        await pilot.press("x")
        assert table.keys == [] and "no flag matches" in screen_text(app)
        await pilot.press("escape")
        assert len(table.keys) == 4 and not pane.query_one("#flags-filter").display


@sync
async def test_toggle_with_reason_stores_and_writes_the_flag_file(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    app = console(engine, environment="staging")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_flags(app, pilot)
        await select(pilot, pane, "dark_mode")
        await pilot.press("t")
        assert isinstance(app.screen, FlagEditScreen)
        assert app.focused is not None and app.focused.id == "reason"
        await pilot.press("enter")  # no reason: refused, nothing changes
        assert "reason is required" in str(app.screen.query_one("#error").render())
        await pilot.press(*"t42", "enter")
        await until(pilot, lambda: not isinstance(app.screen, FlagEditScreen), "the dialog to close")
        assert engine.flag_states("staging")["dark_mode"].value is True
        assert engine.flag_states("production")["dark_mode"].value is False
        doc = json.loads((tmp_path / "ws" / "flags" / "staging.json").read_text())
        assert doc["flags"]["dark_mode"]["enabled"] is True
        await until(pilot, lambda: row_text(pane, "dark_mode")["value"] == "true", "the row to update")
        assert row_text(pane, "dark_mode")["decided"] == "stored"


@sync
async def test_percentage_refuses_bad_input_and_stores_a_good_one(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    app = console(engine, environment="production")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_flags(app, pilot)
        await select(pilot, pane, "new_checkout")
        await pilot.press("percent_sign")
        screen = app.screen
        assert isinstance(screen, FlagEditScreen)
        assert app.focused is not None and app.focused.id == "reason"
        assert "CAREFUL" in str(screen.query_one("#flag-warning").render())  # high risk, production
        await pilot.press("c", "enter")  # Enter moves on to the percentage
        assert app.focused is not None and app.focused.id == "percentage"
        for bad, words in (("150", "more than 100%"), ("abc", "not a percentage")):
            fill(app, bad)
            await pilot.press("enter")
            assert words in str(screen.query_one("#error").render())
            assert isinstance(app.screen, FlagEditScreen)
        await pilot.pause(0.05)
        assert engine.flag_history("production", "new_checkout") == []
        fill(app, "25")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, FlagEditScreen), "the dialog to close")
        assert engine.flag_states("production")["new_checkout"].value == 25
        await until(pilot, lambda: row_text(pane, "new_checkout")["value"] == "25%", "the row to update")


@sync
async def test_read_only_hides_the_keys_and_the_engine_refuses_a_forged_call(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, read_only=True)
    app = console(engine, environment="staging")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_flags(app, pilot)
        await select(pilot, pane, "dark_mode")
        assert pane.check_action("toggle_flag", ()) is False
        assert pane.check_action("set_percentage", ()) is False
        await pilot.press("t")
        assert not isinstance(app.screen, FlagEditScreen)
        pane.action_toggle_flag()  # forged: the action called directly, past the key check
        await pilot.pause()
        assert isinstance(app.screen, FlagEditScreen)
        await pilot.press("s", "enter")
        error = app.screen.query_one("#error")
        await until(pilot, lambda: "read-only" in str(error.render()), "the engine's refusal")
        assert engine.flag_states("staging")["dark_mode"].value is False
        assert engine.flag_history("staging", "dark_mode") == []


@sync
async def test_history_shows_who_when_and_why(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, clock=lambda: 1_700_000_000.0)
    engine.set_flag("staging", "dark_mode", True, "launch [red]day[/red]")
    engine.set_flag("staging", "dark_mode", False, "rollback")
    app = console(engine, environment="staging")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_flags(app, pilot)
        await select(pilot, pane, "dark_mode")
        await pilot.press("h")
        assert isinstance(app.screen, FlagHistoryScreen)
        table: DataTable[Any] = app.screen.query_one("#flag-history-table", DataTable)
        await until(pilot, lambda: table.row_count == 2, "the history rows")
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(2)]
        assert rows[0] == ["2023-11-14 22:13:20", "alice@test", "true → false", "rollback"]
        assert rows[1][2:] == ["default false → true", "launch [red]day[/red]"]  # shown literally
        await pilot.press("escape")
        assert not isinstance(app.screen, FlagHistoryScreen)


@sync
async def test_remote_markup_and_escape_codes_are_shown_literally(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    app = console(engine, environment="staging")
    async with app.run_test(size=(160, 30)) as pilot:
        pane = await open_flags(app, pilot)
        await select(pilot, pane, "dark_mode")
        screen = screen_text(app)
        assert "Dark theme [bold]BOLD[/bold] \\x1b[31m red" in screen  # in the table and the detail line
        assert "\x1b[31m" not in screen


@sync
async def test_kill_switch_shows_in_the_value_column_at_once(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    app = console(engine, environment="staging")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_flags(app, pilot)
        engine.kill("test")  # turns search_v2 off
        await until(pilot, lambda: row_text(pane, "search_v2")["value"] == "false", "the kill switch")
        assert row_text(pane, "search_v2")["decided"] == "kill switch"
        assert row_text(pane, "search_v2_ranking")["decided"] == "parent search_v2"


@sync
async def test_brackets_switch_environment(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.set_flag("production", "new_checkout", 10, "canary")
    app = console(engine, environment="staging")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_flags(app, pilot)
        assert pane.environment == "staging" and row_text(pane, "new_checkout")["value"] == "0%"
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: row_text(pane, "new_checkout")["value"] == "10%", "production's values")
        assert pane.environment == "production"
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: pane.environment == "staging" and pane.states, "staging again")


# ---------------------------------------------------------------------------------------- issue 4

MARCH = 1_709_251_200.0
"""2024-03-01 00:00 UTC: old_banner (created 2024-01-01, a release flag) is 60 days old, stale."""


class Clock:
    def __init__(self, now: float = MARCH) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@sync
async def test_lists_the_environments_flags_variants_on_off_and_stale_ones_marked(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, clock=Clock())
    app = console(engine, environment="staging")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_flags(app, pilot)
        assert "checkout_copy" not in pane.query_one(FlagTable).keys  # production only
        assert "4 of 4" in screen_text(app)
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: pane.environment == "production" and pane.states, "production")
        table = pane.query_one(FlagTable)
        assert table.keys[-2:] == ["checkout_copy", "old_banner"]
        variant = row_text(pane, "checkout_copy")
        assert (variant["value"], variant["type"], variant["decided"]) == (
            "off",
            "var",
            "parent new_checkout",
        )
        await select(pilot, pane, "checkout_copy")
        detail = str(pane.query_one("#flag-detail").render())  # cut at 80 columns on screen
        assert "off: off because its parent new_checkout is off · var" in detail
        assert "variants control 50 · short 25 · long 25" in detail
        # A variant flag is toggled through the same confirmation as a boolean: production says CAREFUL.
        await pilot.press("t")
        assert isinstance(app.screen, FlagEditScreen)
        assert "CAREFUL" in str(app.screen.query_one("#flag-warning").render())
        fill(app, "experiment starts")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, FlagEditScreen), "the dialog to close")
        assert engine.flag_history("production", "checkout_copy")[-1]["new"] is True
        await select(pilot, pane, "new_checkout")
        await pilot.press("t")  # a percentage has nothing to toggle to: `t` asks for the new value
        assert isinstance(app.screen, FlagEditScreen) and app.screen.query("#percentage")
        await pilot.press("escape")
        # Stale: old_banner, a release flag created 2024-01-01, is 60 days old on 2024-03-01.
        await until(pilot, lambda: "old_banner" in pane.stale, "the stale flags")
        assert pane._cells("old_banner")["mark"] == ("~", "stale")
        assert "mark" not in pane._cells("dark_mode")
        await select(pilot, pane, "old_banner")
        screen = screen_text(app)
        assert "~1 stale" in screen
        assert "stale: release flag, 60 days old, lifetime 40 days" in screen
        await pilot.press("slash")
        fill(app, "stale")
        await pilot.pause()
        assert pane.query_one(FlagTable).keys == ["old_banner"]


@sync
async def test_group_key_orders_children_under_their_parent_and_filter_still_works(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    app = console(engine, environment="production")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_flags(app, pilot)
        table = pane.query_one(FlagTable)
        flat = ["new_checkout", "dark_mode", "search_v2", "search_v2_ranking", "checkout_copy", "old_banner"]
        assert table.keys == flat
        await pilot.press("g")
        assert table.keys == [
            "new_checkout",
            "checkout_copy",
            "dark_mode",
            "search_v2",
            "search_v2_ranking",
            "old_banner",
        ]
        assert row_text(pane, "checkout_copy")["name"] == "  └ checkout_copy"
        assert row_text(pane, "new_checkout")["name"] == "new_checkout"
        assert "  └ checkout_copy" in screen_text(app)
        await pilot.press("slash")
        fill(app, "check")
        await pilot.pause()
        assert table.keys == ["new_checkout", "checkout_copy"]  # tree order, filtered
        await pilot.press("enter", "g")
        assert table.keys == ["new_checkout", "checkout_copy"]  # file order: the same two here
        assert row_text(pane, "checkout_copy")["name"] == "checkout_copy"
        await pilot.press("escape")
        assert table.keys == flat


async def open_explain(app: OpsConsoleApp, pilot: Pilot[None], flag: str) -> FlagExplainScreen:
    pane = await open_flags(app, pilot)
    await select(pilot, pane, flag)
    await pilot.press("x")
    assert isinstance(app.screen, FlagExplainScreen)
    return app.screen


@sync
async def test_explain_shows_both_buckets_says_when_they_differ_and_shows_errors(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.set_flag("production", "new_checkout", 25, "canary")
    app = console(engine, environment="production")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_explain(app, pilot, "new_checkout")
        assert app.focused is not None and app.focused.id == "explain-user"
        fill(app, "user-2")  # Unleash bucket 25 (in a 25% rollout), flagd fractional bucket 50 (out)
        await pilot.press("enter")
        result = screen.query_one("#explain-result")
        await until(pilot, lambda: "user-2" in str(result.render()), "the explanation")
        text = screen_text(app)
        assert "console (Unleash)   true · rule stored · bucket 25 · threshold 25%" in text
        assert "stored value 25%; bucket 25 <= 25" in text
        assert "flagd (fractional)  false · rule stored · bucket 50 · threshold 25%" in text
        assert "differ: the console's consumers get true, a flagd consumer gets false" in text
        await pilot.press("tab")
        fill(app, "[red]acme")  # a tenant is shown as typed, never as markup
        await pilot.press("enter")
        await until(pilot, lambda: "tenant [red]acme" in str(result.render()), "the tenant")
        screen.environment = "nowhere"  # as if the environment left the configuration meanwhile
        await pilot.press("enter")
        error = screen.query_one("#error")
        await until(pilot, lambda: "no environment 'nowhere'" in str(error.render()), "the error")
        assert "cannot explain new_checkout" in str(error.render())
        await pilot.press("escape")
        assert not isinstance(app.screen, FlagExplainScreen)
