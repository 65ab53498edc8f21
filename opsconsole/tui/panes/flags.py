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
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static

from ..actions import GuardedActions
from ..bridge import EngineChanged
from ..present import decided_why, format_flag_value, variants_text
from ..safe import plain, safe

Column = tuple[str, str, int]
"""(key, label, width in cells)."""
Cell = tuple[str, str]
"""(text, style name): the style name is a FlagTable component class suffix, or ""."""

TYPE_LABEL = {"boolean": "bool", "percentage": "pct", "variant": "var"}
RISK_LABEL = {"high": ("HIGH", "high"), "medium": ("med", "medium"), "low": ("low", "muted")}
DECIDER_STYLE = {"env": "override", "kill_switch": "kill", "parent": "override", "default": "muted"}
STALE_MARK = "~"
"""Drawn before a stale flag's name: a character, so it survives NO_COLOR and the 16-colour theme."""
MAX_INDENT = 8
"""Deeper children are drawn at this depth: a long `depends_on` chain must not push names off screen."""
DAY = 86400.0


def stale_text(age: Any) -> str:
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


def decided_text(state: Any) -> str:
    """Which rule decided the value, with the variable or parent that did it."""
    by = state.decided_by
    if by == "env":
        return f"env {state.detail}"
    if by == "parent":
        return f"parent {state.detail}"
    if by == "kill_switch":
        return "kill switch"
    return str(by)


def filter_line(flag: Any, state: Any, stale: bool = False) -> str:
    """What the filter matches a flag on: its name, description and decided-by, lower-cased, and
    the word "stale" for a stale flag (so `/stale` lists them)."""
    decided = decided_text(state) if state is not None else ""
    line = f"{flag.name}\n{flag.description}\n{decided}"
    return (line + "\nstale" if stale else line).lower()


def flag_environments(config: Any) -> list[str]:
    """The environments the pane switches between: those with a flag target (all when none has)."""
    with_targets = [name for name, env in config.environments.items() if env.flags is not None]
    return with_targets or list(config.environments)


def _fit(text: str, width: int) -> str:
    """Exactly `width` cells: padded, or cut with an ellipsis."""
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return text + " " * (width - cell_len(text))
    return set_cell_size(text, width - 1) + "…"


class FlagTable(ScrollView, can_focus=True):
    """Rows keyed by name, drawn on demand: cost per repaint is the rows on screen, not the rows held.

    The owner supplies `layout(width) -> columns`, `cells(key) -> {column: (text, style)}` and
    `highlighted(key)`, called when the row under the cursor changes; the table keeps only the ordered
    keys in view and the cursor. A "mark" cell, if given, is drawn in the one-cell margin before the
    first column.
    """

    COMPONENT_CLASSES = {
        "flag-table--header",
        "flag-table--cursor",
        "flag-table--high",
        "flag-table--medium",
        "flag-table--muted",
        "flag-table--on",
        "flag-table--off",
        "flag-table--override",
        "flag-table--kill",
        "flag-table--warn",
        "flag-table--stale",
    }
    DEFAULT_CSS = """
    FlagTable {
        height: 1fr;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
        background: $surface;
        & > .flag-table--header { text-style: bold; background: $panel; }
        & > .flag-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .flag-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .flag-table--high { color: $error; text-style: bold; }
        & > .flag-table--medium { color: $warning; }
        & > .flag-table--muted { color: $text-muted; }
        & > .flag-table--on { color: $success; text-style: bold; }
        & > .flag-table--off { color: $text-muted; }
        & > .flag-table--override { color: $warning; text-style: bold; }
        & > .flag-table--kill { color: $error; text-style: bold reverse; }
        & > .flag-table--warn { color: $warning; text-style: italic; }
        & > .flag-table--stale { color: $warning; text-style: bold; }
    }
    """
    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "move_to(0)", "First", show=False),
        Binding("end", "move_to(-1)", "Last", show=False),
    ]

    def __init__(
        self,
        layout: Callable[[int], Sequence[Column]],
        cells: Callable[[str], dict[str, Cell]],
        highlighted: Callable[[str | None], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._layout = layout
        self._cells = cells
        # Called directly rather than by message: a message would paint the detail one frame later.
        self._highlighted_cb = highlighted
        self.keys: list[str] = []
        self.cursor = 0
        self.empty_text = "loading…"
        self._columns: Sequence[Column] = ()
        self._columns_width = -1
        self._highlighted: str | None = None

    # ------------------------------------------------------------------------------------ data

    @property
    def selected(self) -> str | None:
        return self.keys[self.cursor] if self.keys else None

    def show_keys(self, keys: list[str]) -> None:
        """Show these rows in this order; the cursor stays on the same key when it is still there."""
        keep = self.selected
        self.keys = keys
        if keep is not None and keys and (self.cursor >= len(keys) or keys[self.cursor] != keep):
            try:
                self.cursor = keys.index(keep)
            except ValueError:
                self.cursor = min(self.cursor, len(keys) - 1)
        self.cursor = max(0, min(self.cursor, len(keys) - 1))
        self.virtual_size = Size(self.scrollable_content_region.width, len(keys) + 1)
        self._scroll_to_cursor()
        self.refresh()
        self.announce()

    def refresh_keys(self, changed: set[str]) -> None:
        """Repaint if any of these rows is on screen (a changed row off screen costs nothing)."""
        top = int(self.scroll_y)
        for row, key in enumerate(self.keys[top : top + self.scrollable_content_region.height], start=top):
            if key in changed:
                # Only that line: refresh() would repaint the scrollbar too, a run of per-cell
                # escapes down the whole height, on every tick that touches a flag on screen.
                self.refresh_lines(row + 1)  # virtual line = row + 1 (the header)
        if self.selected in changed:
            self.announce(force=True)

    # ------------------------------------------------------------------------------------ cursor

    def action_cursor(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self.move_to(self.cursor + direction * max(1, self.scrollable_content_region.height - 2))

    def action_move_to(self, index: int) -> None:
        """Row `index`; negative counts from the end."""
        self.move_to(index if index >= 0 else len(self.keys) + index)

    def move_to(self, index: int) -> None:
        if not self.keys:
            return
        index = max(0, min(index, len(self.keys) - 1))
        if index != self.cursor:
            old, self.cursor = self.cursor, index
            self.refresh_lines(old + 1)  # virtual line = row + 1 (the header); a scroll repaints all
            self.refresh_lines(index + 1)
        self._scroll_to_cursor()
        self.announce()

    def _scroll_to_cursor(self) -> None:
        rows = max(1, self.scrollable_content_region.height - 1)  # minus the header line
        top = int(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + rows:
            self.scroll_to(y=self.cursor - rows + 1, animate=False, immediate=True)

    def announce(self, force: bool = False) -> None:
        if force or self.selected != self._highlighted:
            self._highlighted = self.selected
            self._highlighted_cb(self.selected)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and offset.y >= 1:
            self.move_to(int(self.scroll_y) + offset.y - 1)

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.keys) + 1)
        self._scroll_to_cursor()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # ------------------------------------------------------------------------------------ drawing

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"flag-table--{name}", partial=True)

    def relayout(self) -> None:
        """Ask the owner for the columns again (what they hold changed width), and repaint."""
        self._columns_width = -1
        self.refresh()

    def columns(self, width: int) -> Sequence[Column]:
        if width != self._columns_width:
            self._columns = self._layout(width)
            self._columns_width = width
        return self._columns

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        columns = self.columns(width)
        if y == 0:
            style = base + self._style("header")
            return self._strip([(label, "") for _, label, _ in columns], columns, style, width)
        index = int(self.scroll_y) + y - 1
        if index >= len(self.keys):
            if index == 0:
                return Strip([Segment(_fit(" " + self.empty_text, width), base + self._style("muted"))])
            return Strip.blank(width, base)
        cells = self._cells(self.keys[index])
        row = [cells.get(key, ("", "")) for key, _, _ in columns]
        mark = cells.get("mark", (" ", ""))
        if index == self.cursor:
            style = base + self._style("cursor")
            return self._strip([(text, "") for text, _ in row], columns, style, width, (mark[0], ""))
        return self._strip(row, columns, base, width, mark)

    def _strip(
        self, row: list[Cell], columns: Sequence[Column], base: Style, width: int, mark: Cell = (" ", "")
    ) -> Strip:
        text, name = mark
        segments = [Segment(_fit(text, 1), base + self._style(name) if name else base)]
        for (text, name), (_, _, cells) in zip(row, columns, strict=True):
            segments.append(Segment(_fit(text, cells), base + self._style(name) if name else base))
            segments.append(Segment(" ", base))
        return Strip(segments).crop_extend(0, width, base)


class FlagsPane(GuardedActions, Vertical, can_focus=False):
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
        self.states: dict[str, Any] = {}
        self.names: list[str] = []
        """The flags that exist in the shown environment, in file order."""
        self.grouped = False
        """Children listed under their parent (`g`), else file order."""
        self.stale: dict[str, Any] = {}
        """Stale flags of the shown environment: name -> the engine's FlagAge."""
        self._tree: list[tuple[str, int]] | None = None
        self._depth: dict[str, int] = {}
        self._tree_width = 8
        self._name_width = 8
        self._owner_width = 0
        self.haystack: dict[str, str] = {}
        """The text the filter searches per flag: name, description and decided-by, lower-cased."""
        self.filter_text = ""
        self._shown = False
        self._reload_on_show = False
        self._ages_wanted = True
        self._loading = False
        self._again = False
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
        app: Any = self.app
        config = app.engine.config
        # Flag names are letters, digits and '_' (config checks it): len() is their width on screen.
        self._name_width = max(map(len, config.flags), default=8)
        self._owner_width = min(16, max((cell_len(d.owner) for d in config.flags.values()), default=0))
        envs = flag_environments(config)
        self.query_one("#flags-filter", Input).display = False
        self._set_environment(app.environment if app.environment in envs else (envs[0] if envs else ""))
        self.reload()

    def focus(self, scroll_visible: bool = True) -> FlagsPane:
        self.table.focus(scroll_visible)
        return self

    @property
    def table(self) -> FlagTable:
        return self.query_one("#flag-table", FlagTable)

    def _set_environment(self, env: str) -> None:
        """Show `env`'s flags (their values arrive with the next load)."""
        defs = self.app.engine.config.flags  # type: ignore[attr-defined]
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
        defs = self.app.engine.config.flags  # type: ignore[attr-defined]
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

    def _changed(self) -> None:
        # A hidden pane only remembers; it reloads when shown (on_show).
        if self._shown:
            self.reload()
        else:
            self._reload_on_show = True

    def on_show(self) -> None:
        self._shown = True
        if self._reload_on_show:
            self._reload_on_show = False
            self.reload()

    def on_hide(self) -> None:
        self._shown = False

    def reload(self) -> None:
        """Read the environment's flag states again. Loads run one at a time: a burst of engine
        events (the kill switch sends two) costs one more load, not one per event."""
        if self._loading:
            self._again = True
            return
        self._loading = True
        ages, self._ages_wanted = self._ages_wanted, False
        self._load(self.environment, self.states, self.stale, ages)

    @work(thread=True, group="flags-reload", exit_on_error=False)
    def _load(self, env: str, before: dict[str, Any], stale_before: dict[str, Any], ages: bool) -> None:
        # Off the event loop: the store read and the resolution (~20 ms for 10,000 flags), the diff
        # against what is shown, and the filter text of the flags that changed. Ages are read only
        # when asked (a new environment, a flag change): staleness moves in days, not per poll.
        app: Any = self.app
        try:
            states = app.engine.flag_states(env) if env else {}
            stale = stale_before
            if ages:
                stale = {age.name: age for age in app.engine.stale_flags(env)} if env else {}
            changed = {
                n for n, st in states.items() if (o := before.get(n)) is None or o.__dict__ != st.__dict__
            }
            changed |= stale.keys() ^ stale_before.keys()  # marked or unmarked: repaint, re-filter
            defs = app.engine.config.flags
            lines = {n: filter_line(defs[n], states[n], n in stale) for n in changed if n in states}
        except Exception as exc:  # the store is unreachable or locked: say so, keep what is shown
            app.call_from_thread(self._loaded, env, None, stale_before, set(), {}, before, exc)
        else:
            app.call_from_thread(self._loaded, env, states, stale, changed, lines, before, None)

    def _loaded(
        self,
        env: str,
        states: dict[str, Any] | None,
        stale: dict[str, Any],
        changed: set[str],
        lines: dict[str, str],
        before: dict[str, Any],
        error: Exception | None,
    ) -> None:
        self._loading = False
        again, self._again = self._again, False
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

    def apply(self, states: dict[str, Any], changed: set[str], lines: dict[str, str], full: bool) -> None:
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
        config = self.app.engine.config  # type: ignore[attr-defined]
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
        defn = self.app.engine.config.flags[name]  # type: ignore[attr-defined]
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
        engine: Any = self.app.engine  # type: ignore[attr-defined]
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
        defn = self.app.engine.config.flags[name]  # type: ignore[attr-defined]
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
        envs = flag_environments(self.app.engine.config)  # type: ignore[attr-defined]
        if len(envs) < 2:
            self.app.notify("Only one environment has flags", timeout=3)
            return
        at = envs.index(self.environment) if self.environment in envs else 0
        self._set_environment(envs[(at + step) % len(envs)])
        self.reload()

    def selected(self) -> tuple[Any, Any] | None:
        name = self.table.selected
        st = self.states.get(name) if name is not None else None
        if name is None or st is None:
            self.app.notify("No flag selected", severity="warning", timeout=3)
            return None
        return self.app.engine.config.flags[name], st  # type: ignore[attr-defined]

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

    def _edit(self, defn: Any, state: Any) -> None:
        from ..screens.flag_edit import FlagEditScreen

        env = self.app.engine.config.environments.get(self.environment)  # type: ignore[attr-defined]
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
