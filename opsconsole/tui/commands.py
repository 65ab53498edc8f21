"""The command palette (`:` or ctrl+p): every console action by name.

The list is generated from the same bindings the keys use (the app's and each pane's BINDINGS), and
every entry passes the same `check_action` the keys pass, so a read-only session is offered nothing
that changes state and a pane's new key shows up here without anyone editing this file. Added on
top: one entry per plan, the all-clear (it has no key of its own) and the themes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any, NamedTuple

from textual.actions import parse
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.dom import DOMNode
from textual.markup import escape

from .safe import safe
from .themes import file_themes, switch_theme

ACTION_TITLES = {
    "approve": "Approve the selected rollout's phase",
    "promote": "Promote the selected rollout",
    "pause": "Pause the selected rollout",
    "resume": "Resume the selected rollout",
    "abort": "Abort the selected rollout",
    "rollback": "Roll back the selected rollout",
    "tick_checklist": "Tick a checklist item of the selected rollout",
    "detail": "Open the selected rollout's detail",
    "kill_switch": "Kill switch",
    "help": "Help: keys",
    "quit": "Quit",
}
"""Palette names for actions whose key description is terse (a footer has little room)."""

ACTION_HELP = {
    "kill_switch": "flags to their safe values, every active rollout aborted (works everywhere)",
    "all_clear": "leave the emergency: needs an approver and a reason",
    "approve": "the approver sees every gate's verdict and gives a reason",
    "abort": "stops the rollout; traffic back to stable",
    "rollback": "traffic back to stable, then rolled back",
    "help": "every key of this screen, generated from the bindings",
}
"""One line of explanation, shown under the palette entry and in the help screen."""

NOT_IN_PALETTE = {"command_palette", "start_plan"}
"""The palette itself, and start_plan, which is offered once per plan instead."""


class ConsoleCommand(NamedTuple):
    name: str
    help: str
    run: Callable[[], Awaitable[Any] | Any]


def console_commands(app: Any) -> list[ConsoleCommand]:
    """Every action this session may take now, in the order the palette lists them."""
    return [*_app_commands(app), *_pane_commands(app), *_plan_commands(app), *_theme_commands(app)]


class ConsoleCommands(Provider):
    """The console's command palette provider (registered in OpsConsoleApp.COMMANDS)."""

    async def discover(self) -> Hits:
        for command in console_commands(self.app):
            yield DiscoveryHit(
                Content(safe(command.name)), command.run, text=command.name, help=_help(command)
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in console_commands(self.app):
            score = matcher.match(command.name)
            if score > 0:
                shown = matcher.highlight(escape(safe(command.name)))
                yield Hit(score, shown, command.run, text=command.name, help=_help(command))


def _help(command: ConsoleCommand) -> str:
    return escape(safe(command.help))


# ------------------------------------------------------------------------------------ bindings


def declared_bindings(node: DOMNode) -> list[Binding]:
    """The bindings our own classes declare on `node` (not Textual's scrolling and focus keys), with
    the user's keymap applied."""
    keymap: dict[str, str] = getattr(node.app, "_keymap", {})  # set by App.set_keymap; no public getter
    found: list[Binding] = []
    for cls in type(node).__mro__:
        if not cls.__module__.startswith("opsconsole."):
            continue
        for binding in Binding.make_bindings(vars(cls).get("BINDINGS", ())):
            remapped = keymap.get(binding.id or "")
            found.append(binding.with_key(remapped) if remapped else binding)
    return found


def allowed(node: DOMNode, action: str) -> bool | None:
    """check_action for an action string as a key would run it: False hidden, None shown disabled."""
    _namespace, name, params = parse(action)
    return node.check_action(name, params)


def key_display(app: Any, binding: Binding) -> str:
    return "/".join(
        app.get_key_display(binding.with_key(key.strip(), binding.key_display))
        for key in binding.key.split(",")
    )


def action_name(binding: Binding) -> str:
    return parse(binding.action)[1]


def pane_title(pane_id: str) -> str:
    from .layout import PANES

    for pid, title, _cls in PANES:
        if pid == pane_id:
            return title.split(" ", 1)[-1]
    return pane_id


# ------------------------------------------------------------------------------------ commands


def _app_commands(app: Any) -> Iterator[ConsoleCommand]:
    seen: set[str] = set()
    for binding in declared_bindings(app):
        name = action_name(binding)
        if name in NOT_IN_PALETTE or binding.action in seen or not allowed(app, binding.action):
            continue
        seen.add(binding.action)
        if name == "show_pane":
            title = f"Go to {pane_title(str(parse(binding.action)[2][0]))}"
        else:
            title = ACTION_TITLES.get(name, binding.description)
        explain = ACTION_HELP.get(name, "")
        yield ConsoleCommand(
            title, _join(f"key {key_display(app, binding)}", explain), _runner(app, binding.action, None)
        )
    if allowed(app, "all_clear") and _kill_engaged(app):
        yield ConsoleCommand("All-clear", ACTION_HELP["all_clear"], partial(_open_kill_screen, app))


def _pane_commands(app: Any) -> Iterator[ConsoleCommand]:
    labels: set[str] = set()
    for pane_id, pane in getattr(app, "panes", {}).items():
        title = pane_title(pane_id)
        seen: set[str] = set()
        for binding in declared_bindings(pane):
            name = action_name(binding)
            if name in NOT_IN_PALETTE or binding.action in seen or not allowed(pane, binding.action):
                continue
            seen.add(binding.action)
            key = key_display(app, binding)
            explain = _join(f"{title} pane · key {key}", _selection(pane), ACTION_HELP.get(name, ""))
            label = ACTION_TITLES.get(name) or f"{title}: {binding.description}"
            if label in labels:  # two keys, one description (e.g. previous / next)
                label = f"{label} ({key})"
            labels.add(label)
            yield ConsoleCommand(label, explain, _runner(app, binding.action, pane_id))


def _plan_commands(app: Any) -> Iterator[ConsoleCommand]:
    if not allowed(app, "start_plan"):
        return
    for plan in app.engine.config.plans.values():
        phases = ", ".join(phase.name for phase in plan.phases)
        yield ConsoleCommand(
            f"Start plan: {plan.name}",
            f"{len(plan.phases)} phases: {phases}",
            partial(_start_plan, app, plan.name),
        )


def _theme_commands(app: Any) -> Iterator[ConsoleCommand]:
    for name in file_themes(app):
        yield ConsoleCommand(
            f"Theme: {name}",
            "current theme" if name == app.theme else "switch colours (themes/*.yaml)",
            partial(switch_theme, app, name),
        )


def _runner(app: Any, action: str, pane_id: str | None) -> Callable[[], Awaitable[Any]]:
    async def run() -> None:
        if pane_id is None:
            await app.run_action(action)
            return
        app.action_show_pane(pane_id)  # the action works on what that pane has selected
        await app.run_action(action, app.panes[pane_id])

    return run


def _start_plan(app: Any, plan: str) -> None:
    from .screens.reason import ReasonScreen

    def done(reason: str | None) -> None:
        if reason is not None:
            app.run_engine(
                app.engine.start_rollout, plan, reason, action=f"Start {plan}", done=f"started {plan}"
            )

    app.push_screen(ReasonScreen(f"Start plan {plan}", required=False), done)


def _open_kill_screen(app: Any) -> None:
    from .screens.killswitch import KillSwitchScreen

    app.push_screen(KillSwitchScreen())  # when engaged it is the all-clear dialog


def _kill_engaged(app: Any) -> bool:
    """What the header last showed: reading the store here would block the palette."""
    header = getattr(app, "header", None)
    return bool(header is not None and header.has_class("-killed"))


def _selection(pane: Any) -> str:
    selected = getattr(pane, "selected", None)
    if not callable(selected):
        return ""
    try:
        item = selected()
    except Exception:  # a pane's selection helper must never break the palette
        return ""
    return f"selected: {item.id}" if item is not None and hasattr(item, "id") else ""


def _join(*parts: str) -> str:
    return " · ".join(part for part in parts if part)
