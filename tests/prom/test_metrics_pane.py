"""The Metrics & Alarms pane on a real Prometheus: each series says its source and the age of its value;
a source that stops answering turns the value stale, and the note under the table says since when.
The console polls the source itself (client mode, every second), as it does beside another runner."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from opsconsole.tui.app import OpsConsoleApp
from opsconsole.tui.widgets.live_table import LiveTable
from tests.integration.conftest import write_workspace
from tests.tui.conftest import console, engine_for, screen_text, sync, until

from .conftest import Prom, forwarder

QUERY = "max(demo_temperature)"
PLAN = f"""
name: watch
phases:
  - name: canary
    environment: production
    strategy: {{kind: canary, flag: new_checkout, steps: [0, 100], step_wait: 1s}}
    guards:
      - {{kind: metric, name: temperature, query: '{QUERY}', max: 90}}
"""
ROW = "\x1f".join(("production", "temperature", QUERY))


def prom_workspace(tmp_path: Path, url: str) -> Path:
    ws = write_workspace(tmp_path, 9, plan=PLAN)
    main = ws / "opsconsole.yaml"
    scrape = 'metrics: {kind: scrape, url: "http://127.0.0.1:9/metrics", timeout: 1s, window: 10s}'
    text = main.read_text()
    assert scrape in text
    main.write_text(text.replace(scrape, f"metrics: {{kind: prometheus, url: '{url}', timeout: 1s}}"))
    return ws


def cell(app: OpsConsoleApp, column: str) -> str:
    try:
        value = app.query_one("#metric-table", LiveTable).get_cell(ROW, column)
    except Exception:  # the row is not there yet
        return ""
    return value.plain if isinstance(value, Text) else str(value)


@sync
async def test_a_prometheus_series_shows_its_source_and_the_age_of_its_value(
    prom: Prom, tmp_path: Path
) -> None:
    app = console(engine_for(prom_workspace(tmp_path, prom.url)))
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: cell(app, "value") == "42.5", "the value from Prometheus", seconds=10)
        assert cell(app, "src") == "prom"
        assert cell(app, "age") == "≤2s"  # one 1 s refresh plus its 1 s timeout, at most
        text = screen_text(app)
        assert "Src" in text and "Age" in text and "prom" in text
        assert "stale" not in text


@sync
async def test_a_stopped_source_turns_the_value_stale_and_the_note_says_since_when(
    prom: Prom, tmp_path: Path
) -> None:
    front = forwarder(prom.url)  # Prometheus's API on a port this test can close
    url = f"http://127.0.0.1:{front.server_address[1]}"
    app = console(engine_for(prom_workspace(tmp_path, url)))
    try:
        async with app.run_test(size=(100, 24)) as pilot:
            await pilot.press("2")
            await until(pilot, lambda: cell(app, "value") == "42.5", "the value", seconds=10)
            row = next(r for r in app.panes["metrics"].metrics if r.name == "temperature")  # type: ignore[attr-defined]
            assert row.source == "prom" and row.read_at is not None and not row.stale
            read_before = row.read_at
            front.shutdown()
            front.server_close()
            # Interval 1 s, timeout 1 s: stale once older than 3 x 1 s + 1 s.
            await until(pilot, lambda: cell(app, "age") == "stale", "the stale mark", seconds=12)
            row = next(r for r in app.panes["metrics"].metrics if r.name == "temperature")  # type: ignore[attr-defined]
            assert row.stale and row.age is not None and row.age > row.stale_after == 4.0
            assert row.read_at >= read_before  # the last good read, not the failed ones after it
            words = " ".join(screen_text(app).split())
            assert "stale since " in words and "UTC (prom, older than 4s): production temperature" in words
            assert "no data:" in words  # and why: the source's own error
    finally:
        front.server_close()
