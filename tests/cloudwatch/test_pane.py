"""The Metrics & Alarms pane on an environment whose metrics and alarms are in CloudWatch (moto's
server): a CloudWatch alarm set to ALARM shows, firing, with its source and reason, beside the
CloudWatch metric a guard reads."""

from __future__ import annotations

import secrets
from pathlib import Path

from opsconsole.engine import Actor, Engine
from tests.tui.conftest import console, screen_text, sync, until

from .conftest import cw, load, write_config
from .test_alarms import make_alarm


@sync
async def test_a_cloudwatch_alarm_in_alarm_shows_in_the_pane_with_its_source(
    cw_server: str, tmp_path: Path
) -> None:
    prefix = f"SB{secrets.token_hex(3)}-"
    namespace = f"Pane{secrets.token_hex(3)}"
    cw(cw_server).put_metric_data(Namespace=namespace, MetricData=[{"MetricName": "opens", "Value": 7.0}])
    make_alarm(cw_server, f"{prefix}CircuitBreakerOpen", "ALARM", "Threshold Crossed: breaker [7.0]")
    main = write_config(
        tmp_path,
        cw_server,
        prefix=prefix,
        guards=f"      - {{kind: metric, name: breaker_opens, query: '{namespace}:opens:Sum', max: 1}}\n"
        f"      - {{kind: alarms, none_firing: ['{prefix}*']}}\n",
    )
    engine = Engine(load(main), tmp_path / "ws", Actor("alice", "test"))
    app = console(engine)
    try:
        # Wide enough for the detail line to hold the test endpoint's address and the whole reason.
        async with app.run_test(size=(160, 30)) as pilot:
            await pilot.press("2")
            await until(
                pilot, lambda: f"{prefix}CircuitBreakerOpen" in screen_text(app), "the alarm", seconds=10
            )
            await until(pilot, lambda: "breaker_opens" in screen_text(app), "the metric row", seconds=10)
            await until(
                pilot, lambda: f"cloudwatch {cw_server}" in screen_text(app), "the alarm's source", 10
            )
            text = screen_text(app)
            assert "Threshold Crossed: breaker [7.0]" in text
            alarms = {a.name: a for a in app.session.alarms()}
            assert alarms[f"{prefix}CircuitBreakerOpen"].state == "firing"
            rows = {r.name: r for r in app.session.metric_rows(5)}
            await until(pilot, lambda: app.session.metric_rows(5)[0].value == 7.0, "the metric's value", 10)
    finally:
        engine.close()
    assert rows["breaker_opens"].query == f"{namespace}:opens:Sum"
