"""Flags: the flags of one environment, their effective value and the rule that decided it, and the
actions on them (toggle, set a percentage, history, explain for a user, scheduled changes).

Only the flags that exist in the shown environment are listed (a flag scoped to other environments
has no state here). `g` orders them as a tree, children under their parent; stale flags (older than
their kind's lifetime, engine/stale.py) carry a `~` before the name and say why on the detail line.

Built for 10,000 flags. The rows are drawn by `FlagTable`, a Line API widget that renders only the
rows on screen: Textual's DataTable measures every cell of every row it holds, which costs about
1.7 s to (re)fill 10,000 rows, so a filter that narrows and widens the list would freeze the console.
Here a filter keystroke is a substring scan over precomputed lower-case text and one repaint, and an
engine change repaints only if a changed flag is on screen. Flag states are read and resolved in a
thread worker; the event loop only swaps the result in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.widgets import Input, Static

from ..actions import GuardedActions
from ..bridge import EngineChanged
from ..format import decided_why, format_flag_value, plain, safe, variants_text
from ..widgets.keyed_table import Cell, Column, KeyedTable
from ..widgets.shown_reload import ShownReload

if TYPE_CHECKING:
    from opsconsole.engine import Config, FlagAge, FlagDef, FlagState

TYPE_LABEL = {"boolean": "bool", "percentage": "pct", "variant": "var"}
RISK_LABEL = {"high": ("HIGH", "high"), "medium": ("med", "medium"), "low": ("low", "muted")}
DECIDER_STYLE = {"env": "override", "kill_switch": "kill", "parent": "override", "default": "muted"}
STALE_MARK = "~"
"""Drawn before a stale flag's name: a character, so it survives NO_COLOR and the 16-colour theme."""
MAX_INDENT = 8
"""Deeper children are drawn at this depth: a long `depends_on` chain must not push names off screen."""
DAY = 86400.0


def stale_text(age: FlagAge) -> str:
    """The detail line's staleness: "stale: release flag, 69 days old, lifetime 40 days"."""
    days = int((age.age or 0.0) // DAY)
    lifetime = int((age.lifetime or 0.0) // DAY)
    text = f"stale: {age.kind} flag, {days} day{'s' if days != 1 else ''} old, lifetime {lifetime} days"
    if age.source == "first change":
        text += " (age from its first recorded change)"
    return text


def tree_order(names: Sequence[str], parent_of: Callable[[str], str | None]) -> list[tuple[str, int]]:
    """(name, depth) with every child right after its parent (depth-first, file order among
    siblings). A flag whose parent is not among `names` is a root. Iterative, so a 10,000-long
    chain neither recurses nor costs more than one pass; flags on a cycle (config refuses those)
    come last, as roots, rather than vanish."""
    present = set(names)
    children: dict[str, list[str]] = {}
    roots: list[str] = []
    for name in names:
        parent = parent_of(name)
        if parent is not None and parent in present and parent != name:
            children.setdefault(parent, []).append(name)
        else:
            roots.append(name)
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for root in [*roots, *names]:
        if root in seen:
            continue
        stack = [(root, 0)]
        while stack:
            name, depth = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            out.append((name, depth))
            stack.extend((child, depth + 1) for child in reversed(children.get(name, ())))
    return out


def tree_prefix(depth: int) -> str:
    """ "  └ " under a root, two more spaces per level (up to MAX_INDENT)."""
    return "  " * min(depth, MAX_INDENT) + "└ " if depth else ""


def decided_text(state: FlagState) -> str:
    """Which rule decided the value, with the variable or parent that did it."""
    by = state.decided_by
    if by == "env":
        return f"env {state.detail}"
    if by == "parent":
        return f"parent {state.detail}"
    if by == "kill_switch":
        return "kill switch"
    return str(by)


def filter_line(flag: FlagDef, state: FlagState | None, stale: bool = False) -> str:
    """What the filter matches a flag on: its name, description and decided-by, lower-cased, and
    the word "stale" for a stale flag (so `/stale` lists them)."""
    decided = decided_text(state) if state is not None else ""
    line = f"{flag.name}\n{flag.description}\n{decided}"
    return (line + "\nstale" if stale else line).lower()


def flag_environments(config: Config) -> list[str]:
    """The environments the pane switches between: those with a flag target (all when none has)."""
    with_targets = [name for name, env in config.environments.items() if env.flags is not None]
    return with_targets or list(config.environments)


class FlagTable(KeyedTable):
    """The flags, by name (the rows, their cells and styles come from FlagsPane)."""


class FlagsPane(GuardedActions, ShownReload, Vertical, can_focus=False):
    BINDINGS = [
        # `t` edits any flag: booleans and variant flags toggle, a percentage asks for the new value.
        # 80 columns hold these keys with the kill key, Esc (while filtering), Help and Quit; the rest
        # are named in the title line, in `?` and in the palette.
        Binding("t", "toggle_flag", "Toggle", id="toggle-flag"),
        Binding("percent_sign,e", "set_percentage", "Set %", show=False, id="set-percentage"),
        Binding("x", "explain_flag", "Explain", id="explain-flag"),
        Binding("s", "flag_schedules", "Schedules", id="flag-schedules"),
        Binding("slash", "filter", "Filter", id="filter-flags"),
        Binding("escape", "clear_filter", "Clear", id="clear-filter"),
        Binding("h", "flag_history", "History", show=False, id="flag-history"),
        Binding("g", "group_by_parent", "Group by parent", show=False, id="group-flags"),
        Binding(
            "left_square_bracket", "switch_environment(-1)", "Prev env", show=False, id="previous-environment"
        ),
        Binding(
            "right_square_bracket", "switch_environment(1)", "Next env", show=False, id="next-environment"
        ),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = ""
        self.states: dict[str, FlagState] = {}
        self.names: list[str] = []
        """The flags that exist in the shown environment, in file order."""
        self.grouped = False
        """Children listed under their parent (`g`), else file order."""
        self.stale: dict[str, FlagAge] = {}
        """Stale flags of the shown environment: name -> the engine's FlagAge."""
        self._tree: list[tuple[str, int]] | None = None
        self._depth: dict[str, int] = {}
        self._tree_width = 8
        self._name_width = 8
        self._owner_width = 0
        self.haystack: dict[str, str] = {}
        """The text the filter searches per flag: name, description and decided-by, lower-cased."""
        self.filter_text = ""
        self._ages_wanted = True
        self._filter_open = False
        self._failing = False

    def compose(self) -> ComposeResult:
        yield Static(id="flags-title")
        yield Input(
            placeholder="filter: name, description, decided-by or stale · Esc clears", id="flags-filter"
        )
        yield FlagTable(self._layout, self._cells, self._show_detail, id="flag-table")
        yield Static(id="flag-detail")

    def on_mount(self) -> None:
        config = self.ops.engine.config
        # Flag names are letters, digits and '_' (config checks it): len() is their width on screen.
        self._name_width = max(map(len, config.flags), default=8)
        self._owner_width = min(16, max((cell_len(d.owner) for d in config.flags.values()), default=0))
        envs = flag_environments(config)
        try:
            search = self.query_one("#flags-filter", Input)
        except NoMatches:
            return  # the console began closing (q) while this pane mounted: its widgets never came
        search.display = False
        watched = self.ops.environment
        self._set_environment(watched if watched in envs else (envs[0] if envs else ""))
        self.reload()

    def focus(self, scroll_visible: bool = True) -> FlagsPane:
        self.table.focus(scroll_visible)
        return self

    @property
    def table(self) -> FlagTable:
        return self.query_one("#flag-table", FlagTable)

    def _set_environment(self, env: str) -> None:
        """Show `env`'s flags (their values arrive with the next load)."""
        defs = self.ops.engine.config.flags
        self.environment = env
        self.names = [name for name, d in defs.items() if d.in_environment(env)] if env else []
        self.states = {}
        self.stale = {}
        self._tree = None
        self._ages_wanted = True
        if self.grouped:
            self._build_tree()
        self.table.empty_text = "loading…"
        self.apply_filter()

    def _build_tree(self) -> None:
        defs = self.ops.engine.config.flags
        self._tree = tree_order(self.names, lambda name: defs[name].depends_on)
        self._depth = {name: depth for name, depth in self._tree if depth}
        self._tree_width = max(
            (len(name) + len(tree_prefix(depth)) for name, depth in self._tree), default=self._name_width
        )
        self.table.relayout()

    # ------------------------------------------------------------------------------------ data

    def on_engine_changed(self, message: EngineChanged) -> None:
        kind = message.kind
        if kind == "flags":
            envs = message.data.get("environments")
            if envs is None or self.environment in envs:
                self._ages_wanted = True  # a first recorded change can make a flag's age known
                self._changed()
        elif kind == "schedules":
            changed = message.data.get("schedules") or ()
            if any(getattr(s, "environment", None) == self.environment for s in changed) or not changed:
                self._changed()
        elif kind in ("kill_switch", "engine", "poll"):
            self._changed()
        if kind in ("schedules", "poll", "engine"):
            self._tell_schedules_screen()

    def _tell_schedules_screen(self) -> None:
        """Modal screens get no engine events; the open schedules list re-reads on this pane's."""
        from ..screens.flag_schedules import FlagSchedulesScreen

        for screen in self.app.screen_stack:
            if isinstance(screen, FlagSchedulesScreen):
                screen.reload()

    def reload(self) -> None:
        """Read the environment's flag states again. Loads run one at a time: a burst of engine
        events (the kill switch sends two) costs one more load, not one per event."""
        if not self._read_begins():
            return
        ages, self._ages_wanted = self._ages_wanted, False
        self._load(self.environment, self.states, self.stale, ages)

    @work(thread=True, group="flags-reload", exit_on_error=False)
    def _load(
        self, env: str, before: dict[str, FlagState], stale_before: dict[str, FlagAge], ages: bool
    ) -> None:
        # Off the event loop: the store read and the resolution (~20 ms for 10,000 flags), the diff
        # against what is shown, and the filter text of the flags that changed. Ages are read only
        # when asked (a new environment, a flag change): staleness moves in days, not per poll.
        app, engine = self.app, self.ops.engine
        try:
            states = engine.flag_states(env) if env else {}
            stale = stale_before
            if ages:
                stale = {age.name: age for age in engine.stale_flags(env)} if env else {}
            changed = {
                n for n, st in states.items() if (o := before.get(n)) is None or o.__dict__ != st.__dict__
            }
            changed |= stale.keys() ^ stale_before.keys()  # marked or unmarked: repaint, re-filter
            defs = engine.config.flags
            lines = {n: filter_line(defs[n], states[n], n in stale) for n in changed if n in states}
        except Exception as exc:  # the store is unreachable or locked: say so, keep what is shown
            app.call_from_thread(self._loaded, env, None, stale_before, set(), {}, before, exc)
        else:
            app.call_from_thread(self._loaded, env, states, stale, changed, lines, before, None)

    def _loaded(
        self,
        env: str,
        states: dict[str, FlagState] | None,
        stale: dict[str, FlagAge],
        changed: set[str],
        lines: dict[str, str],
        before: dict[str, FlagState],
        error: Exception | None,
    ) -> None:
        again = self._read_ends()
        if env != self.environment or before is not self.states:
            again = True  # switched environment meanwhile: this answer is for what is no longer shown
        elif error is not None:
            if not self._failing:  # once, not on every poll while the store stays away
                self._failing = True
                message = f"could not read the flags of {env}: {error}"
                self.app.notify(safe(message), title="flags", severity="error", markup=False, timeout=8)
        elif states is not None:
            self._failing = False
            self.stale = stale
            self.apply(states, changed, lines, full=not before)
        if again:
            self.reload()

    def apply(
        self, states: dict[str, FlagState], changed: set[str], lines: dict[str, str], full: bool
    ) -> None:
        """Show new states: repaint only if a changed flag is on screen, re-filter only if needed."""
        if full:
            self.states = states
        else:
            # Keep the unchanged (long-lived) state objects: adopting 10,000 new ones on every poll
            # would feed the cyclic collector's full collections, which pause the console.
            for name in changed:
                if name in states:
                    self.states[name] = states[name]
        self.haystack.update(lines)
        table = self.table
        config = self.ops.engine.config
        if not self.environment:
            table.empty_text = f"no environments defined in {safe(config.path)}"
        elif config.flags:
            table.empty_text = f"no flags used in {safe(self.environment)}"
        else:
            table.empty_text = f"no flags defined in {safe(config.path)}"
        if full or (self.filter_text and changed):
            self.apply_filter()  # decided-by may have changed which flags match
        else:
            self._show_title()  # the stale count
        if full:
            table.refresh()
            table.announce(force=True)
        elif changed:
            table.refresh_keys(changed)

    def ordered(self) -> list[str]:
        """The environment's flags in the order shown: file order, or the parent tree."""
        if not self.grouped:
            return self.names
        if self._tree is None:
            self._build_tree()
        assert self._tree is not None
        return [name for name, _ in self._tree]

    def apply_filter(self) -> None:
        needle = self.filter_text.lower()
        names = self.ordered()
        if needle:
            hay = self.haystack  # filled by the first load; until then a flag matches on its name
            keys = [n for n in names if needle in hay.get(n, n)]
            self.table.empty_text = f"no flag matches {safe(self.filter_text)!r} · Esc clears the filter"
        else:
            keys = names
        self.table.show_keys(keys)
        self._show_title()

    # ------------------------------------------------------------------------------------ drawing

    def _layout(self, width: int) -> list[Column]:
        """Name, value, type, decided-by and risk always; owner and description when there is room."""
        name_w = max(12, min(self._tree_width if self.grouped else self._name_width, 40))
        decided_w = 20
        used = 1 + (name_w + 1) + (5 + 1) + (4 + 1) + (decided_w + 1) + (4 + 1)  # a space after each
        if used > width:  # narrow: the name and the decider give up room first, down to a minimum
            short = used - width
            cut = min(short, name_w - 12)
            name_w -= cut
            decided_w = max(10, decided_w - (short - cut))
            used = width
        room = width - used
        grow = min(room, 10 if room < 24 else 6)  # "parent <a long flag name>" is worth a few cells
        decided_w += grow
        room -= grow
        cols: list[Column] = [
            ("name", "Flag", name_w),
            ("value", "Value", 5),
            ("type", "Type", 4),
            ("decided", "Decided by", decided_w),
            ("risk", "Risk", 4),
        ]
        owner_w = max(5, self._owner_width)
        if self._owner_width and room >= owner_w + 1 + 20 + 1:
            cols.append(("owner", "Owner", owner_w))
            room -= owner_w + 1
        if room >= 16:
            cols.append(("description", "Description", room - 1))
        return cols

    def _cells(self, name: str) -> dict[str, Cell]:
        defn = self.ops.engine.config.flags[name]
        st = self.states.get(name)
        risk, risk_style = RISK_LABEL.get(defn.risk, (safe(defn.risk), ""))
        shown = safe(name)
        if self.grouped and name in self._depth:
            shown = tree_prefix(self._depth[name]) + shown
        cells: dict[str, Cell] = {
            "name": (shown, ""),
            "type": (TYPE_LABEL.get(defn.type, safe(defn.type)), "muted"),
            "risk": (risk, risk_style),
            "owner": (safe(defn.owner), "muted"),
            "description": (safe(defn.description), ""),
        }
        if name in self.stale:
            cells["mark"] = (STALE_MARK, "stale")
        if st is None:
            cells["value"] = ("…", "muted")
            cells["decided"] = ("", "")
        else:
            cells["value"] = (format_flag_value(st.value, st.type), "on" if st.value else "off")
            decided = safe(decided_text(st)) + (" (!)" if st.warning else "")
            cells["decided"] = (decided, "warn" if st.warning else DECIDER_STYLE.get(st.decided_by, ""))
        return cells

    def _show_title(self) -> None:
        engine = self.ops.engine
        env = engine.config.environments.get(self.environment)
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(" Flags in ")
        line.append_text(plain(self.environment or "no environment", "bold"))
        if env is not None and env.production:
            line.append(" PRODUCTION", style="bold reverse")
        shown = len(self.table.keys) if self.filter_text else len(self.names)
        line.append(f" · {shown} of {len(self.names)}")
        if self.stale:
            line.append(" · ")
            line.append(f"{STALE_MARK}{len(self.stale)} stale", style="bold")
        if self.filter_text:
            line.append(" · filter ")
            line.append_text(plain(repr(self.filter_text), "bold"))
        hints = ["g flat" if self.grouped else "g tree"]
        if len(flag_environments(engine.config)) > 1:
            hints.append("[ ] env")
        hints.append("h history")
        line.append("  " + "  ".join(hints), style="dim")  # the keys the footer has no room for
        self.query_one("#flags-title", Static).update(line, layout=False)  # fixed height: no relayout

    def _show_detail(self, name: str | None) -> None:
        detail = self.query_one("#flag-detail", Static)
        if name is None:
            detail.update("", layout=False)
            return
        defn = self.ops.engine.config.flags[name]
        st = self.states.get(name)
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append_text(plain(name, "bold"))
        facts = [TYPE_LABEL.get(defn.type, defn.type), f"risk {defn.risk}"]
        if st is not None:
            facts.insert(0, f"{format_flag_value(st.value, st.type)}: {decided_why(st)}")
        if defn.variants:
            facts.append(f"variants {variants_text(defn)}")
        if defn.owner:
            facts.append(f"owner {defn.owner}")
        if defn.depends_on:
            facts.append(f"depends on {defn.depends_on}")
        line.append_text(plain(" · " + " · ".join(facts)))
        line.append("\n")
        age = self.stale.get(name)
        if age is not None:
            line.append_text(plain(stale_text(age), "bold"))
            line.append(" · ")
        if st is not None and st.warning:
            line.append_text(plain(f"warning: {st.warning}", "bold"))
        else:
            line.append_text(plain(defn.description or "no description", "" if defn.description else "dim"))
        detail.update(line, layout=False)  # fixed height: a relayout per cursor move costs ~40 ms

    # ------------------------------------------------------------------------------------ filter

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":  # Esc is only "clear filter" while there is one
            return bool(self.filter_text) or self._filter_open
        return super().check_action(action, parameters)

    def action_filter(self) -> None:
        box = self.query_one("#flags-filter", Input)
        box.display = self._filter_open = True
        box.focus()  # the focus change refreshes the footer's keys (Esc: clear filter)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "flags-filter":
            event.stop()
            self.filter_text = event.value
            self.apply_filter()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "flags-filter":
            event.stop()
            if not event.value:
                event.input.display = self._filter_open = False
            self.table.focus()

    def action_clear_filter(self) -> None:
        if not self._filter_open and not self.filter_text:
            return
        box = self.query_one("#flags-filter", Input)
        box.value = ""  # posts Changed, which re-filters; do it now so the list is right at once
        box.display = self._filter_open = False
        self.filter_text = ""
        self.apply_filter()
        if self.app.focused is self.table:
            self.refresh_bindings()  # Esc no longer clears anything; a focus change would say so itself
        self.table.focus()

    # ------------------------------------------------------------------------------------ actions

    def action_group_by_parent(self) -> None:
        """Toggle the tree order: every child right after its parent, indented."""
        self.grouped = not self.grouped
        if self.grouped and self._tree is None:
            self._build_tree()
        self.table.relayout()
        self.apply_filter()

    def action_switch_environment(self, step: int) -> None:
        envs = flag_environments(self.ops.engine.config)
        if len(envs) < 2:
            self.app.notify("Only one environment has flags", timeout=3)
            return
        at = envs.index(self.environment) if self.environment in envs else 0
        self._set_environment(envs[(at + step) % len(envs)])
        self.reload()

    def selected(self) -> tuple[FlagDef, FlagState] | None:
        name = self.table.selected
        st = self.states.get(name) if name is not None else None
        if name is None or st is None:
            self.app.notify("No flag selected", severity="warning", timeout=3)
            return None
        return self.ops.engine.config.flags[name], st

    def action_toggle_flag(self) -> None:
        # Booleans and variant flags (on/off) toggle; a percentage has no "other" value, so the same
        # dialog asks for the new one. Either way: a reason, and the production/high-risk warning.
        picked = self.selected()
        if picked is not None:
            self._edit(*picked)

    def action_set_percentage(self) -> None:
        # On a boolean or variant flag the same keys open the toggle dialog: "edit this flag" either way.
        picked = self.selected()
        if picked is not None:
            self._edit(*picked)

    def _edit(self, defn: FlagDef, state: FlagState) -> None:
        from ..screens.flag_edit import FlagEditScreen

        env = self.ops.engine.config.environments.get(self.environment)
        screen = FlagEditScreen(self.environment, defn, state, production=bool(env and env.production))
        self.app.push_screen(screen, self._edited)

    def _edited(self, changed: bool | None) -> None:
        if changed:
            self.reload()  # an environment without a flag target publishes no "flags" event

    def action_flag_history(self) -> None:
        from ..screens.flag_history import FlagHistoryScreen

        picked = self.selected()
        if picked is not None:
            defn, st = picked
            self.app.push_screen(FlagHistoryScreen(self.environment, defn, st))

    def action_explain_flag(self) -> None:
        from ..screens.flag_explain import FlagExplainScreen

        picked = self.selected()
        if picked is not None:
            defn, st = picked
            self.app.push_screen(FlagExplainScreen(self.environment, defn, st))

    def action_flag_schedules(self) -> None:
        from ..screens.flag_schedules import FlagSchedulesScreen

        if not self.environment:
            self.app.notify("No environment to schedule flag changes in", severity="warning", timeout=3)
            return
        self.app.push_screen(FlagSchedulesScreen(self.environment, self.table.selected))
