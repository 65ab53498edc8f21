"""`?`: every key of the screen underneath, generated from the live bindings.

Nothing here is written by hand, so the help cannot drift from the keys: the global keys and the
focused widget's keys come from `Screen.active_bindings` (which already leaves out actions whose
`check_action` is False, e.g. every state-changing one in a read-only session), and each pane's keys
from the BINDINGS its class declares, put through the same `check_action`. A key the pane declares
but that is shadowed by the focused widget (Enter on a table) is still listed under the pane.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static, TabbedContent

from ..format import safe
from ..keys import ACTION_HELP, action_name, allowed, declared_bindings, key_display, pane_title


class HelpEntry(NamedTuple):
    key: str
    description: str
    enabled: bool
    """False: the action exists but cannot run right now (check_action gave None); shown dimmed."""
    action: str = ""


class HelpGroup(NamedTuple):
    title: str
    entries: list[HelpEntry]


KILL_ACTION = "kill_switch"
EMERGENCY = "Emergency"
KILL_CONFIRMATION = "confirm with the same key again or Enter; Esc cancels"


def help_groups(app: Any, screen: Screen[Any] | None = None) -> list[HelpGroup]:
    """The keys of `screen` (default: the app's current screen): the kill switch first (on every
    screen, whatever is focused: in an emergency nobody should scroll for it), then the current
    pane, global, the focused widget's navigation keys, then every other pane."""
    screen = screen or app.screen
    panes: dict[str, Any] = getattr(app, "panes", {})
    current = _current_pane(app)
    groups: list[HelpGroup] = []
    listed: set[str] = set()
    kill = _kill_entry(app)
    if kill is not None:
        groups.append(HelpGroup(EMERGENCY, [kill]))
    if current in panes:
        entries = _pane_entries(app, panes[current])
        listed.update(entry.key for entry in entries)
        groups.append(HelpGroup(f"{pane_title(current)} pane", entries))
    glob: list[HelpEntry] = []
    navigation: list[HelpEntry] = []
    for active in screen.active_bindings.values():
        binding = active.binding
        if binding.system or not binding.description or active.node in panes.values() or _unsendable(binding):
            continue
        if binding.action == KILL_ACTION and kill is not None:
            continue
        entry = _entry(app, binding, action_name(binding), active.enabled)
        if isinstance(active.node, App | Screen):
            glob.append(entry)
        elif entry.key not in listed:
            navigation.append(entry)
    ours = {binding.action for binding in declared_bindings(app)}
    glob.sort(key=lambda entry: entry.action not in ours)  # the console's keys before Textual's
    groups.append(HelpGroup("Global", glob))
    if navigation:
        groups.append(HelpGroup("Navigation", navigation))
    for pane_id, pane in panes.items():
        if pane_id != current:
            entries = _pane_entries(app, pane)
            if entries:
                groups.append(HelpGroup(f"{pane_title(pane_id)} pane", entries))
    return groups


def _kill_entry(app: Any) -> HelpEntry | None:
    """The kill key with how it is confirmed, from the app's own bindings (a dialog's active
    bindings leave out the app's, though its priority kill key works there); None when this
    session may not pull it (hidden, as the key is)."""
    for binding in declared_bindings(app):
        if binding.action == KILL_ACTION:
            state = allowed(app, binding.action)
            if state is False:
                return None
            entry = _entry(app, binding, KILL_ACTION, state is not None)
            return entry._replace(description=f"{entry.description}; {KILL_CONFIRMATION}")
    return None


def _unsendable(binding: Binding) -> bool:
    """Keys a terminal never sends (super+c is Textual's desktop copy key)."""
    return binding.key.startswith("super+")


def _current_pane(app: Any) -> str:
    tabs = app.query(TabbedContent)
    return tabs.first().active.removeprefix("tab-") if tabs else ""


def _pane_entries(app: Any, pane: Any) -> list[HelpEntry]:
    entries: list[HelpEntry] = []
    seen: set[str] = set()
    for binding in declared_bindings(pane):
        state = allowed(pane, binding.action)
        if state is False or not binding.description or binding.action in seen:
            continue
        seen.add(binding.action)
        entries.append(_entry(app, binding, action_name(binding), state is not None))
    return entries


def _entry(app: Any, binding: Binding, action: str, enabled: bool) -> HelpEntry:
    explain = ACTION_HELP.get(action)
    description = f"{binding.description}: {explain}" if explain else binding.description
    return HelpEntry(key_display(app, binding), description, enabled, binding.action)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="close-help"),
        Binding("q", "dismiss", "Close", show=False, id="close-help-q"),
        Binding("question_mark", "dismiss", "Close", show=False, id="close-help-question"),
    ]
    DEFAULT_CSS = """
    HelpScreen > .dialog { height: 100%; }
    HelpScreen #help-body { height: 1fr; }
    """

    def __init__(self, groups: list[HelpGroup] | None = None) -> None:
        super().__init__()
        # Read now, while the screen underneath is still the current one.
        self.groups = help_groups(self.app) if groups is None else groups

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -wide"):
            yield Static("Keys", classes="dialog-title")
            with VerticalScroll(id="help-body"):
                yield Static(self.render_groups(), id="help-keys")
            yield Static("Esc, q or ? closes · : or ctrl+p finds any action by name", classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def render_groups(self) -> RenderableType:
        parts: list[RenderableType] = []
        key_width = max((len(e.key) for g in self.groups for e in g.entries), default=1)
        for group in self.groups:
            if not group.entries:
                continue
            table = Table.grid(padding=(0, 2))
            table.add_column(min_width=key_width, no_wrap=True)
            table.add_column()
            for entry in group.entries:
                style = "" if entry.enabled else "dim"
                if group.title == EMERGENCY and entry.enabled:
                    style = "bold red"
                table.add_row(
                    Text(safe(entry.key), style=f"bold {style}"),
                    Text(safe(entry.description) + ("" if entry.enabled else " (not now)"), style=style),
                )
            # The kill key needs no heading: it is the first line, in red.
            title = [] if group.title == EMERGENCY else [Text(group.title, style="bold underline")]
            parts.extend([*title, table, Text("")])
        return Group(*parts)

    def lines(self) -> list[str]:
        """The help as plain `group: key description` lines (for tests and a future `keys` CLI)."""
        return [f"{g.title}: {e.key} {e.description}" for g in self.groups for e in g.entries]
