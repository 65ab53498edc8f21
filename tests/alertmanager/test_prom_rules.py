"""Acceptance (issue 13): Prometheus alerting rules firing into the real Alertmanager block a phase;
silencing the alert from the console unblocks it.

A Prometheus of this test's own (its rule group evaluated every second, `alerting.alertmanagers`
pointing at the session's Alertmanager) scrapes a small exporter every second. The exporter's value
crosses the rule, Prometheus fires the alert into Alertmanager, the canary's `alarms` gate holds the
phase, and the operator silences the alert from the Metrics & Alarms pane with real keys.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsconsole.engine.model import RolloutState
from opsconsole.tui.app import OpsConsoleApp
from opsconsole.tui.screens.alarm_silence import SilenceScreen
from tests.alertmanager.conftest import Alertmanager, engine_for, write_workspace
from tests.prom.server import Exporter, _exporter_server, running_prometheus
from tests.tui.conftest import screen_text, sync, until

RULE_WAIT = 20.0
"""Bound on the alert reaching Alertmanager: a scrape (1 s), a rule evaluation (1 s), the send."""


@dataclass(frozen=True)
class RulesProm:
    url: str
    exporter: Exporter


def _rules(test: str) -> str:
    return f"""
groups:
  - name: opsconsole-acceptance
    interval: 1s
    rules:
      - alert: OpsCheckoutErrors
        expr: demo_temperature > 80
        labels: {{severity: high, test: "{test}"}}
        annotations: {{summary: "checkout too hot: {{{{ $value }}}}"}}
"""


@pytest.fixture
def rules_prom(alertmanager: Alertmanager, test_id: str, tmp_path: Path) -> Iterator[RulesProm]:
    """A Prometheus with this test's rule file, sending its alerts to the session's Alertmanager."""
    exporter = Exporter()
    server = _exporter_server(exporter)
    work = tmp_path / "prometheus"
    work.mkdir()
    (work / "rules.yml").write_text(_rules(test_id))
    am = alertmanager.url.removeprefix("http://")
    config = (
        f"rule_files: ['{work / 'rules.yml'}']\n"
        "alerting:\n"
        "  alertmanagers:\n"
        f"    - {{api_version: v2, static_configs: [{{targets: ['{am}']}}]}}\n"
        "scrape_configs:\n"
        "  - job_name: exporter\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.server_address[1]}']}}]\n"
    )
    try:
        with running_prometheus(work, config) as url:
            yield RulesProm(url, exporter)
    finally:
        server.shutdown()


def _firing_in_alertmanager(alertmanager: Alertmanager, test: str, seconds: float) -> list[dict[str, object]]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [a for a in alertmanager.alerts(test) if a["labels"].get("alertname") == "OpsCheckoutErrors"]  # type: ignore[index, union-attr]
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no OpsCheckoutErrors from Prometheus in Alertmanager within {seconds:g}s")


def selected_name(app: OpsConsoleApp) -> str | None:
    alarm = app.panes["metrics"].selected()  # type: ignore[attr-defined]
    return None if alarm is None else str(alarm.name)


@sync
async def test_acceptance_a_prometheus_rule_firing_into_alertmanager_holds_the_phase_until_silenced(
    rules_prom: RulesProm, alertmanager: Alertmanager, test_id: str, tmp_path: Path, token: str
) -> None:
    # Below the rule: Prometheus evaluates it (every second) and sends nothing.
    time.sleep(2.5)
    assert alertmanager.alerts(test_id) == []

    rules_prom.exporter.temperature = 95.0  # crosses `demo_temperature > 80`
    started = time.monotonic()
    (sent,) = _firing_in_alertmanager(alertmanager, test_id, RULE_WAIT)
    reached = time.monotonic() - started
    labels = sent["labels"]
    assert isinstance(labels, dict)
    assert labels["severity"] == "high" and labels["job"] == "exporter"  # Prometheus's, not ours
    assert "checkout too hot: 95" in str(sent["annotations"])

    ws = write_workspace(tmp_path, alertmanager.url, test_id)
    engine = engine_for(ws, "bob")
    rid = engine.start_rollout("guarded", "acceptance: prometheus rules").id
    app = OpsConsoleApp(engine, run_engine=True)  # the console's own runner ticks the rollout
    app.animation_level = "none"
    async with app.run_test(size=(120, 30)) as pilot:
        # The canary reaches 100% in about 2 s, then its `alarms` gate holds the phase.
        await until(pilot, lambda: engine.rollout(rid).step_index == 2, "the last step", seconds=15)
        await pilot.pause(2.0)
        held = engine.rollout(rid)
        assert held.state is RolloutState.PROGRESSING, held.reason
        (_, verdict) = engine.verdict_history(rid)[-1]
        assert verdict.status == "fail" and "OpsCheckoutErrors" in verdict.reason

        await pilot.press("2")
        await until(pilot, lambda: selected_name(app) == "OpsCheckoutErrors", "the alert", seconds=10)
        text = screen_text(app)
        assert "FIRING" in text and " am " in text and "checkout too hot: 95" in text
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SilenceScreen), "the silence dialog")
        await pilot.press(*"hot but known", "enter")
        await until(pilot, lambda: not isinstance(app.screen, SilenceScreen), "the silence to be made")
        (made,) = alertmanager.silences(test_id)
        assert made["createdBy"] == "bob" and made["comment"] == "hot but known"
        await until(
            pilot,
            lambda: engine.rollout(rid).state is RolloutState.COMPLETED,
            "the phase to complete",
            seconds=15,
        )
    # Prometheus keeps firing it (the exporter is still hot): the silence, not the alert's end, let it go.
    assert any(a["status"]["state"] == "suppressed" for a in alertmanager.alerts(test_id))
    assert [e.action for e in engine.audit_events()].count("alarm.silence") == 1
    assert reached < RULE_WAIT
