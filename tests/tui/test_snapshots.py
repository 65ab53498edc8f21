"""Snapshots of every pane and modal of the console, at 80x24 and 160x48.

The world is snapshot_fixtures.py: a seeded workspace, one fixed clock, a recorded minute of metrics.
Each test says in its docstring what the picture must show; review a changed picture against that
before accepting it (`.venv/bin/pytest tests/tui/test_snapshots.py --snapshot-update`).

Every test reaches its picture in `run_before` and waits there until what the docstring promises is on
screen and no worker is left running: `snap_compare`'s own key presses are followed by a few event-loop
turns only, which is not enough for the console's thread workers (store reads) to land. Input cursors
are made steady so a blink cannot land in a picture.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from opsconsole.engine.session import Session
from opsconsole.tui.app import OpsConsoleApp
from opsconsole.tui.screens.alarm_ack import AlarmAckScreen
from opsconsole.tui.screens.approve import ApproveScreen
from opsconsole.tui.screens.checklist import ChecklistScreen
from opsconsole.tui.screens.detail import RolloutDetailScreen
from opsconsole.tui.screens.flag_edit import FlagEditScreen
from opsconsole.tui.screens.flag_explain import FlagExplainScreen
from opsconsole.tui.screens.flag_history import FlagHistoryScreen
from opsconsole.tui.screens.flag_schedules import FlagScheduleNewScreen, FlagSchedulesScreen
from opsconsole.tui.screens.help import HelpScreen
from opsconsole.tui.screens.killswitch import KillSwitchScreen
from opsconsole.tui.screens.reason import ReasonScreen
from opsconsole.tui.screens.start import StartPlanScreen
from tests.tui.conftest import console, screen_text
from tests.tui.snapshot_fixtures import CART, CART_DONE, PAY, SEARCH, World, build_world, record_scrapes

REPO = Path(__file__).resolve().parents[2]
SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
KILL = "ctrl+backslash"

Snap = Callable[..., bool]
RunBefore = Callable[[Pilot[Any]], Awaitable[None]]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    async def no_poll(self: Session) -> None:
        """The fixture recorded the scrapes; nothing may overwrite them with a refused connection."""

    monkeypatch.setattr(Session, "_poll", no_poll)
    monkeypatch.delenv("NO_COLOR", raising=False)  # Textual reads it when the app is created
    monkeypatch.chdir(tmp_path)  # the workspace is ./ws: printed paths are the same on every run
    w = build_world()
    yield w
    w.close()


def world_console(world: World, user: str = "alice", *, read_only: bool = False) -> OpsConsoleApp:
    """The console on the recorded world, with the shipped themes."""
    app = console(world.engine(user, read_only=read_only), themes_dir=REPO / "themes")
    record_scrapes(app.session, world.clock)
    return app


class Do:
    """A step of `steps` that acts on the app instead of pressing a key or waiting."""

    def __init__(self, act: Callable[[Any], object]) -> None:
        self.act = act


Step = str | Do | Callable[[Any], bool]
"""A key to press, an action, or a condition on the app to wait for."""


def steps(
    *keys: Step,
    shows: tuple[str, ...] = (),
    screen: type | None = None,
    ready: Callable[[Any], bool] | None = None,
) -> RunBefore:
    """Once the console has loaded, take `keys` in order; then wait until the screen is a `screen`,
    shows every text in `shows`, `ready(app)` holds and no worker runs."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        await settle(
            pilot, lambda: CART in screen_text(app) and "engine: attached" in screen_text(app), "start"
        )
        for key in keys:
            if isinstance(key, str):
                await pilot.press(key)
            elif isinstance(key, Do):
                key.act(app)
            else:
                await settle(pilot, lambda key=key: key(app), f"{key.__name__} before the next key")

        def done() -> bool:
            if screen is not None and not isinstance(app.screen, screen):
                return False
            text = screen_text(app)
            return all(s in text for s in shows) and (ready is None or ready(app))

        await settle(pilot, done, f"after {keys}: {screen} showing {shows}")

    return run_before


async def settle(pilot: Pilot[Any], done: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    """Wait until `done()` and no worker is left; then make input cursors steady (a blink must not land
    in a picture)."""
    app = pilot.app
    for _ in range(int(seconds / 0.02)):
        await pilot.pause(0.02)
        if done() and all(w.is_finished for w in app.workers):
            for box in app.screen.query(Input):
                box.cursor_blink = False  # the cursor stays drawn
            await pilot.pause()
            return
    raise AssertionError(f"snapshot precondition not reached: {what}\n{screen_text(app)}")


def flags_loaded(app: Any) -> bool:
    return bool(app.panes["flags"].states)


def alarms_loaded(app: Any) -> bool:
    return app.panes["metrics"].selected() is not None


def kill_screen(app: Any) -> bool:
    return isinstance(app.screen, KillSwitchScreen)


def kill_landed(app: Any) -> bool:
    rollouts = app.panes["rollouts"].rollouts
    return not kill_screen(app) and all(str(rollouts[rid].state) == "aborted" for rid in (CART, SEARCH))


def framed(app: Any) -> bool:
    return bool(app.screen_stack[0].has_class("-killed"))


# ---------------------------------------------------------------------------------------- panes


@SIZES
def test_rollouts_pane(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """Rollouts pane, the header on production (PRODUCTION marked), engine attached, "kill: off" with
    the kill key, alice (approver). Four rows newest first: the cart canary progressing at 25%
    (cursor), search awaiting_approval, pay rolled_back with "0% (was 10%)" (its canary flag is back
    at 0), the earlier cart completed; no horizontal scrollbar, long cells end in "…". Under the table
    the selected rollout's line (cart · canary · 25% · started by bob) and its why: guard error_rate
    failing, 1 of 3 checks to rollback (at 80 columns the why is cut after two lines); the verdicts:
    error_rate fail 2.2% against <= 1.0%, latency_ms pass 181 ms, alarms pass. The footer lists the
    rollout keys (Approve, Promote, Pause, ...; at 160x48 also Help, Quit and KILL)."""
    app = world_console(world)
    assert snap_compare(app, terminal_size=size, run_before=steps(shows=("1 of 3 checks", "2.2%")))


@SIZES
def test_metrics_and_alarms_pane(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """Metrics & Alarms pane ("2"). Metrics: production first (error_rate ▲ 2.2% in red against
    <= 1.0%, its sparkline low then high for the last 20 s; latency_ms about 180 ms; HighErrorRate,
    QueueBacklog, LowCacheHit), then staging. Alarms: 2 firing, 1 pending, 1 ok; HighErrorRate FIRING
    first (cursor, 2s ago), QueueBacklog FIRING acked by bob, StagingLatency pending, LowCacheHit ok.
    Below: the selected alarm's reason and "not acknowledged · k acknowledges"."""
    app = world_console(world)
    assert snap_compare(
        app,
        terminal_size=size,
        run_before=steps(
            "2",
            shows=("2.2%", "HighErrorRate", "not acknowledged"),
            ready=lambda app: bool(app.panes["metrics"].acks),
        ),
    )


@SIZES
def test_flags_pane(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """Flags pane ("3") on production: "PRODUCTION", "12 of 12" (debug_toolbar, staging only, is not
    listed), "~1 stale", then the dim key hints "g tree  [ ] env  h history" (cut after "h histo" at 80x24). The cursor on
    new_cart: 25%, pct, stored, HIGH. Other rows show every decider: default, stored (dark_mode_ui
    false after alice's change), parent phase_4_deployment (llm_integration_enabled), env
    OTEL_ENABLED (otel_enabled false); phase_4_deployment has the stale mark "~" before its name;
    checkout_copy (a variant flag) reads "on" of type "var". At 160x48 also the Owner and Description
    columns. Under the table: "new_cart · 25%: the stored value · pct · risk high · owner payments"
    and its description; the footer: KILL, Toggle, Explain, Schedules, Filter, Help, Quit."""
    app = world_console(world)
    assert snap_compare(
        app,
        terminal_size=size,
        run_before=steps("3", shows=("new_cart", "25%"), ready=flags_loaded),
    )


@SIZES
def test_improvements_pane(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """Improvements pane ("4") of a configuration without an `improvements:` section: "Improvement
    queue: not configured", what the queue holds and what to configure, and the flags that govern
    the agent here: enable_self_building, enable_autonomous_improvements."""
    app = world_console(world)
    assert snap_compare(app, terminal_size=size, run_before=steps("4", shows=("Improvement queue",)))


@SIZES
def test_backups_pane(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """Backups pane ("5"): not configured yet, and what to copy by hand meanwhile, from this
    configuration: ws/opsconsole.yaml, the state database ws/state.db (with the sqlite3 .backup hint),
    the flag files ws/flags/staging.json and ws/flags/production.json."""
    app = world_console(world)
    assert snap_compare(app, terminal_size=size, run_before=steps("5", shows=("Backups: not configured",)))


@SIZES
def test_read_only_console(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """A read-only console (--read-only) on the same rollouts: the header says READ-ONLY, the footer
    has no action key at all (no Approve, Promote, Pause, Resume, Abort, Rollback, New, Checklist,
    KILL): only Help and Quit."""
    app = world_console(world, read_only=True)
    assert snap_compare(app, terminal_size=size, run_before=steps(shows=("READ-ONLY", "1 of 3 checks")))


# ---------------------------------------------------------------------------------------- rollout modals


@SIZES
def test_approve_modal(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """The approval modal ("a" on the search rollout, which awaits approval): title "Approve
    search-... : phase staging"; started by bob, approved so far: root, needs 2 approver(s), you are
    alice (approver); the evidence: soak pass (10m1s of 10m), latency_ms pass 142 ms <= 300 ms; the
    reason input focused (cursor drawn), the admin override checkbox, "Enter approves · Esc cancels"."""
    app = world_console(world)
    assert snap_compare(
        app,
        terminal_size=size,
        run_before=steps(
            "down", "a", screen=ApproveScreen, shows=(f"Approve {SEARCH}", "approved so far: root")
        ),
    )


@SIZES
def test_reason_modal_for_pause(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """The reason modal of a command ("z" on the cart canary): "Pause cart-...", an empty reason input
    with its cursor, "Enter confirms · Esc cancels", in the normal (not red) frame."""
    app = world_console(world)
    assert snap_compare(
        app, terminal_size=size, run_before=steps("z", screen=ReasonScreen, shows=(f"Pause {CART}",))
    )


@SIZES
def test_reason_modal_for_rollback_is_dangerous(
    world: World, snap_compare: Snap, size: tuple[int, int]
) -> None:
    """The reason modal of a dangerous command ("b" on the cart canary): "Roll back cart-..." in the
    red (dangerous) frame, focus in the reason input, never on a button."""
    app = world_console(world)
    assert snap_compare(
        app, terminal_size=size, run_before=steps("b", screen=ReasonScreen, shows=(f"Roll back {CART}",))
    )


@SIZES
def test_start_plan_modal(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """The start-a-plan modal ("n"): the three configured plans with their phases (cart: staging,
    canary; pay: canary; search: staging, production), the optional reason input, the keys line."""
    app = world_console(world)
    assert snap_compare(
        app, terminal_size=size, run_before=steps("n", screen=StartPlanScreen, shows=("Start a plan",))
    )


@SIZES
def test_checklist_modal_without_items(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """The checklist modal ("c" on the cart canary): "Checklist of cart-..., phase canary" and the
    phase has no checklist items."""
    app = world_console(world)
    assert snap_compare(
        app, terminal_size=size, run_before=steps("c", screen=ChecklistScreen, shows=("no checklist items",))
    )


@SIZES
def test_rollout_detail(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """Rollout detail (Enter on the completed cart rollout, the last row): "Rollout cart-...-7c1e";
    cart · completed · started by bob at 2023-11-14T22:13:20; both phases and their steps; the timeline
    in order with UTC times, actors (bob@local, engine@runner, alice@local) and reasons: start, staging
    entered, awaiting approval, alice's approval, each canary step 0 -> 5 -> 25 -> 50 -> 100, completed."""
    app = world_console(world)
    assert snap_compare(
        app,
        terminal_size=size,
        run_before=steps(
            "down",
            "down",
            "down",
            "enter",
            screen=RolloutDetailScreen,
            shows=(f"Rollout {CART_DONE}", "staging soak clean"),
        ),
    )


# ---------------------------------------------------------------------------------------- kill switch


@SIZES
def test_kill_switch_modal(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """The kill switch modal (ctrl+backslash): "PULL THE KILL SWITCH?" in the red frame, what it does
    (flags to safe values, active rollouts aborted, improvements paused), the optional reason input,
    "ctrl+backslash again or Enter pulls it · Esc cancels"."""
    app = world_console(world)
    assert snap_compare(
        app,
        terminal_size=size,
        run_before=steps(KILL, screen=KillSwitchScreen, shows=("PULL THE KILL SWITCH",)),
    )


@SIZES
def test_kill_switch_engaged(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """The console after the kill key was pressed twice: the whole screen framed in red, the header
    "KILL SWITCH ENGAGED by alice: kill switch pulled from the console", the two active rollouts (cart,
    search) now aborted with the kill switch as their why, pay and the old cart unchanged; a toast
    "KILL SWITCH ENGAGED: 2 rollouts aborted, 2 flag files written"."""
    app = world_console(world)
    assert snap_compare(
        app,
        terminal_size=size,
        run_before=steps(
            KILL,
            kill_screen,
            KILL,
            kill_landed,
            shows=("KILL SWITCH ENGAGED by alice", "KILL SWITCH ENGAGED: 2 rollouts"),
            ready=framed,
        ),
    )


@SIZES
def test_all_clear_modal(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """The kill key again once the switch is engaged: "KILL SWITCH IS ENGAGED", the all-clear needs an
    approver and a reason, the required reason input, "Enter gives all-clear · Esc cancels"."""
    app = world_console(world)
    assert snap_compare(
        app,
        terminal_size=size,
        run_before=steps(
            KILL,
            kill_screen,
            KILL,
            kill_landed,
            framed,
            KILL,
            screen=KillSwitchScreen,
            shows=("KILL SWITCH IS ENGAGED",),
        ),
    )


# ---------------------------------------------------------------------------------------- other modals


@SIZES
def test_help_screen(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """Help ("?" on the Rollouts pane), generated from the bindings: the kill key first (^\\ KILL,
    what it does and "confirm with the same key again or Enter; Esc cancels"), then the Rollouts
    pane's keys (a Approve with its explanation, p Promote, z Pause, r Resume, x Abort, b Rollback, n New,
    c Checklist, enter Detail), then the global keys (^q Quit, 1-5 the panes, ? Help, : and ^p
    Commands, q Quit, ...); at 160x48 also the navigation keys and the next pane's heading."""
    app = world_console(world)
    assert snap_compare(app, terminal_size=size, run_before=steps("?", screen=HelpScreen, shows=("Keys",)))


@SIZES
def test_alarm_ack_modal(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """The alarm acknowledgement modal ("k" on the Metrics pane, HighErrorRate selected): the alarm's
    evidence (production, critical, firing, its value 0.022 against the rule) and the reason input."""
    app = world_console(world)
    assert snap_compare(
        app,
        terminal_size=size,
        run_before=steps(
            "2", alarms_loaded, "k", screen=AlarmAckScreen, shows=("Acknowledge alarm HighErrorRate",)
        ),
    )


@SIZES
def test_flag_edit_modal(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """The flag edit modal ("3", then "e" on new_cart): "Set new_cart in production" in the red frame,
    "now 25%: the stored value · percentage · risk high · owner payments", the CAREFUL warning (a
    HIGH-RISK flag in the PRODUCTION environment), the reason input focused (cursor drawn), the
    percentage input holding 25, "Enter: next field, then confirm · Esc cancels"."""
    app = world_console(world)
    assert snap_compare(
        app,
        terminal_size=size,
        run_before=steps(
            "3", flags_loaded, "e", screen=FlagEditScreen, shows=("Set new_cart in production", "CAREFUL")
        ),
    )


@SIZES
def test_flag_history_modal(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """The flag history modal ("3", then "h" on new_cart): "History of new_cart in production", "now
    25%: the stored value"; newest first, with UTC times: engine@runner 5% -> 25% and 0% -> 5% for the
    current cart rollout, alice@local 100% -> 0% when she approved its staging phase, then the earlier
    rollout's steps down to default 0% -> 0%."""
    app = world_console(world)
    assert snap_compare(
        app,
        terminal_size=size,
        run_before=steps(
            "3",
            flags_loaded,
            "h",
            screen=FlagHistoryScreen,
            shows=("History of new_cart in production", "5% → 25%"),
        ),
    )


@SIZES
def test_flags_pane_grouped_by_parent(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """Flags pane ("3") after "g", cursor moved to phase_4_deployment: children right under their
    parent, indented with "└": phase_4_deployment (stale "~"), then "  └ llm_integration_enabled",
    then otel_enabled; the title hint says "g flat". The detail line: "phase_4_deployment · false: the default value ·
    bool · risk high", then "stale: release flag, 75 days old, lifetime 40 days · Production
    deployment flag (master rollout flag)"."""
    app = world_console(world)

    def on_parent(app: Any) -> None:
        table = app.panes["flags"].table
        table.move_to(table.keys.index("phase_4_deployment"))

    assert snap_compare(
        app,
        terminal_size=size,
        run_before=steps(
            "3", flags_loaded, "g", Do(on_parent), shows=("└ llm_integration_enabled", "stale: release flag")
        ),
    )


@SIZES
def test_flag_explain_modal(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """The explain modal ("3", "x" on new_cart, user "user-3", tenant "acme", Enter): "Explain new_cart
    in production for a user", "percentage · risk high · owner payments"; the three inputs; "for
    user-3 (tenant acme)", "now 25%: the stored value"; "console (Unleash)   true · rule stored ·
    bucket 25 · threshold 25%" over "stored value 25%; bucket 25 <= 25"; "flagd (fractional)  false ·
    rule stored · bucket 43 · threshold 25%" over "stored value 25%; fractional bucket 43 >= 25"; the
    bold "differ:" line saying the console's consumers get true and a flagd consumer gets false."""
    app = world_console(world)

    def type_in(field: str, text: str) -> Do:
        return Do(lambda app: setattr(app.screen.query_one(f"#explain-{field}", Input), "value", text))

    assert snap_compare(
        app,
        terminal_size=size,
        run_before=steps(
            "3",
            flags_loaded,
            "x",
            type_in("user", "user-3"),
            type_in("tenant", "acme"),
            "enter",
            screen=FlagExplainScreen,
            shows=("for user-3", "differ:"),
        ),
    )


@SIZES
def test_flag_schedules_modal(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """The schedules modal ("3", then "s"): "Scheduled flag changes in production"; two rows, the next
    step first: "#2 new_pay 0% 0:10:00 1/5 alice retry gateway v2 slowly after the fix" and "#1
    dark_mode_ui true 0:45:00 1/1 bob contrast fix shipped; ..." (staging's schedule #3 is not
    listed); the Reason column is cut at the screen's edge (no horizontal scrollbar). Under the table,
    the selected #2 in three lines: "#2 new_pay: 0% → 12% → 25% → 37% → 50%", "next: step 1 of 5, 0%
    at 2023-11-15 00:23:20 UTC", "by alice@local at 2023-11-15 00:08:20 UTC: retry gateway v2 slowly
    after the fix"; keys "n new schedule · c cancel the selected one · Esc back"."""
    app = world_console(world)
    assert snap_compare(
        app,
        terminal_size=size,
        run_before=steps(
            "3",
            flags_loaded,
            "s",
            screen=FlagSchedulesScreen,
            shows=("Scheduled flag changes in production", "retry gateway v2", "by alice@local"),
        ),
    )


@SIZES
def test_flag_schedule_new_modal(world: World, snap_compare: Snap, size: tuple[int, int]) -> None:
    """The new-schedule modal ("3", "s", "n") in the red frame of production: "Schedule a flag change
    in production (PRODUCTION)", the examples of what to type, the flag input holding new_cart (the
    flag under the pane's cursor), the plan input focused (cursor drawn), the reason input, "Enter:
    next field, then schedule · Esc cancels"."""
    app = world_console(world)
    assert snap_compare(
        app,
        terminal_size=size,
        run_before=steps(
            "3", flags_loaded, "s", "n", screen=FlagScheduleNewScreen, shows=("Schedule a flag change",)
        ),
    )


def test_the_snapshot_world_is_what_the_docstrings_say(world: World) -> None:
    """The seeded story the pictures rely on, checked on the engine rather than on pixels."""
    engine = world.engine()
    states = {r.id: str(r.state) for r in engine.rollouts()}
    assert states == {
        CART: "progressing",
        SEARCH: "awaiting_approval",
        PAY: "rolled_back",
        CART_DONE: "completed",
    }
    assert [r.id for r in engine.rollouts()] == [CART, SEARCH, PAY, CART_DONE]
    flags = engine.flag_states("production")
    assert flags["new_cart"].value == 25
    assert (flags["otel_enabled"].decided_by, flags["llm_integration_enabled"].decided_by) == (
        "env",
        "parent",
    )
    assert flags["checkout_copy"].type == "variant" and "debug_toolbar" not in flags
    assert [a.name for a in engine.stale_flags("production")] == ["phase_4_deployment"]
    pending = engine.flag_schedules("production")
    assert [(s.flag, s.steps[s.next_index].at - world.clock.now) for s in pending] == [
        ("dark_mode_ui", 2700.0),
        ("new_pay", 600.0),
    ]
