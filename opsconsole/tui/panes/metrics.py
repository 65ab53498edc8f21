"""Metrics & Alarms: each environment's key metrics against their thresholds, and the console's alarms.

It follows the runner's pace (an `alarms` event every tick, `poll` in client mode) without repainting
the screen: rows are keyed, only cells whose content changed are touched, and `LiveTable.set_cell`
repaints just that cell (DataTable.update_cell repaints the whole table, which at 1 Hz would be most of
what an SSH session carries). Nothing is computed while the pane is hidden or covered by a modal; it
catches up when shown again. Tables are rebuilt only when the layout changes (a resize) or the alarms
change order (one started firing), never per tick.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from opsconsole.engine import AlarmStatus, MetricRow, format_value

from ..actions import GuardedActions
from ..bridge import EngineChanged
from ..format import ago, plain, safe, utc_time
from ..widgets.live_table import Column, LiveTable

SPARK_BARS = "▁▂▃▄▅▆▇█"
MAX_POINTS = 60
"""Never ask for more history than the session keeps (session.SPARK_POINTS)."""
MIN_TREND = 8
INDENT = "  "
ENV_ROW = "\x1e"
"""Key prefix of the row that heads an environment's metrics."""
MIN_REASON = 16
DENSE_PAINT_S = 10.0
"""With more metric rows than the table shows at once (a scrolled overview: 200 series), their
moving values, ages and sparklines are repainted at most this often; a row turning breached, failed or
stale (or back) repaints at once, and the alarm list stays live. Every visible row's sparkline shifts
every tick: at 80x24, ten such rows repainted every second were about 6 KB/s, every 5 s 1.2 KB/s and
every 10 s 0.7 KB/s, against a budget of 1 KB/s (bench/metrics_pane.py, 200 moving series)."""

STATE_RANK = {"firing": 0, "pending": 1, "unknown": 2, "ok": 3, "inhibited": 4, "silenced": 5}
STATE_LABEL = {
    "firing": "FIRING",
    "pending": "pending",
    "unknown": "unknown",
    "ok": "ok",
    "silenced": "silenced",
    "inhibited": "inhibit",
}
STATE_STYLE = {
    "firing": "bold red",
    "pending": "yellow",
    "unknown": "magenta",
    "ok": "green",
    "silenced": "dim",
    "inhibited": "dim",
}
QUIET_STATES = ("silenced", "inhibited")
"""Alertmanager's suppressed alerts: counted in the summary only when there are some."""
SEVERITY_SHORT = {"critical": "crit", "warning": "warn", "info": "info"}
SEVERITY_STYLE = {
    "critical": "bold",
    "warning": "",
    "info": "dim",
    "P0": "bold red",
    "P1": "bold",
    "P3": "dim",
}
SOURCE_SHORT = {"rules": "rule", "alertmanager": "am", "cloudwatch": "cw"}
"""The Src column: an alarm's source by its kind (its first word: "cloudwatch us-east-1" is cw)."""
BREACH = "bold red"
NO_DATA = "magenta"
STALE = "stale"
"""The Age cell's word for a value older than its source allows (the note says since when) (a word: colour alone says nothing to
a screen reader, a monochrome terminal or a pasted screenshot)."""


class MetricsPane(GuardedActions, Vertical, can_focus=False):
    BINDINGS = [
        Binding("k", "ack_alarm", "Ack alarm", id="ack-alarm"),
        # Not in the footer: most consoles have no alarm source; the detail line names the keys.
        Binding("s", "silence_alarm", "Silence", show=False, id="silence-alarm"),
        Binding("u", "unsilence_alarm", "Unsilence", show=False, id="unsilence-alarm"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics: list[MetricRow] = []
        self.alarms: dict[str, AlarmStatus] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self._acks_error: str | None = None
        self._now = 0.0
        self._stale = True
        self._pending = False
        self._heard = False
        self._texts: dict[str, tuple[Any, ...]] = {}
        self._painted_at = -math.inf
        """When the metric table's cells were last painted (monotonic seconds)."""
        self._painted_states: dict[str, tuple[str, bool, bool]] = {}
        self._painted_cells: dict[str, dict[str, Text]] = {}
        self._note_lines = 0
        """The cells last painted per metric row (a dense table keeps them until DENSE_PAINT_S)."""

    def compose(self) -> ComposeResult:
        yield LiveTable(id="metric-table", cursor_type="none", show_cursor=False)
        note = Static(id="metric-note")
        note.display = (
            False  # set here, not in on_mount: a pane mounted as the app closes has no children to query
        )
        yield note
        yield Static(id="alarm-summary")
        yield LiveTable(id="alarm-table", cursor_type="row")
        yield Static(id="alarm-reason")
        yield Static(id="alarm-ack")

    def on_mount(self) -> None:
        # The runner publishes `alarms` only when alarm rules exist; without any, this keeps the metrics
        # moving. It does nothing while events arrive.
        self.set_interval(max(1.0, float(self.ops.engine.config.interval)), self._quiet_tick)

    def focus(self, scroll_visible: bool = True) -> MetricsPane:
        self.query_one("#alarm-table").focus(scroll_visible)
        return self

    # ------------------------------------------------------------------------------------ when

    def on_engine_changed(self, message: EngineChanged) -> None:
        if message.kind in ("alarms", "poll"):
            self._heard = True
            self.schedule_refresh()

    def _quiet_tick(self) -> None:
        if not self._heard:
            self.schedule_refresh()
        self._heard = False

    def on_show(self, event: events.Show) -> None:
        if self._stale:
            self.schedule_refresh()

    def on_resize(self, event: events.Resize) -> None:
        if self.shown():
            self.schedule_refresh()

    def shown(self) -> bool:
        return self.is_on_screen and self.screen is self.app.screen

    def schedule_refresh(self) -> None:
        """Refresh once for a burst of events (client mode sends `alarms` and `poll` together)."""
        if not self.shown():
            self._stale = True
            return
        if not self._pending:
            self._pending = True
            self.call_later(self.refresh_now)

    def refresh_now(self) -> None:
        self._pending = False
        if not self.shown():
            self._stale = True
            return
        self._stale = False
        app = self.ops
        # In memory and on the event loop on purpose: the runner mutates the scrape history on this loop,
        # so reading it from a thread could see it half-updated. A few dozen small queries per tick.
        rows = app.session.metric_rows(MAX_POINTS)  # the session extends its series incrementally
        alarms = app.session.alarms()
        self._now = float(app.engine.clock())
        self.metrics = sorted(rows, key=lambda r: r.environment != app.environment)
        self.alarms = {a.ident: a for a in alarms}
        with self.app.batch_update():
            self.show_metrics()
            self.show_alarms()
        self.load_acks()

    @work(thread=True, exclusive=True, group="alarm-acks", exit_on_error=False)
    def load_acks(self) -> None:
        try:
            acks = self.ops.engine.alarm_acks()
        except Exception as exc:  # a store hiccup must not take the console down; the pane says so
            self.app.call_from_thread(self._apply_acks, None, f"{type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self._apply_acks, acks, None)

    def _apply_acks(self, acks: dict[str, dict[str, Any]] | None, error: str | None) -> None:
        if error == self._acks_error and acks in (None, self.acks):
            return
        self._acks_error = error
        if acks is not None:
            self.acks = acks
        with self.app.batch_update():
            self.show_alarms()

    # ------------------------------------------------------------------------------------ metrics

    def show_metrics(self) -> None:
        table = self.query_one("#metric-table", LiveTable)
        rows = self.metrics
        dense = self.dense(table, rows)
        clock = time.monotonic()
        due = not dense or clock - self._painted_at >= DENSE_PAINT_S
        if due:
            self._painted_at = clock
        columns = metric_columns(
            self.size.width, rows, scrollbar=table.scrollbar_size_vertical if dense else 1
        )
        points = next(width for key, _, width in columns if key == "trend")
        cells: dict[str, dict[str, Text]] = {}
        for r in rows:
            group = ENV_ROW + r.environment
            if group not in cells:
                cells[group] = env_cells(r.environment)
            key = metric_key(r)
            state = row_state(r)
            kept = self._painted_cells.get(key)
            if due or kept is None or self._painted_states.get(key) != state:
                kept = metric_cells(r, points)
                self._painted_cells[key] = kept
                self._painted_states[key] = state
            cells[key] = kept
        if len(self._painted_cells) > len(cells):
            for key in set(self._painted_cells) - set(cells):
                del self._painted_cells[key]
                self._painted_states.pop(key, None)
        table.sync(columns, list(cells), cells)
        self._note(rows)

    def dense(self, table: LiveTable, rows: Sequence[MetricRow]) -> bool:
        """Whether the metric table holds more rows (one per environment, one per metric, a header)
        than its height shows: it scrolls, and the vertical scrollbar takes its width."""
        limit = table.styles.max_height
        most = int(limit.value) if limit is not None and limit.is_cells else 12
        return len(rows) + len({r.environment for r in rows}) + 1 > most

    def _note(self, rows: Sequence[MetricRow]) -> None:
        note = self.query_one("#metric-note", Static)
        if not rows:
            text = Text("No key metrics: no plan gate or alarm rule queries a metrics source.", style="dim")
        else:
            # A dead source fails every metric of its environment the same way: say it once.
            names: dict[tuple[str, str], list[str]] = {}
            for r in rows:
                if r.error:
                    names.setdefault((r.environment, r.error), []).append(r.name)
            errors = [f"{env} {', '.join(n)}: {no_data(err)}" for (env, err), n in names.items()]
            stale = stale_notes(rows)
            text = Text(safe(" · ".join(stale + errors)), style=NO_DATA) if errors or stale else Text()
        # A note whose words change but whose height does not (a source's "over the last 7s") needs no
        # layout: a layout repaints the whole pane, every table row, each time it changes.
        lines = self._lines(text, note)
        shown = bool(text.plain)
        layout = note.display != shown or lines != self._note_lines
        note.display = shown
        self._note_lines = lines
        self._update(note, text, layout=layout)

    def _lines(self, text: Text, note: Static) -> int:
        if not text.plain:
            return 0
        width = max(1, self.size.width - 2)  # the note's padding
        return min(2, len(text.wrap(self.app.console, width)))

    # ------------------------------------------------------------------------------------ alarms

    def show_alarms(self) -> None:
        table = self.query_one("#alarm-table", LiveTable)
        ordered = sorted(self.alarms.values(), key=lambda a: (STATE_RANK.get(a.state, 9), a.name, a.ident))
        sources = self.has_alarm_sources()
        columns = alarm_columns(self.size.width, ordered, sources=sources)
        keys = [c for c, _, _ in columns]
        cells = {
            a.ident: {k: v for k, v in alarm_cells(a, self.current_ack(a), self._now).items() if k in keys}
            for a in ordered
        }
        table.sync(columns, [a.ident for a in ordered], cells)
        self._update(self.query_one("#alarm-summary", Static), summary(ordered, sources=sources))
        self.show_selected()

    def has_alarm_sources(self) -> bool:
        """Whether any environment reads an alarm source (then each alarm's source is a column)."""
        return any(env.alarms is not None for env in self.ops.engine.config.environments.values())

    def current_ack(self, alarm: AlarmStatus) -> dict[str, Any] | None:
        """The acknowledgement of the alarm's current state: one made before it began belongs to an
        earlier episode (acked while pending, or before it cleared and fired again)."""
        ack = self.acks.get(alarm.name)
        if ack is None or alarm.state == "ok":
            return None
        since = alarm.since if alarm.since is not None else -math.inf
        return ack if float(ack.get("at", 0)) >= since else None

    def selected(self) -> AlarmStatus | None:
        key = self.query_one("#alarm-table", LiveTable).selected_key()
        return self.alarms.get(key) if key is not None else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_selected()

    def show_selected(self) -> None:
        alarm = self.selected()
        reason = self.query_one("#alarm-reason", Static)
        ack_line = self.query_one("#alarm-ack", Static)
        if alarm is None:
            self._update(reason, Text())
            self._update(ack_line, Text())
            return
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(safe(alarm.name), style="bold")
        if alarm.source == "rules":
            line.append(safe(f" · {alarm.environment} · {alarm.severity}: {alarm.reason}"))
        else:
            line.append(safe(f" · {alarm.environment} · {alarm.severity} · {alarm.source}: {alarm.reason}"))
            if alarm.labels:
                labels = ", ".join(f"{k}={v}" for k, v in alarm.labels if k != "alertname")
                line.append(safe(f" · {{{labels}}}"), style="dim")
        self._update(reason, line)
        self._update(ack_line, self.ack_text(alarm) + self.silence_hint(alarm))

    def ack_text(self, alarm: AlarmStatus) -> Text:
        if self._acks_error:
            return plain(f"acknowledgements unavailable: {self._acks_error}", NO_DATA)
        ack = self.acks.get(alarm.name)
        current = self.current_ack(alarm)
        if current is not None:
            return plain(f"✓ acked by {_ack_words(current, self._now)}", "green")
        if alarm.state == "ok":
            return Text()
        hint = " · k acknowledges" if self.check_action("ack_alarm", ()) else ""
        if ack is not None:
            words = _ack_words(ack, self._now)
            return plain(f"not acknowledged since it became {alarm.state} (last ack: {words}){hint}", "dim")
        return plain(f"not acknowledged{hint}", "yellow" if alarm.state == "firing" else "dim")

    def silence_hint(self, alarm: AlarmStatus) -> Text:
        if alarm.source != "alertmanager" or not alarm.labels:
            return Text()
        if alarm.silenced_by and self.check_action("unsilence_alarm", ()):
            return plain(" · u expires its silence", "dim")
        if alarm.state != "silenced" and self.check_action("silence_alarm", ()):
            return plain(" · s silences", "dim")
        return Text()

    def _update(self, widget: Static, text: Text, *, layout: bool = True) -> None:
        """Static.update repaints even when nothing changed; skip that."""
        key = (text.plain, str(text.style), tuple(text.spans))
        if self._texts.get(widget.id or "") != key:
            self._texts[widget.id or ""] = key
            widget.update(text, layout=layout)

    # ------------------------------------------------------------------------------------ actions

    def action_ack_alarm(self) -> None:
        from ..screens.alarm_ack import AlarmAckScreen

        alarm = self.selected()
        if alarm is None:
            self.app.notify("No alarm selected", severity="warning")
            return
        if alarm.state == "ok":
            self.app.notify(
                f"{safe(alarm.name)} is ok: nothing to acknowledge", severity="warning", markup=False
            )
            return

        def done(acked: bool | None) -> None:
            if acked:
                self.app.notify(f"Acknowledged {alarm.name}", timeout=4)
                self.schedule_refresh()

        self.app.push_screen(AlarmAckScreen(alarm, self._now), done)

    def action_silence_alarm(self) -> None:
        from ..screens.alarm_silence import SilenceScreen

        alarm = self.selected()
        if alarm is None or alarm.source != "alertmanager" or not alarm.labels:
            self.app.notify("Select an Alertmanager alert to silence", severity="warning")
            return
        if alarm.state == "silenced":
            self.app.notify(
                f"{safe(alarm.name)} is already silenced (u expires it)", severity="warning", markup=False
            )
            return

        def done(silence_id: str | None) -> None:
            if silence_id:
                self.app.notify(f"Silenced {alarm.name}: {silence_id}", timeout=4, markup=False)
                self.schedule_refresh()

        self.app.push_screen(SilenceScreen(alarm), done)

    def action_unsilence_alarm(self) -> None:
        from ..screens.alarm_silence import UnsilenceScreen

        alarm = self.selected()
        if alarm is None or not alarm.silenced_by:
            self.app.notify("Select a silenced alert to expire its silence", severity="warning")
            return

        def done(expired: bool | None) -> None:
            if expired:
                self.app.notify(f"Silence of {alarm.name} expired", timeout=4, markup=False)
                self.schedule_refresh()

        self.app.push_screen(UnsilenceScreen(alarm), done)


# ---------------------------------------------------------------------------------------- pure helpers


def metric_key(row: MetricRow) -> str:
    return "\x1f".join((row.environment, row.name, row.query))


def env_cells(environment: str) -> dict[str, Text]:
    return {
        "metric": plain(environment, "bold"),
        "src": Text(),
        "value": Text(),
        "age": Text(),
        "trend": Text(),
        "limit": Text(),
    }


def row_state(row: MetricRow) -> tuple[str, bool, bool]:
    """What must show at once in a dense table: the breach mark, a failure, staleness."""
    return (breach_of(row.value, row.min, row.max), row.error is None, row.stale)


def metric_columns(width: int, rows: Sequence[MetricRow], scrollbar: int = 1) -> list[Column]:
    """Metric names under a row per environment; the changing cells (value, trend) side by side, so a
    tick repaints one span of each line (Textual repaints a line from the widget's left edge up to the
    last changed cell)."""
    name = _fit([*(INDENT + r.name for r in rows), *(r.environment for r in rows)], 6, 24)
    fixed = [
        ("metric", "Metric", name),
        ("src", "Src", 6),
        ("value", "Value", 10),
        ("age", "Age", 6),
        ("limit", "Limit", 11),
    ]
    # Two cells of padding per column and the scrollbar's width; the trend takes the rest.
    spare = width - sum(w for _, _, w in fixed) - 2 * (len(fixed) + 1) - scrollbar
    trend = max(MIN_TREND, min(MAX_POINTS, spare))
    return [*fixed[:4], ("trend", "Trend", trend), fixed[4]]


def alarm_columns(width: int, alarms: Sequence[AlarmStatus], *, sources: bool = False) -> list[Column]:
    """`sources`: the alarms come from more than the console's own rules, so each says where from."""
    cols = [
        ("state", "State", 7),
        ("alarm", "Alarm", _fit((a.name for a in alarms), 5, 24)),
        ("env", "Env", _fit((a.environment for a in alarms), 3, 12)),
        *([("source", "Src", 4)] if sources else []),
        ("sev", "Sev", 4),
        ("since", "Since", 9),
        ("value", "Value", 8),
        ("acked", "Acked by", 8),
    ]
    rest = width - sum(w for _, _, w in cols) - 2 * (len(cols) + 1) - 1
    if rest >= MIN_REASON:
        cols.append(("reason", "Reason", rest))
    return cols


def _fit(values: Iterable[str], least: int, most: int) -> int:
    return max(least, min(most, max((len(safe(v)) for v in values), default=least)))


def breach_of(value: float | None, low: float | None, high: float | None) -> str:
    """ "▲" over the max, "▼" under the min, "" within limits or without a value."""
    if value is None:
        return ""
    if high is not None and value > high:
        return "▲"
    if low is not None and value < low:
        return "▼"
    return ""


def limit_text(row: MetricRow) -> str:
    if row.min is not None and row.max is not None:
        return f"{format_value(row.min, row.unit)}..{format_value(row.max, row.unit)}"
    if row.max is not None:
        return f"≤ {format_value(row.max, row.unit)}"
    if row.min is not None:
        return f"≥ {format_value(row.min, row.unit)}"
    return "-"


def metric_cells(row: MetricRow, points: int) -> dict[str, Text]:
    mark = breach_of(row.value, row.min, row.max)
    if row.value is None:
        value = Text("n/a", style=NO_DATA, justify="right")
    elif mark:
        value = Text(f"{mark} {format_value(row.value, row.unit)}", style=BREACH, justify="right")
    else:
        value = Text(format_value(row.value, row.unit), justify="right")
    if row.error:
        # Cut to the cell here, not by the table: an error whose hidden tail changes every tick ("over the
        # last 7s") would otherwise repaint its row every tick. The note carries the whole message.
        said = no_data(row.error)
        trend = plain(said if len(said) <= points else said[: max(0, points - 1)] + "…", NO_DATA)
    else:
        trend = sparkline(row.series[-points:] if points else (), row.min, row.max)
    return {
        "metric": plain(INDENT + row.name, BREACH if mark else ""),
        "src": plain(row.source, "dim"),
        "value": value,
        "age": age_text(row),
        "limit": Text(limit_text(row), justify="right"),
        "trend": trend,
    }


def age_text(row: MetricRow) -> Text:
    """How old the newest good value is: "≤2s" while it is as fresh as its source gets (one refresh
    interval plus a timeout: the cell stays put from tick to tick instead of flickering 0s/1s, which at
    1 Hz would repaint every row), then "3s" once a refresh was missed, and "stale" once older than its
    source allows: no count, which would repaint the row every second for as long as the source is
    down; the note under the table says since when. "-" when none was ever read."""
    if row.age is None:
        return Text("-", style="dim", justify="right")
    if row.age <= row.fresh_within:
        return Text(f"≤{_short(row.fresh_within)}", style="dim", justify="right")
    if row.stale:
        return Text(STALE, style=NO_DATA, justify="right")
    return Text(_short(row.age), justify="right")


def _short(seconds: float) -> str:
    return f"{int(seconds)}s" if seconds < 60 else ago(seconds).removesuffix(" ago")


def stale_notes(rows: Sequence[MetricRow]) -> list[str]:
    """ "stale since 14:00:03 UTC (prom, older than 4s): production latency_ms, error_rate": the stale
    rows, grouped by the moment their value was read (the date too when that is a day or more ago)."""
    groups: dict[tuple[float, str, float], dict[str, list[str]]] = {}
    for r in rows:
        if r.stale and r.read_at is not None:
            key = (r.read_at, r.source, r.stale_after)
            groups.setdefault(key, {}).setdefault(r.environment, []).append(r.name)
    notes = []
    for (at, src, limit), envs in groups.items():
        age = max((r.age or 0.0) for r in rows if r.read_at == at)
        when = utc_time(at) if age >= 86400 else utc_time(at)[11:]
        names = " · ".join(f"{env} {', '.join(n)}" for env, n in envs.items())
        notes.append(f"stale since {when} UTC ({src}, older than {ago(limit).removesuffix(' ago')}): {names}")
    return notes


def sparkline(values: Sequence[float | None], low: float | None = None, high: float | None = None) -> Text:
    """One bar per value, gaps for missing ones; bars outside [low, high] in the breach style.

    Bars start at zero for non-negative series, so a steady latency reads as steady rather than as
    noise stretched over the full height; a series that goes negative is scaled from its minimum.
    """
    known = [v for v in values if v is not None and math.isfinite(v)]
    text = Text(no_wrap=True, overflow="crop")
    if not known:
        text.append(" " * len(values))
        return text
    bottom = min(0.0, min(known))
    top = max(known)
    span = top - bottom
    for v in values:
        if v is None or not math.isfinite(v):
            text.append(" ")
            continue
        level = 0 if span <= 0 else round((v - bottom) / span * (len(SPARK_BARS) - 1))
        style = BREACH if breach_of(v, low, high) else ""
        text.append(SPARK_BARS[level], style=style)
    return text


def alarm_cells(alarm: AlarmStatus, ack: dict[str, Any] | None, now: float) -> dict[str, Text]:
    state = alarm.state
    since = "-" if alarm.since is None else since_text(state, now - alarm.since)
    return {
        "state": Text(STATE_LABEL.get(state, safe(state)), style=STATE_STYLE.get(state, "")),
        "alarm": plain(alarm.name, "bold red" if state == "firing" else ""),
        "env": plain(alarm.environment),
        "source": plain(source_short(alarm.source), "dim"),
        "sev": Text(
            SEVERITY_SHORT.get(alarm.severity, safe(alarm.severity)[:4]),
            style=SEVERITY_STYLE.get(alarm.severity, ""),
        ),
        "since": Text(since, justify="right"),
        "value": Text(format_value(alarm.value, "") if alarm.value is not None else "-", justify="right"),
        "acked": plain(ack.get("by", "?") if ack else "", "green"),
        "reason": plain(alarm.reason, "dim" if state == "ok" else ""),
    }


def since_text(state: str, seconds: float) -> str:
    """How long an alarm has been in its state: to the second in the first minute only while it needs
    eyes (firing, pending); an ok, unknown or quiet one reads "<1m ago" until its first minute is out.
    Each alarm counting seconds repaints its row every second (about 250 B/s at 80x24), and every
    alarm of a console that just opened is in its first minute."""
    if state not in ("firing", "pending") and 0 <= seconds < 60:
        return "<1m ago"
    return ago(seconds)


def source_short(source: str) -> str:
    kind = source.split(" ", 1)[0]
    return SOURCE_SHORT.get(kind, kind)[:4]


def summary(alarms: Sequence[AlarmStatus], *, sources: bool = False) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("Alarms ", style="bold")
    if not alarms:
        said = (
            "none: no alert from the alarm sources"
            if sources
            else "none: no alarm rules configured (alarms.rules)"
        )
        text.append(said, style="dim")
        return text
    counts = {state: 0 for state in STATE_RANK}
    for a in alarms:
        counts[a.state] = counts.get(a.state, 0) + 1
    parts = [
        (f"{n} {state}", STATE_STYLE.get(state, "") if n else "dim")
        for state, n in counts.items()
        if n or state not in QUIET_STATES
    ]
    for i, (words, style) in enumerate(parts):
        if i:
            text.append(" · ", style="dim")
        text.append(words, style=style)
    return text


def _ack_words(ack: dict[str, Any], now: float) -> str:
    at = ack.get("at")
    when = f" {ago(now - float(at))}" if isinstance(at, int | float) else ""
    reason = ack.get("reason") or ""
    return f"{ack.get('by', '?')}{when}" + (f": {reason}" if reason else "")


def no_data(error: str) -> str:
    """The source's own words, said once: many of its errors already begin with "no data"."""
    return error if error.startswith("no data") else f"no data: {error}"
