"""The Metrics & Alarms pane with 200 series and 500 alarms: keypress to updated screen, and the bytes
per second it writes to an 80x24 terminal.

Setup: a loopback exporter in a process of its own serves 200 gauges whose values move every second
(bench/prom.py `series_exporter`); the production environment scrapes it (`kind: scrape`, 1 s
interval) and a plan's canary phase guards all 200 (`bench_series_N <= 85`; some breach, so the pane
shows breach marks and red sparkline bars), which makes them the pane's 200 key metrics. Its alarm
source is a real Alertmanager started by the bench (prometheus-alertmanager on PATH), holding 500
alerts posted through /api/v2/alerts (severities critical/high/warning/info, started 10 minutes ago so
their "Since" cell is stable, as a long-lived incident's is).

(a) Keypress (in process): `OpsConsoleApp(engine)` as `opsconsole` starts it (runner mode: the runner
scrapes the exporter and reads Alertmanager every second and the pane follows) under
`app.run_test(size=(80, 24))`, measured with tui_keypress.py's FrameWatch (from just before
`pilot.press` to the first screen update showing the key's effect, rendered to escape sequences):
- `cursor_down`: `down` in the alarm list until the cursor moved and the line under it names the alarm;
- `page_down`: `pagedown` until the cursor moved;
- `pane_switch`: `2` (from the Rollouts pane) until the pane is on screen with its alarm line.
PRESSES each. Target: p95 <= 100 ms for every action.

(b) Output (real terminal): `python -m opsconsole --workspace W` in a pseudo-terminal of 80x24 (as
tui_output.py measures: every byte read from the pty master), key `2`, SETTLE_S, then MEASURE_S
seconds counted while the runner ticks. Target: <= 1,000 B/s.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

from common import (
    ACTOR,
    PtyProcess,
    canary_plan,
    emit,
    opsconsole_argv,
    percentile,
    summary,
    temp_dir,
    write_config,
)
from prom import alertmanager, post_alerts, series_exporter
from tui_keypress import FrameWatch
from tui_output import measure as measure_output

from opsconsole.engine.config import load_config
from opsconsole.engine.core import Engine
from opsconsole.tui.app import OpsConsoleApp

SERIES = 200
ALARMS = 500
PRESSES = 50
TARGET_P95_MS = 100.0
TARGET_BPS = 1000.0
SETTLE_S = 3.0
MEASURE_S = 10.0
LOAD_WAIT_S = 30.0
ACTIONS = ("cursor_down", "page_down", "pane_switch")
BENCH_LABEL = "metrics-pane-bench"
SEVERITIES = ("critical", "high", "warning", "info")


def guards() -> str:
    return "\n".join(
        f"- {{kind: metric, name: series_{i:03d}, query: 'bench_series_{i}', max: 85}}" for i in range(SERIES)
    )


def alerts() -> list[dict[str, object]]:
    now = dt.datetime.now(dt.UTC)
    return [
        {
            "labels": {
                "alertname": f"BenchAlert{i:03d}",
                "bench": BENCH_LABEL,
                "severity": SEVERITIES[i % len(SEVERITIES)],
                "service": f"svc-{i % 37}",
            },
            "annotations": {"summary": f"bench alert {i}: something is {i % 100}% off"},
            "startsAt": (now - dt.timedelta(minutes=10)).isoformat(),
            "endsAt": (now + dt.timedelta(minutes=30)).isoformat(),
        }
        for i in range(ALARMS)
    ]


def workspace(root: Path, exporter_url: str, am_url: str) -> Path:
    plan = canary_plan("watch", steps="[10, 50, 100]", step_wait="1h", guards=guards())
    ws, _ = write_config(
        root, {"watch": plan}, metrics_url=f"{exporter_url}/metrics", environments=("production",)
    )
    path = ws / "opsconsole.yaml"
    source = (
        f'alarms: {{kind: alertmanager, url: "{am_url}", timeout: 1s, matchers: {{bench: "{BENCH_LABEL}"}}}}'
    )
    text = path.read_text().replace("  production:\n", f"  production:\n    {source}\n", 1)
    path.write_text(text)
    load_config(path, {"WORKSPACE": str(ws)})  # checked here: a bad config fails before any measuring
    return ws


async def keypresses(ws: Path) -> dict[str, Any]:
    from opsconsole.tui.panes.metrics import MetricsPane
    from opsconsole.tui.widgets.live_table import LiveTable

    engine = Engine(load_config(ws / "opsconsole.yaml", {"WORKSPACE": str(ws)}), ws, ACTOR)
    timings: dict[str, list[float]] = {name: [] for name in ACTIONS}
    try:
        app = OpsConsoleApp(engine)
        async with app.run_test(size=(80, 24)) as pilot:
            watch = FrameWatch(app)
            watch.install()
            await pilot.press("2")
            pane = app.query_one(MetricsPane)
            deadline = time.perf_counter() + LOAD_WAIT_S
            while not (
                len(pane.alarms) >= ALARMS
                and len(pane.metrics) == SERIES
                and all(r.value is not None for r in pane.metrics)
            ):
                if time.perf_counter() > deadline:
                    raise RuntimeError(
                        f"the pane did not load {SERIES} series and {ALARMS} alarms within {LOAD_WAIT_S:g} s "
                        f"(has {len(pane.metrics)} series, {len(pane.alarms)} alarms)"
                    )
                await asyncio.sleep(0.1)
            await pilot.pause(1.0)
            table = pane.query_one("#alarm-table", LiveTable)
            reason = pane.query_one("#alarm-reason")
            for _ in range(PRESSES):
                expected = table.cursor_row + 1
                key = table.row_keys()[expected]
                name = pane.alarms[key].name
                ms = await watch.press(
                    pilot,
                    "down",
                    lambda e=expected, n=name: table.cursor_row == e and n in str(reason.render()),
                )
                timings["cursor_down"].append(ms["effect"])
            await pilot.press("home")
            for _ in range(PRESSES):
                if table.cursor_row >= len(table.row_keys()) - 30:
                    await pilot.press("home")
                    await pilot.pause(0.05)
                before = table.cursor_row
                ms = await watch.press(pilot, "pagedown", lambda b=before: table.cursor_row > b)
                timings["page_down"].append(ms["effect"])
            for _ in range(PRESSES):
                await pilot.press("1")
                await pilot.pause(0.05)
                ms = await watch.press(
                    pilot, "2", lambda: pane.shown() and bool(str(reason.render()).strip())
                )
                timings["pane_switch"].append(ms["effect"])
            shown = {"series": len(pane.metrics), "alarms": len(pane.alarms)}
            watch.uninstall()
    finally:
        engine.close()
    figures: dict[str, Any] = {
        name: summary(v) | {"p95": round(percentile(v, 95), 3)} for name, v in timings.items()
    }
    figures["frame_bytes"] = summary([float(n) for n in watch.frame_bytes], digits=0)
    figures["shown"] = shown
    figures["full_gc_during_presses"] = watch.presses_with_full_gc
    return figures


def output(ws: Path) -> dict[str, Any]:
    with PtyProcess(opsconsole_argv("--workspace", str(ws)), cols=80, rows=24) as term:
        term.wait_for_text("opsconsole │", "Rollouts", timeout=30)
        term.wait_for_text("engine: local", timeout=30)  # the runner's console, taking keys
        for attempt in range(10):
            shown = len(term.data)
            term.send("2")
            try:
                term.wait_for_text("BenchAlert", since=shown, timeout=3)
                break
            except RuntimeError:
                if attempt == 9:
                    raise
        term.pump(SETTLE_S)
        result = measure_output(term, MEASURE_S, 24)
        term.close("q")
    return result


def main() -> None:
    with (
        temp_dir("opsconsole-bench-metrics-pane-") as root,
        series_exporter(SERIES) as exporter,
        alertmanager(root) as am,
    ):
        post_alerts(am.url, alerts())
        ws = workspace(root, exporter.url, am.url)
        keys = asyncio.run(keypresses(ws))
        out = output(ws)
    worst = max(keys[name]["p95"] for name in ACTIONS)
    ok = worst <= TARGET_P95_MS and out["bytes_per_s"] <= TARGET_BPS and keys["shown"]["alarms"] >= ALARMS
    emit(
        "metrics_pane",
        target=(
            f"p95 keypress -> updated screen <= {TARGET_P95_MS:g} ms for every action and <= {TARGET_BPS:g} B/s "
            f"at 80x24, {SERIES} series and {ALARMS} alarms"
        ),
        ok=ok,
        figures={
            "worst_p95_ms": worst,
            "bytes_per_s_80x24": out["bytes_per_s"],
            "keypress": keys,
            "output": out,
        },
        setup={
            "series": f"{SERIES} gauges from a loopback exporter (own process), kind: scrape, interval 1 s",
            "alarms": f"{ALARMS} alerts in a real Alertmanager started by the bench",
            "keypress_app": "OpsConsoleApp(engine) (runner mode) under app.run_test(size=(80, 24)), pane 2",
            "output_app": "python -m opsconsole --workspace W in an 80x24 pty, pane 2",
            "presses_each": PRESSES,
            "settle_s": SETTLE_S,
            "measure_s": MEASURE_S,
            "units": "ms (frame_bytes: bytes of the update that showed the key's effect)",
        },
    )


if __name__ == "__main__":
    main()
