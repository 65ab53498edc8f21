"""The Metrics & Alarms pane driven by real keys over a real engine whose scrape history the test writes.

The test plays the scraper: each tick it records one scrape into the session's real ScrapeSource (as
`refresh()` does after a download), evaluates the real alarm rules and publishes `alarms` as the runner
does. The session's own client-mode poll is switched off so nothing else writes that history, and the
engine's clock is fixed, so every value, sparkline and "ago" on screen is deterministic.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text

from opsconsole.engine import Session, format_value
from opsconsole.engine.core import Engine
from opsconsole.engine.model import Actor
from opsconsole.engine.sources.promtext import Sample
from opsconsole.tui.app import OpsConsoleApp
from opsconsole.tui.format import ago
from opsconsole.tui.panes.metrics import MetricsPane, since_text, sparkline
from opsconsole.tui.screens.alarm_ack import AlarmAckScreen
from opsconsole.tui.widgets.live_table import LiveTable
from tests.integration.conftest import load_ws, write_workspace
from tests.tui.conftest import console, engine_for, screen_text, until

T0 = 1_700_000_000.0
EVIL = "[bold]Evil\x1b[31m"
EVIL_SHOWN = "[bold]Evil\\x1b[31m"

PLAN = """
name: watch
phases:
  - name: canary
    environment: production
    strategy: {kind: canary, flag: new_checkout, steps: [0, 50, 100], step_wait: 1s}
    guards:
      - {kind: metric, name: error_rate, query: 'ratio(errors_total, requests_total)', max: 0.01, unit: "%"}
      - {kind: metric, name: latency_ms, query: 'latency_seconds * 1000', max: 500, unit: ms}
"""

ALARMS = """
alarms:
  rules:
    - {name: ZQueueHigh, environment: production, query: queue_depth, max: 100, for: 2s, severity: critical}
    - {name: AFreeLow, environment: production, query: free_ratio, min: 0.2, severity: warning}
    - {name: "[bold]Evil\\e[31m", environment: staging, query: 'weird{tag="[bold]x"}', max: 5}
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    async def no_poll(self: Session) -> None:
        """The test is the scraper."""

    monkeypatch.setattr(Session, "_poll", no_poll)
    return write_workspace(tmp_path, 9, plan=PLAN, extra=ALARMS)  # port 9: never contacted


def clocked(ws: Path, user: str = "alice", read_only: bool = False) -> tuple[OpsConsoleApp, Clock]:
    """The console on an engine whose clock the test moves."""
    clock = Clock()
    return console(engine_for(ws, user, read_only=read_only, clock=clock)), clock


def samples(
    i: int,
    *,
    errors: float = 0.0,
    latency: float = 0.12,
    queue: float = 10,
    free: float = 0.5,
    weird: float = 1,
) -> list:
    """Scrape number `i`: 100 requests a tick, `errors` of them failing; gauges as given."""
    return [
        Sample("requests_total", (), 100.0 * i),
        Sample("errors_total", (), errors * 100.0 * i),
        Sample("latency_seconds", (), latency),
        Sample("queue_depth", (), queue),
        Sample("free_ratio", (), free),
        Sample("weird", (("tag", "[bold]x"),), weird),
    ]


def scrape(app: OpsConsoleApp, clock: Clock, i: int, error: str | None = None, **kw: Any) -> dict[str, Any]:
    """The runner's read side at T0 + i: scrape both environments (as ScrapeSource.refresh does after a
    download, or after a failure when `error` is given), then evaluate the alarm rules."""
    clock.now = T0 + i
    observer = app.session.observer
    for env in ("production", "staging"):
        src = observer.source(env)
        assert src is not None
        if error is None:
            src.record(samples(i, **kw), clock.now)
        src.last_refresh, src.last_error = clock.now, error
    return dict(observer.evaluate_alarms(clock.now))


async def tick(
    pilot: Any, app: OpsConsoleApp, clock: Clock, i: int, error: str | None = None, **kw: Any
) -> None:
    """One runner tick: scrape, evaluate, publish `alarms` as the runner does, let the console react."""
    app.engine.bus.publish("alarms", alarms=scrape(app, clock, i, error, **kw))
    await pilot.pause()


async def ticks(pilot: Any, app: OpsConsoleApp, clock: Clock, steps: range, **kw: Any) -> None:
    """Several ticks in a row; the console is told (and looks) after the last, as after a busy second."""
    for i in steps[:-1]:
        scrape(app, clock, i, **kw)
    await tick(pilot, app, clock, steps[-1], **kw)


def pane(app: OpsConsoleApp) -> MetricsPane:
    return app.query_one(MetricsPane)


def cell(app: OpsConsoleApp, table: str, row: str, column: str) -> Text:
    value = app.query_one(f"#{table}", LiveTable).get_cell(row, column)
    assert isinstance(value, Text)
    return value


def metric(env: str, name: str, query: str) -> str:
    return "\x1f".join((env, name, query))


def run(coro: Any) -> None:
    asyncio.run(coro)


# ---------------------------------------------------------------------------------------- metrics


def test_metrics_show_values_thresholds_breaches_a_sparkline_and_no_data(workspace):
    async def go():
        app, clock = clocked(workspace)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            await ticks(pilot, app, clock, range(3))
            await ticks(pilot, app, clock, range(3, 6), errors=0.05)
            await until(pilot, lambda: len(pane(app).metrics) == 5)
            err = metric("production", "error_rate", "ratio(errors_total, requests_total)")
            lat = metric("production", "latency_ms", "latency_seconds * 1000")
            value = cell(app, "metric-table", err, "value")
            assert value.plain == "▲ 5.0%"
            assert "red" in str(value.style)
            assert "red" in str(cell(app, "metric-table", err, "metric").style)
            assert cell(app, "metric-table", err, "limit").plain == "≤ 1.0%"
            assert cell(app, "metric-table", lat, "value").plain == "120 ms"
            assert "red" not in str(cell(app, "metric-table", lat, "value").style)
            assert cell(app, "metric-table", lat, "limit").plain == "≤ 500 ms"
            free = metric("production", "AFreeLow", "free_ratio")
            assert cell(app, "metric-table", free, "limit").plain == "≥ 0.2"
            # Oldest first, a gap for every scrape not taken yet; the breaching points in the breach style.
            trend = cell(app, "metric-table", err, "trend")
            bars = trend.plain.strip()
            assert len(bars) == 5 and bars[0] == "▁" and bars[-1] == "█"  # scrape 0 has no rate yet
            assert trend.plain.startswith(" ")
            screen = screen_text(app)
            assert "production" in screen and "error_rate" in screen and "▲ 5.0%" in screen
            assert "≤ 500 ms" in screen
            assert not app.query_one("#metric-note").display

            # The source dies: no numbers from before the failure, its error instead.
            await tick(pilot, app, clock, 6, error="connection refused: http://127.0.0.1:9/metrics")
            await until(pilot, lambda: cell(app, "metric-table", lat, "value").plain == "n/a")
            assert (
                cell(app, "metric-table", lat, "trend").plain == "no data: conn…"
            )  # cut to the cell; the note says it all
            assert app.query_one("#metric-note").display
            words = " ".join(screen_text(app).split())  # the note wraps over two lines
            assert "AFreeLow: no data: connection refused: http://127.0.0.1:9/metrics" in words

    run(go())


# ---------------------------------------------------------------------------------------- alarms


def test_a_firing_alarm_comes_first_in_red_with_how_long_ago(workspace):
    async def go():
        app, clock = clocked(workspace)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            await ticks(pilot, app, clock, range(5), queue=150)  # over 100 from 0; `for: 2s`: firing from 2
            table = app.query_one("#alarm-table", LiveTable)
            await until(pilot, lambda: table.row_keys()[:1] == ["ZQueueHigh"])
            assert table.row_keys() == ["ZQueueHigh", "AFreeLow", EVIL]  # firing first, whatever the name
            state = cell(app, "alarm-table", "ZQueueHigh", "state")
            assert state.plain == "FIRING" and "red" in str(state.style)
            assert cell(app, "alarm-table", "ZQueueHigh", "since").plain == "2s ago"
            assert cell(app, "alarm-table", "ZQueueHigh", "value").plain == "150"
            assert cell(app, "alarm-table", "AFreeLow", "state").plain == "ok"
            assert "1 firing" in app.query_one("#alarm-summary").render().plain  # type: ignore[attr-defined]
            # The cursor starts on the firing alarm, and its reason is spelled out below the table.
            assert "queue_depth 150 > 100 for 4s" in screen_text(app)
            assert "not acknowledged · k acknowledges" in screen_text(app)

    run(go())


def test_ack_asks_for_a_reason_records_it_and_shows_who_until_the_alarm_fires_anew(workspace):
    async def go():
        app, clock = clocked(workspace, user="alice")
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            await ticks(pilot, app, clock, range(4), queue=150)
            table = app.query_one("#alarm-table", LiveTable)
            await until(pilot, lambda: table.selected_key() == "ZQueueHigh")
            assert "k" in app.screen.active_bindings
            await pilot.press("k")
            await until(pilot, lambda: isinstance(app.screen, AlarmAckScreen))
            await pilot.press("enter")  # no reason: refused by the screen, nothing recorded
            await pilot.pause()
            assert isinstance(app.screen, AlarmAckScreen)
            assert app.engine.alarm_acks() == {}
            await pilot.press(*"on it", "enter")
            await until(pilot, lambda: not isinstance(app.screen, AlarmAckScreen))
            ack = app.engine.alarm_acks()["ZQueueHigh"]
            assert (ack["by"], ack["reason"], ack["at"]) == ("alice", "on it", T0 + 3)
            await until(pilot, lambda: cell(app, "alarm-table", "ZQueueHigh", "acked").plain == "alice")
            await tick(pilot, app, clock, 4, queue=150)
            await until(pilot, lambda: "✓ acked by alice 1s ago: on it" in screen_text(app))

            # It clears, then fires again: that is a new episode nobody has acknowledged yet.
            scrape(app, clock, 5, queue=10)
            await ticks(pilot, app, clock, range(6, 9), queue=150)
            await until(pilot, lambda: "(last ack: alice 5s ago: on it)" in screen_text(app))
            assert cell(app, "alarm-table", "ZQueueHigh", "state").plain == "FIRING"
            assert cell(app, "alarm-table", "ZQueueHigh", "acked").plain == ""

    run(go())


def test_read_only_hides_the_ack_key(workspace):
    async def go():
        app, clock = clocked(workspace, user="alice", read_only=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            await ticks(pilot, app, clock, range(4), queue=150)
            table = app.query_one("#alarm-table", LiveTable)
            await until(pilot, lambda: table.selected_key() == "ZQueueHigh")
            assert "k" not in app.screen.active_bindings
            await pilot.press("k")
            await pilot.pause()
            assert not isinstance(app.screen, AlarmAckScreen)
            assert app.engine.alarm_acks() == {}
            text = screen_text(app)
            assert "not acknowledged" in text and "k acknowledges" not in text and "Ack alarm" not in text

    run(go())


def test_markup_and_escape_codes_in_names_and_reasons_are_shown_literally(workspace):
    async def go():
        app, clock = clocked(workspace)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("2")
            await ticks(pilot, app, clock, range(3), weird=9)  # fires at once: the rule has no `for`
            table = app.query_one("#alarm-table", LiveTable)
            await until(pilot, lambda: table.selected_key() == EVIL)
            text = screen_text(app)
            assert "\x1b" not in text
            assert EVIL_SHOWN in text  # the metric row and the alarm row, as typed
            assert text.count(EVIL_SHOWN) >= 3  # metrics, alarms, the reason line
            assert 'weird{tag="[bold]x"} 9 > 5 for 2s' in text  # a reason with markup in it
            await pilot.press("k")
            await until(pilot, lambda: isinstance(app.screen, AlarmAckScreen))
            assert f"Acknowledge alarm {EVIL_SHOWN}" in screen_text(app)

    run(go())


# ---------------------------------------------------------------------------------------- live updates


def test_hidden_pane_does_nothing_until_shown(workspace):
    async def go():
        app, clock = clocked(workspace)
        async with app.run_test(size=(80, 24)) as pilot:
            await ticks(pilot, app, clock, range(3))
            await pilot.pause(0.05)
            assert pane(app).metrics == []  # on the Rollouts pane: nothing computed
            await pilot.press("2")
            await until(pilot, lambda: len(pane(app).metrics) == 5)
            # An ok alarm in its first minute does not count seconds (see since_text).
            assert cell(app, "alarm-table", "AFreeLow", "since").plain == "<1m ago"

    run(go())


def test_ticks_update_cells_in_place_and_repaint_little(workspace):
    async def go():
        app, clock = clocked(workspace)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            for i in range(62):  # a full sparkline: from here on every scrape shifts every bar
                scrape(app, clock, i, latency=0.1 + 0.01 * (i % 7))
            app.engine.bus.publish("alarms")
            await until(pilot, lambda: cell(app, "alarm-table", "AFreeLow", "since").plain == "1m ago")
            await pilot.pause(0.1)
            tables = list(app.query(LiveTable))
            cleared = []
            for table in tables:
                original = table.clear
                table.clear = lambda columns=False, original=original: cleared.append(1) or original(columns)  # type: ignore[method-assign]
            written: list[int] = []
            display = app._display

            def counting(screen: Any, renderable: Any) -> None:
                if renderable is not None:
                    written.append(len(renderable.render_segments(app.console)))
                display(screen, renderable)

            app._display = counting  # type: ignore[method-assign]
            for i in range(62, 67):
                await tick(pilot, app, clock, i, latency=0.1 + 0.01 * (i % 7))
                await pilot.pause(0.05)
            assert cleared == []  # no table rebuilt
            # Per tick: the latency row (value and sparkline) and little else, never the whole screen.
            assert 0 < sum(written) / 5 < 600, written

    run(go())


# ---------------------------------------------------------------------------------------- pure parts


def test_sparkline_gaps_flat_series_and_breach_style():
    assert sparkline([None, None]).plain == "  "
    assert sparkline([0.0, 0.0, None, 0.0]).plain == "▁▁ ▁"
    line = sparkline([0.0, 5.0, 10.0], high=6.0)
    assert line.plain == "▁▅█"
    styled = [(line.plain[s.start : s.end], str(s.style)) for s in line.spans if s.style]
    assert styled == [("█", "bold red")]
    assert sparkline([-1.0, 1.0]).plain == "▁█"


def test_an_alarm_counts_seconds_only_while_it_needs_eyes():
    assert since_text("firing", 5) == "5s ago" and since_text("pending", 59) == "59s ago"
    for state in ("ok", "unknown", "silenced", "inhibited"):
        assert since_text(state, 0) == since_text(state, 59) == "<1m ago"
        assert since_text(state, 61) == "1m ago"


def test_ago_is_to_the_second_only_in_the_first_minute():
    assert ago(0) == "0s ago"
    assert ago(59) == "59s ago"
    assert ago(61) == "1m ago" and ago(119) == "1m ago"
    assert ago(3 * 3600 + 125) == "3h2m ago"


def test_session_series_is_computed_incrementally_and_stays_exact(workspace):
    engine = Engine(load_ws(workspace), workspace, Actor("alice", "test"))
    session = Session(engine, run_engine=False)
    src = session.observer.source("production")
    assert src is not None
    query = "latency_seconds * 1000"

    def scrape(i: int, ok: bool = True) -> None:
        if ok:
            src.record(samples(i, latency=0.1 * (i % 4)), T0 + i)
        src.last_refresh, src.last_error = T0 + i, None if ok else "timeout after 1s"

    def rows() -> tuple:
        engine.clock = lambda: src.last_refresh
        return next(r.series for r in session.metric_rows(20) if r.query == query)

    for i in range(5):
        scrape(i)
        assert rows() == tuple(src.series(query, 20))
    scrape(5, ok=False)  # a failed scrape records nothing
    assert rows() == tuple(src.series(query, 20))
    scrape(6)
    scrape(7)  # two scrapes without a look in between: noticed, recomputed
    assert rows() == tuple(src.series(query, 20))
    for i in range(8, 30):
        scrape(i)
        assert rows() == tuple(src.series(query, 20))


def test_each_series_says_its_source_and_age_and_goes_stale_when_refreshes_stop(workspace):
    async def go():
        app, clock = clocked(workspace)
        async with app.run_test(size=(100, 24)) as pilot:
            await pilot.press("2")
            await ticks(pilot, app, clock, range(3))
            lat = metric("production", "latency_ms", "latency_seconds * 1000")
            await until(pilot, lambda: cell(app, "metric-table", lat, "value").plain == "120 ms")
            assert cell(app, "metric-table", lat, "src").plain == "scrape"
            assert (
                cell(app, "metric-table", lat, "age").plain == "≤2s"
            )  # as fresh as a 1 s source with a 1 s timeout gets
            # Nothing refreshes the source any more (a runner stopped, a poll hung): the value ages.
            clock.now = T0 + 2 + 4  # interval 1 s x 3 + timeout 1 s: still allowed
            app.engine.bus.publish("alarms")
            await until(pilot, lambda: cell(app, "metric-table", lat, "age").plain == "4s")
            assert "stale" not in screen_text(app)
            clock.now = T0 + 2 + 5
            app.engine.bus.publish("alarms")
            await until(pilot, lambda: cell(app, "metric-table", lat, "age").plain == "stale")
            assert cell(app, "metric-table", lat, "value").plain == "120 ms"  # the number, marked by age
            words = " ".join(screen_text(app).split())
            assert (
                "stale since 22:13:22 UTC (scrape, older than 4s): production error_rate, latency_ms" in words
            )

    run(go())


MANY = "\nalarms:\n  rules:\n" + "".join(
    f"    - {{name: Q{i:02d}, environment: production, query: 'queue_depth * {i + 1}', max: 1000}}\n"
    for i in range(14)
)


def test_a_dense_table_repaints_moving_cells_slowly_but_a_breach_at_once(tmp_path: Path, monkeypatch):
    """More metric rows than the table shows: the moving cells wait for DENSE_PAINT_S, a row turning
    breached repaints on the tick it happens, and the columns leave room for the vertical scrollbar
    (no horizontal one)."""

    async def no_poll(self: Session) -> None:
        pass

    monkeypatch.setattr(Session, "_poll", no_poll)
    ws = write_workspace(tmp_path, 9, plan=PLAN, extra=MANY)

    async def go():
        app, clock = clocked(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            await ticks(pilot, app, clock, range(3), queue=10)
            q0, q9 = (
                metric("production", "Q00", "queue_depth * 1"),
                metric("production", "Q09", "queue_depth * 10"),
            )
            await until(pilot, lambda: cell(app, "metric-table", q9, "value").plain == format_value(100, ""))
            table = app.query_one("#metric-table", LiveTable)
            assert table.max_scroll_y > 0 and table.max_scroll_x == 0  # scrolls down, never sideways
            await tick(pilot, app, clock, 3, queue=20)
            await pilot.pause(0.1)
            # A moving value waits.
            assert cell(app, "metric-table", q9, "value").plain == format_value(100, "")
            await tick(pilot, app, clock, 4, queue=120)  # Q08.. cross 1000: at once
            await until(
                pilot, lambda: cell(app, "metric-table", q9, "value").plain == "▲ " + format_value(1200, "")
            )
            assert cell(app, "metric-table", q0, "value").plain == format_value(10, "")  # within: waits
            pane(app)._painted_at -= 10.0  # DENSE_PAINT_S later
            await tick(pilot, app, clock, 5, queue=120)
            await until(pilot, lambda: cell(app, "metric-table", q0, "value").plain == format_value(120, ""))

    run(go())


def test_set_row_repaints_one_region_spanning_the_changed_cells(workspace):
    async def go():
        app, clock = clocked(workspace)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            await ticks(pilot, app, clock, range(3))
            table = app.query_one("#metric-table", LiveTable)
            lat = metric("production", "latency_ms", "latency_seconds * 1000")
            regions: list[Any] = []
            table._refresh_region = lambda region: regions.append(region) or table  # type: ignore[method-assign]
            table.set_row(
                lat,
                {"value": Text("1 ms"), "trend": Text("x"), "limit": cell(app, "metric-table", lat, "limit")},
            )
            assert len(regions) == 1  # value to trend, in one region
            table.set_row(lat, {"value": Text("1 ms")})
            assert len(regions) == 1  # nothing changed: nothing repainted

    run(go())
