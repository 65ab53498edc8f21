"""Snapshots of the Metrics & Alarms pane fed by the session's real Alertmanager, and of the silence
modal, at 80x24 and 120x30. The engine's clock is fixed and the alerts started at fixed times, so every
"since" is the same on each run; the alerts carry a label of their own, so no other test's alerts show.
Review a changed picture against the docstring before accepting it (`--snapshot-update`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from opsconsole.tui.screens.alarm_silence import SilenceScreen
from tests.alertmanager.conftest import Alertmanager, engine_for, write_workspace
from tests.integration.conftest import REPO
from tests.tui.conftest import console, screen_text

T0 = 1_790_000_000.0
SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 30)], ids=["80x24", "120x30"])
LABEL = "snapshots"


def _alert(name: str, started: float, severity: str, summary: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "test": LABEL, "severity": severity, **labels},
        "annotations": {"summary": summary},
        "startsAt": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(),
        "endsAt": (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).isoformat(),
    }


@pytest.fixture
def app(alertmanager: Alertmanager, tmp_path: Path, token: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("NO_COLOR", raising=False)
    alertmanager.post_alerts(
        [
            _alert("OpsCheckoutErrors", T0 - 754, "high", "5xx at 4.1% on checkout", service="checkout"),
            _alert("OpsDatacenterDown", T0 - 65, "critical", "dc-2 unreachable"),
            _alert("OpsHostDown", T0 - 60, "warning", "host-7 down"),
        ]
    )
    ws = write_workspace(tmp_path, alertmanager.url, LABEL)
    return console(engine_for(ws, "bob", clock=lambda: T0), themes_dir=REPO / "themes")


def until_shown(*texts: str, screen: type | None = None) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        await pilot.press("2")
        for _ in range(500):
            await pilot.pause(0.02)
            if app.panes["metrics"].selected() is not None and "inhibit" in screen_text(app):
                break
        if screen is not None:
            await pilot.press("s")
        for _ in range(250):
            await pilot.pause(0.02)
            text = screen_text(app)
            shown = screen is None or isinstance(app.screen, screen)
            if shown and all(t in text for t in texts) and all(w.is_finished for w in app.workers):
                for box in app.screen.query(Input):
                    box.cursor_blink = False
                await pilot.pause()
                return
        raise AssertionError(f"not shown: {texts}\n{screen_text(app)}")

    return run_before


@SIZES
def test_alertmanager_alerts_in_the_alarm_list(app: Any, snap_compare: Any, size: tuple[int, int]) -> None:
    """The alarm list: OpsCheckoutErrors (P1, 12m ago) and OpsDatacenterDown (P0, 1m ago) FIRING in red
    (firing first, then by name), then OpsHostDown "inhibit" (dim, at 120 columns "inhibited by" its
    inhibitor's fingerprint), each with Src "am" and env production; the summary "2 firing · 0 pending ·
    0 unknown · 0 ok · 1 inhibited"; under the table the selected alert's summary and labels, and
    "s silences"."""
    assert snap_compare(app, terminal_size=size, run_before=until_shown("s silences"))


@SIZES
def test_silence_modal(app: Any, snap_compare: Any, size: tuple[int, int]) -> None:
    """The silence modal ("s" on the first firing alert): "Silence alert OpsCheckoutErrors", "production ·
    P1 · firing · alertmanager", its summary, all its labels (the silence matches every one), the
    duration input holding 1h and the empty reason input."""
    assert snap_compare(
        app, terminal_size=size, run_before=until_shown("Silence alert", screen=SilenceScreen)
    )
