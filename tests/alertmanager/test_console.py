"""The Metrics & Alarms pane on the session's real Alertmanager, driven by real keys: its alerts in the
one alarm list with their source, remote text shown literally, silences made and expired from the
pane (`s`, `u`) and read-only hiding both. The console polls Alertmanager itself (client mode, 1 s)."""

from __future__ import annotations

from pathlib import Path

from opsconsole.tui.screens.alarm_silence import SilenceScreen, UnsilenceScreen
from tests.alertmanager.conftest import TOKEN, Alertmanager, alert, engine_for, write_workspace
from tests.tui.conftest import console, screen_text, sync, until

EVIL_NAME = "OpsEvil[bold]\x1b[31m"
EVIL_NAME_SHOWN = "OpsEvil[bold]\\x1b[31m"


def selected_name(app: object) -> str | None:
    pane = app.panes["metrics"]  # type: ignore[attr-defined]
    alarm = pane.selected()
    return None if alarm is None else str(alarm.name)


@sync
async def test_alerts_show_with_their_source_and_silence_and_unsilence_from_the_pane(
    alertmanager: Alertmanager, test_id: str, tmp_path: Path, token: str
) -> None:
    alertmanager.post_alerts(
        [
            alert(
                test_id, "OpsCheckoutErrors", {"summary": "5xx at 4%"}, severity="high", service="checkout"
            ),
            alert(test_id, "OpsDiskLow", {"summary": "disk at 91%"}, severity="info"),
        ]
    )
    ws = write_workspace(tmp_path, alertmanager.url, test_id)
    app = console(engine_for(ws, "bob"))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: selected_name(app) == "OpsCheckoutErrors", "the alerts", seconds=10)
        text = screen_text(app)
        assert "FIRING" in text and "OpsDiskLow" in text
        assert "Src" in text and " am " in text  # each alarm says where it comes from
        assert "P1" in text and "P3" in text
        assert "2 firing" in text
        assert "5xx at 4%" in text and "service=checkout" in text and "s silences" in text
        assert TOKEN not in text

        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SilenceScreen), "the silence dialog")
        assert "Silence alert OpsCheckoutErrors" in screen_text(app)
        await pilot.press("enter")  # no reason: refused on the screen, nothing sent
        await pilot.pause()
        assert isinstance(app.screen, SilenceScreen) and alertmanager.silences(test_id) == []
        await pilot.press(*"known issue", "shift+tab", "ctrl+u", *"20m", "enter")
        await until(pilot, lambda: not isinstance(app.screen, SilenceScreen), "the silence to be made")
        (made,) = alertmanager.silences(test_id)
        assert made["comment"] == "known issue" and made["createdBy"] == "bob"
        matchers = {m["name"]: m["value"] for m in made["matchers"]}
        assert matchers == {
            "alertname": "OpsCheckoutErrors",
            "service": "checkout",
            "severity": "high",
            "test": test_id,
        }
        assert [e.action for e in app.engine.audit_events()].count("alarm.silence") == 1

        def state_of(name: str) -> str:
            alarms = app.panes["metrics"].alarms  # type: ignore[attr-defined]
            return next((a.state for a in alarms.values() if a.name == name), "")

        await until(
            pilot, lambda: state_of("OpsCheckoutErrors") == "silenced", "silenced in the pane", seconds=10
        )
        await until(pilot, lambda: "1 silenced" in screen_text(app), "the summary", seconds=5)

        # Select the silenced alert (it sorts after the firing one) and expire its silence.
        await until(pilot, lambda: selected_name(app) is not None)
        while selected_name(app) != "OpsCheckoutErrors":
            await pilot.press("down")
        await until(pilot, lambda: "u expires its silence" in screen_text(app))
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, UnsilenceScreen), "the unsilence dialog")
        await pilot.press(*"fixed", "enter")
        await until(pilot, lambda: not isinstance(app.screen, UnsilenceScreen), "the silence to expire")
        assert alertmanager.silences(test_id)[0]["status"]["state"] == "expired"
        await until(pilot, lambda: state_of("OpsCheckoutErrors") == "firing", "firing again", seconds=10)
        assert [e.action for e in app.engine.audit_events()].count("alarm.unsilence") == 1


@sync
async def test_remote_text_is_shown_literally_and_read_only_hides_silencing(
    alertmanager: Alertmanager, test_id: str, tmp_path: Path, token: str
) -> None:
    alertmanager.post_alerts(
        [
            alert(
                test_id,
                EVIL_NAME,
                {"summary": "[red]boom[/red] \x1b]0;pwned\x07"},
                severity="critical",
                owner="[link=http://x]me[/link]",
            )
        ]
    )
    ws = write_workspace(tmp_path, alertmanager.url, test_id)
    app = console(engine_for(ws, "bob", read_only=True))
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: selected_name(app) == EVIL_NAME, "the alert", seconds=10)
        text = screen_text(app)
        assert "\x1b" not in text and "\x07" not in text
        assert EVIL_NAME_SHOWN in text
        assert "[red]boom[/red]" in text and "owner=[link=http://x]me[/link]" in text
        assert "s" not in app.screen.active_bindings and "u" not in app.screen.active_bindings
        assert "s silences" not in text
        await pilot.press("s")
        await pilot.pause()
        assert not isinstance(app.screen, SilenceScreen)
        assert alertmanager.silences(test_id) == []


@sync
async def test_an_unreachable_alertmanager_is_shown_as_unknown_with_its_reason(
    tmp_path: Path, token: str
) -> None:
    from tests.alertmanager.conftest import free_port

    ws = write_workspace(tmp_path, f"http://127.0.0.1:{free_port()}", "down")
    app = console(engine_for(ws, "bob"))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: selected_name(app) == "alertmanager", "the source's row", seconds=10)
        text = screen_text(app)
        assert "unknown" in text and "ConnectError" in text
        assert TOKEN not in text


@sync
async def test_acceptance_a_firing_alert_blocks_the_phase_and_silencing_it_from_the_console_unblocks_it(
    alertmanager: Alertmanager, test_id: str, tmp_path: Path, token: str
) -> None:
    from opsconsole.engine.model import RolloutState
    from opsconsole.tui.app import OpsConsoleApp

    alertmanager.post(test_id, "OpsCheckoutErrors", severity="high")
    ws = write_workspace(tmp_path, alertmanager.url, test_id)
    engine = engine_for(ws, "bob")
    rid = engine.start_rollout("guarded", "acceptance").id
    app = OpsConsoleApp(engine, run_engine=True)  # the console's own runner ticks the rollout
    app.animation_level = "none"
    async with app.run_test(size=(120, 30)) as pilot:
        # The canary reaches 100% in about 2 s, then its `alarms` gate holds the phase.
        await until(pilot, lambda: engine.rollout(rid).step_index == 2, "the last step", seconds=15)
        await pilot.pause(2.0)
        held = engine.rollout(rid)
        assert held.state is RolloutState.PROGRESSING
        (_, verdict) = engine.verdict_history(rid)[-1]
        assert verdict.status == "fail" and "OpsCheckoutErrors" in verdict.reason

        await pilot.press("2")
        await until(pilot, lambda: selected_name(app) == "OpsCheckoutErrors", "the alert", seconds=10)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SilenceScreen), "the silence dialog")
        await pilot.press(*"known, fix rolling", "enter")
        await until(pilot, lambda: not isinstance(app.screen, SilenceScreen), "the silence to be made")
        await until(
            pilot,
            lambda: engine.rollout(rid).state is RolloutState.COMPLETED,
            "the phase to complete",
            seconds=15,
        )
