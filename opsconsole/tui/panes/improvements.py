"""Improvements: the review queue for the self-building agent's proposals.

Above the queue, always in view: the mode (observation, autonomous, or autonomous suspended by the
kill switch), whether the kill switch paused the queue, where proposals come from and how the agent
answers, how many improvements are live against the concurrency limit, and the last and next sync.
The queue is sorted as the engine sorts it (what needs eyes first: monitoring, deploying, failed,
approved, proposed, then the finished ones), best quality first within a status.

Built for thousands of proposals: the rows are drawn by a Line API table (widgets/keyed_table.py)
that renders only the rows on screen, so a keypress costs the same with 5,000 items as with 5. The
queue is read in a thread worker, diffed against what is shown there, and only the rows that
changed are repainted (none if they are off screen). A hidden pane only remembers that something
changed and reads when shown.

Keys: `a` approve and `x` reject (a reason each), `space` selects rows for a batch decision (marked
`●`; the action then applies to every selected row), `b` rolls back, `s` syncs now, Enter opens the
detail. Who may do what is the engine's authz, through actions.py, like every other pane.

Without an `improvements:` section for any environment the pane says so, and still shows the kill
switch's pause (the kill switch pauses improvements whether a queue is configured or not).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from ..actions import GuardedActions
from ..bridge import EngineChanged
from ..calls import call
from ..format import plain, safe, utc_time
from ..improvement_text import STATUS_CELL_STYLE, agent_text, mode_text, score, sync_text
from ..widgets.keyed_table import Cell, Column, KeyedTable
from ..widgets.shown_reload import ShownReload, diff_keyed, merge_keyed

if TYPE_CHECKING:
    from opsconsole.engine import (
        Config,
        Improvement,
        ImprovementSettings,
        ImprovementsPause,
        QueueMode,
        SyncResult,
    )

    from ..screens.improvement import ImprovementDetailScreen

EMPTY_TITLE = "Improvement queue: not configured"
EMPTY_TEXT = (
    "Proposals from the self-building agent (over MCP: list_improvements, deploy_improvement, "
    "rollback_improvement) or from a proposals file are reviewed here: approve or reject, then "
    "deploy, watch, and keep or roll back.\n\n"
    "opsconsole.yaml has no 'improvements:' section for this environment, so there is nothing to "
    "review and nothing deploys from this pane.\n\n"
    "To configure: the agent's MCP endpoint or a proposals file; quality threshold, risk tolerance, "
    "max concurrent, monitoring window, rollback threshold; per-tenant enablement; observation mode "
    "(a human approves every deploy) or autonomous mode."
)
IMPROVEMENT_FLAGS = (
    "enable_self_building",
    "enable_autonomous_improvements",
    "enable_component_generation",
    "enable_improvement_rollback",
)
"""The seed's flags that govern the agent; listed when this configuration defines them."""
SELECTED_MARK = "●"
"""Drawn before a row selected for a batch decision: a character, so it survives NO_COLOR."""
DECIDABLE = frozenset({"proposed", "approved"})
"""Statuses a person can approve (proposed) or reject (proposed, approved)."""
ROLLBACKABLE = frozenset({"deploying", "monitoring", "kept", "failed"})
STATUS_WIDTH = len("rolled_back")
Loaded = tuple[str, "QueueMode", list["Improvement"], list[str], set[str]]
"""A read of one environment's queue: environment, mode, items in order, their ids, the changed ids."""
DETAIL_SCREEN = "improvement-detail"
"""The name the one detail screen is installed under."""
CLOCK_EVERY = 15.0
"""Seconds between repaints of the "3m ago" words while the pane is shown (no store read)."""


def queue_environment(config: Config, watched: str) -> str:
    """The environment whose queue the pane shows: the watched one if it has an `improvements:`
    section, else the first that has one; "" when none has."""
    configured = config.improvements
    if watched in configured:
        return watched
    return next(iter(configured), "")


class ImprovementTable(KeyedTable):
    """The queue, by improvement id (rows, cells and styles come from ImprovementsPane)."""


class ImprovementsPane(GuardedActions, ShownReload, Vertical, can_focus=True):
    DEFAULT_CSS = """
    ImprovementsPane { height: 1fr; }
    ImprovementsPane.-empty { padding: 1 2; }
    ImprovementsPane .empty-title { text-style: bold; padding: 0 0 1 0; }
    ImprovementsPane #improvements-paused { display: none; text-style: bold; color: $error; }
    ImprovementsPane.-empty #improvements-paused { padding: 0 0 1 0; }
    ImprovementsPane #improvements-paused.-paused { display: block; }
    ImprovementsPane #improvements-mode, ImprovementsPane #improvements-source { height: 1; }
    ImprovementsPane #improvements-error { display: none; height: auto; color: $error; }
    ImprovementsPane #improvements-error.-shown { display: block; }
    ImprovementsPane #improvement-line { height: 2; }
    """
    BINDINGS = [
        Binding("a", "approve_improvement", "Approve", id="approve-improvement"),
        Binding("x", "reject_improvement", "Reject", id="reject-improvement"),
        Binding("space", "select_improvement", "Select", id="select-improvement"),
        Binding("b", "rollback_improvement", "Rollback", id="rollback-improvement"),
        Binding("s", "sync_improvements", "Sync", show=False, id="sync-improvements"),
        Binding("enter", "improvement_detail", "Detail", show=False, id="improvement-detail"),
        Binding(
            "left_square_bracket", "switch_queue(-1)", "Prev env", show=False, id="previous-improvement-queue"
        ),
        Binding(
            "right_square_bracket", "switch_queue(1)", "Next env", show=False, id="next-improvement-queue"
        ),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = ""
        self.items: dict[str, Improvement] = {}
        self.selection: set[str] = set()
        """Ids selected for a batch decision (space), in no order; the table's order is the queue's."""
        self.mode: QueueMode | None = None
        self._agent_since: float | None = None
        """When this console first saw the agent in its current bad state (None while it is ok)."""
        self._mode_loading = False
        self._mode_again = False
        self._id_width = 8
        self._tenant_width = 6
        self._bindings_for: tuple[str, ...] | None = None
        self._detail: ImprovementDetailScreen | None = None

    # ------------------------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        config = self.ops.engine.config
        self.environment = queue_environment(config, self.ops.environment)
        if not self.environment:
            self.add_class("-empty")
            yield Static(EMPTY_TITLE, classes="empty-title")
            yield Static(id="improvements-paused", markup=False)
            yield Static(EMPTY_TEXT, id="improvements-empty", markup=False)
            flags = _governing_flags(config)
            if flags:
                yield Static(
                    Text(f"\nFlags that govern the agent here (Flags pane, key 3): {', '.join(flags)}"),
                    id="improvements-flags",
                )
            return
        yield Static(id="improvements-mode")
        yield Static(id="improvements-source")
        yield Static(id="improvements-paused", markup=False)
        yield Static(id="improvements-error", markup=False)
        yield ImprovementTable(self._layout, self._cells, self._show_line, id="improvement-table")
        yield Static(id="improvement-line")

    @property
    def configured(self) -> bool:
        return bool(self.environment)

    @property
    def table(self) -> ImprovementTable:
        return self.query_one("#improvement-table", ImprovementTable)

    @property
    def settings(self) -> ImprovementSettings | None:
        return self.ops.engine.config.improvements.get(self.environment)

    def on_mount(self) -> None:
        if self.configured:
            self.set_interval(CLOCK_EVERY, self._tick_clock)
        self.reload()

    def focus(self, scroll_visible: bool = True) -> ImprovementsPane:
        if self.configured:
            self.table.focus(scroll_visible)
            return self
        return super().focus(scroll_visible)

    # ------------------------------------------------------------------------------------ data

    def on_engine_changed(self, message: EngineChanged) -> None:
        items = message.data.get("items") if message.kind == "improvements" else None
        if items is not None and self._shown and self.configured and not self._loading:
            # The engine sent the items it wrote (a monitoring sample, a step of a deploy): shown
            # as they are, without reading 5,000 items back; only the header is read again.
            self.apply_items([i for i in items if i.environment == self.environment])
        elif message.kind in ("improvements", "kill_switch", "poll", "engine"):
            self._changed()

    def apply_items(self, items: list[Improvement]) -> None:
        """Show items the engine just wrote. A change of status or score moves a row, which needs
        the engine's order: then the whole queue is read again instead."""
        changed: set[str] = set()
        for item in items:
            old = self.items.get(item.id)
            if old is not None and old.version > item.version:
                continue  # an older event than what is shown
            if (
                old is None
                or old.status != item.status
                or old.proposal.quality_score != item.proposal.quality_score
            ):
                self.reload()
                return
            self.items[item.id] = item
            changed.add(item.id)
        if not changed:
            return
        self.table.refresh_keys(changed)
        self._tell_detail_screen(changed)
        self._refresh_line(changed)
        self.reload_mode()

    def _refresh_line(self, changed: set[str]) -> None:
        """The line under the table describes the row under the cursor: said again when that item
        changed under it (a rollback while the cursor rests on it)."""
        if self.table.selected in changed:
            self._show_line(self.table.selected)

    def reload_mode(self) -> None:
        """Read the header's mode again; one read at a time, so a burst of engine events (a runner
        writing a sample of every monitored item) costs one more read, not one per event."""
        if self._mode_loading:
            self._mode_again = True
            return
        self._mode_loading = True
        engine, env = self.ops.engine, self.environment

        def done(mode: QueueMode | None) -> None:
            self._mode_loading = False
            if mode is not None and env == self.environment:
                self.show_mode(mode)
            again, self._mode_again = self._mode_again, False
            if again:
                self.reload_mode()

        call(
            self,
            engine.improvement_mode,
            env,
            action="Reading the improvement queue's mode",
            done=done,
            failed=lambda message: done(None),
            group="improvements-mode",
            quiet=True,
        )

    def reload(self) -> None:
        """Read the queue again. One read at a time: a burst of events costs one more read."""
        if not self.configured:
            call(
                self,
                self.ops.engine.improvements_paused,
                action="Reading the improvements pause",
                done=self.show_pause,
                group="improvements-pause",
                exclusive=True,
                quiet=True,
            )
            return
        if not self._read_begins():
            return
        engine, env, before = self.ops.engine, self.environment, dict(self.items)

        def read() -> Loaded:
            # Off the event loop: the store read and the diff against what is shown.
            mode = engine.improvement_mode(env)
            items = engine.improvements(env)
            order, changed = diff_keyed(items, before)
            return env, mode, items, order, changed

        call(
            self,
            read,
            action="Reading the improvement queue",
            done=self._loaded,
            failed=self._load_failed,
            group="improvements-reload",
            quiet=True,
        )

    def _load_failed(self, message: str) -> None:
        self._show_error(f"Could not read the queue: {message}")
        if self._read_ends():
            self.reload()

    def _loaded(self, got: Loaded) -> None:
        again = self._read_ends()
        env, mode, items, order, changed = got
        if env != self.environment:
            again = True  # switched meanwhile: this answer is for a queue no longer shown
        else:
            self._show_error("")
            self.apply(mode, items, order, changed)
        if again:
            self.reload()

    def apply(self, mode: QueueMode, items: list[Improvement], order: list[str], changed: set[str]) -> None:
        """Show a read of the queue: rows repaint only where an item changed."""
        if merge_keyed(self.items, items, order, changed) is not None:
            self.selection &= set(order)
        widths = self._widths()
        table = self.table
        table.empty_text = "no proposals yet: s syncs now"
        if widths != (self._id_width, self._tenant_width):
            self._id_width, self._tenant_width = widths
            table.relayout()
        if table.keys != order:
            table.show_keys(order)
        elif changed:
            table.refresh_keys(changed)
        else:
            table.announce()
        self.show_mode(mode)
        self._tell_detail_screen(changed)
        self._refresh_line(changed)

    def _widths(self) -> tuple[int, int]:
        ids = max((len(safe(i)) for i in self.items), default=2)
        tenants = max((len(safe(i.proposal.tenant)) for i in self.items.values()), default=6)
        return max(4, min(ids, 14)), max(6, min(tenants, 12))

    def _tell_detail_screen(self, changed: set[str] | None = None) -> None:
        """Modal screens get no engine events: an open detail screen re-reads on this pane's (only
        when its improvement is among `changed`, if given)."""
        screen = self._detail
        on_screen = screen is not None and screen in self.app.screen_stack
        if on_screen and screen is not None and (changed is None or screen.improvement_id in changed):
            screen.reload()

    # ------------------------------------------------------------------------------------ header

    def show_mode(self, mode: QueueMode) -> None:
        self.mode = mode
        if mode.agent_state in ("ok", "never"):
            self._agent_since = None
        elif self._agent_since is None:
            self._agent_since = self.ops.engine.clock()
        self.show_pause(mode.paused)
        self._show_header()

    def _tick_clock(self) -> None:
        if self._shown and self.mode is not None:
            self._show_header()

    def _show_header(self) -> None:
        mode = self.mode
        if mode is None:
            return
        now = self.ops.engine.clock()
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append_text(plain(self.environment, "bold"))
        words, style = mode_text(mode)
        head.append(" · mode: ")
        head.append(words, style=style)
        head.append(" · ")
        if mode.paused.paused:
            head.append("PAUSED", style="bold reverse red")
        else:
            head.append("not paused")
        head.append(f" · live {mode.live}/{mode.max_concurrent}")
        if not mode.self_building:
            head.append(" · self-building off", style="bold")
        if self.selection:
            head.append(f" · {len(self.selection)} selected", style="bold")
        if len(self.ops.engine.config.improvements) > 1:
            head.append("  [ ] env", style="dim")  # the footer has no room for it
        source = Text(no_wrap=True, overflow="ellipsis")
        source.append("agent: ")
        words, style = agent_text(mode, self._agent_since)
        source.append(words, style=style)
        source.append(f" · {sync_text(mode, now)} · ")
        source.append_text(plain(mode.source, "dim"))
        self.query_one("#improvements-mode", Static).update(head, layout=False)
        self.query_one("#improvements-source", Static).update(source, layout=False)

    def show_pause(self, pause: ImprovementsPause) -> None:
        line = self.query_one("#improvements-paused", Static)
        if line.has_class("-paused") != pause.paused:
            line.set_class(pause.paused, "-paused")
        if pause.paused:
            when = f" at {utc_time(pause.at)} UTC" if pause.at is not None else ""
            who = "the kill switch" if pause.by in ("", "kill_switch") else pause.by
            line.update(safe(f"Paused by {who}{when}: nothing deploys from here until the all-clear."))

    def _show_error(self, message: str) -> None:
        line = self.query_one("#improvements-error", Static)
        line.set_class(bool(message), "-shown")
        line.update(safe(message))

    # ------------------------------------------------------------------------------------ rows

    def _layout(self, width: int) -> list[Column]:
        """Id, status, quality, risk and tenant at their width; the title takes the rest."""
        id_w, tenant_w = self._id_width, self._tenant_width
        used = 1 + (id_w + 1) + (STATUS_WIDTH + 1) + (4 + 1) + (4 + 1) + (tenant_w + 1)
        title_w = max(10, width - used - 1)
        return [
            ("id", "Id", id_w),
            ("status", "Status", STATUS_WIDTH),
            ("quality", "Qual", 4),
            ("risk", "Risk", 4),
            ("tenant", "Tenant", tenant_w),
            ("title", "Title", title_w),
        ]

    def _cells(self, key: str) -> dict[str, Cell]:
        item = self.items.get(key)
        if item is None:
            return {"id": (safe(key), "")}
        p, settings, status = item.proposal, self.settings, str(item.status)
        low_quality = settings is not None and p.quality_score < settings.quality_threshold
        high_risk = settings is not None and p.risk > settings.risk_tolerance
        cells: dict[str, Cell] = {
            "id": (safe(key), ""),
            "status": (status, STATUS_CELL_STYLE.get(status, "")),
            "quality": (score(p.quality_score), "warn" if low_quality else ""),
            "risk": (score(p.risk), "warn" if high_risk else ""),
            "tenant": (safe(p.tenant) or "-", "muted"),
            "title": (safe(p.title), ""),
        }
        if key in self.selection:
            cells["mark"] = (SELECTED_MARK, "override")
        return cells

    def _show_line(self, key: str | None) -> None:
        """The row under the cursor, in full words under the table (two lines)."""
        line = Text(no_wrap=True, overflow="ellipsis")
        item = self.items.get(key) if key is not None else None
        if item is not None:
            p = item.proposal
            line.append_text(plain(item.id, "bold"))
            line.append(" ")
            line.append_text(plain(p.title))
            line.append("\n")
            facts = [str(item.status), p.kind.replace("_", " ")]
            if p.component:
                facts.append(f"component {safe(p.component)}")
            if item.reviewer:
                facts.append(f"by {safe(item.reviewer)}: {safe(item.reason)}")
            elif item.evidence:
                facts.append(safe(item.evidence))
            if item.error:
                facts.append(f"agent: {safe(item.error)}")
            line.append_text(plain(" · ".join(facts), "dim"))
        self.query_one("#improvement-line", Static).update(line, layout=False)
        self._refresh_keys_for(item)

    def _refresh_keys_for(self, item: Improvement | None) -> None:
        """Show the action keys as they apply to the targets; rebuilt only when that changes (the
        footer rebuilds itself on every refresh_bindings)."""
        state = tuple(sorted({str(i.status) for i in self.targets(notify=False)}))
        if state != self._bindings_for:
            self._bindings_for = state
            self.refresh_bindings()

    # ------------------------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Who may (authz, via GuardedActions: hidden when not), then whether any target is in a
        status the action applies to (shown disabled when not)."""
        if action in _QUEUE_ACTIONS and not self.configured:
            return False
        # A key pressed on an item its action does not apply to says why (see _decide) rather than
        # doing nothing: the list re-sorts as items move, and a silent key looks like a dead console.
        return super().check_action(action, parameters)

    def targets(self, notify: bool = True) -> list[Improvement]:
        """What an action applies to: the selected rows, else the row under the cursor."""
        if not self.configured:
            return []
        if self.selection:
            return [self.items[k] for k in self.table.keys if k in self.selection and k in self.items]
        key = self.table.selected
        item = self.items.get(key) if key is not None else None
        if item is None:
            if notify:
                self.app.notify("No improvement selected", severity="warning", timeout=3)
            return []
        return [item]

    def action_select_improvement(self) -> None:
        key = self.table.selected
        if key is None:
            return
        self.selection ^= {key}
        self.table.refresh_keys({key})
        self._show_header()
        self._refresh_keys_for(None)

    def _decide(self, kind: str) -> None:
        from ..screens.improvement import ImprovementDecisionScreen

        items = self.targets()
        applies = {"approve": {"proposed"}, "reject": DECIDABLE, "rollback": ROLLBACKABLE}[kind]
        fit = [i for i in items if str(i.status) in applies]
        if items and not fit:
            which = items[0].id if len(items) == 1 else f"none of the {len(items)} selected"
            status = f" is {items[0].status}" if len(items) == 1 else ""
            self.app.notify(
                safe(f"{which}{status}: {kind} applies to {', '.join(sorted(applies))} improvements"),
                severity="warning",
                timeout=4,
                markup=False,
            )
            return
        if fit:
            self.app.push_screen(ImprovementDecisionScreen(kind, self.environment, fit), self._decided)

    def _decided(self, done: bool | None) -> None:
        if done:
            self.selection.clear()
            self.table.refresh()
            self.reload()

    def action_approve_improvement(self) -> None:
        self._decide("approve")

    def action_reject_improvement(self) -> None:
        self._decide("reject")

    def action_rollback_improvement(self) -> None:
        self._decide("rollback")

    def action_sync_improvements(self) -> None:
        if not self.configured:
            return
        engine, env = self.ops.engine, self.environment
        self.app.notify(f"Syncing the improvement queue of {safe(env)}…", timeout=3, markup=False)
        call(
            self,
            engine.sync_improvements,
            env,
            action=f"Sync {env}",
            done=self._synced,
            group="improvements-sync",
            exclusive=True,
        )

    def _synced(self, result: SyncResult) -> None:
        counts = f"{result.new} new, {result.updated} updated, {result.unchanged} unchanged"
        if result.errors:
            message = f"Sync of {self.environment}: {counts}; failed: {'; '.join(result.errors)}"
            self.app.notify(safe(message), title="sync", severity="error", timeout=10, markup=False)
        else:
            self.app.notify(f"Sync of {safe(self.environment)}: {counts}", timeout=5, markup=False)
        self.reload()

    def action_switch_queue(self, step: int) -> None:
        """Show the next (or previous) environment's queue: those with an `improvements:` section."""
        envs = list(self.ops.engine.config.improvements)
        if len(envs) < 2:
            self.app.notify("Only one environment has an improvement queue", timeout=3)
            return
        at = envs.index(self.environment) if self.environment in envs else 0
        self.environment = envs[(at + step) % len(envs)]
        self.items, self.mode, self._agent_since = {}, None, None
        self.selection.clear()
        self.table.empty_text = "loading…"
        self.table.show_keys([])
        self.reload()

    def action_improvement_detail(self) -> None:
        from ..screens.improvement import ImprovementDetailScreen

        key = self.table.selected if self.configured else None
        if key is None:
            self.app.notify("No improvement selected", severity="warning", timeout=3)
            return
        screen = self._detail
        if screen is None:
            # One detail screen, pushed again for each improvement (show_item): opening stays fast.
            screen = self._detail = ImprovementDetailScreen(self.environment, key, self.items.get(key))
            self.app.install_screen(screen, name=DETAIL_SCREEN)
        else:
            screen.show_item(self.environment, key, self.items.get(key))
        self.app.push_screen(screen)


_QUEUE_ACTIONS = frozenset(
    {
        "approve_improvement",
        "reject_improvement",
        "select_improvement",
        "rollback_improvement",
        "sync_improvements",
        "improvement_detail",
        "switch_queue",
    }
)
"""Hidden while no queue is configured: they would have nothing to act on."""


def _governing_flags(config: Config) -> list[str]:
    return [safe(name) for name in IMPROVEMENT_FLAGS if name in config.flags]
