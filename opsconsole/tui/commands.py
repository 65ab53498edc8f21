"""The command palette (`:` or ctrl+p): every console action by name.

The list is generated from the same bindings the keys use (the app's and each pane's BINDINGS), and
every entry passes the same `check_action` the keys pass, so a read-only session is offered nothing
that changes state and a pane's new key shows up here without anyone editing this file. Added on
top: one entry per plan, the all-clear (it has no key of its own) and the themes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from textual.actions import parse
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.markup import escape

from .format import safe
from .handle import ops_of
from .keys import (
    ACTION_HELP,
    ACTION_TITLES,
    NOT_IN_PALETTE,
    action_name,
    allowed,
    declared_bindings,
    key_display,
    pane_title,
)
from .themes import file_themes, switch_theme

if TYPE_CHECKING:
    from textual.app import App


class ConsoleCommand(NamedTuple):
    name: str
    help: str
    run: Callable[[], Awaitable[Any] | Any]


def console_commands(app: App[Any]) -> list[ConsoleCommand]:
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


# ------------------------------------------------------------------------------------ commands


def _app_commands(app: App[Any]) -> Iterator[ConsoleCommand]:
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


def _pane_commands(app: App[Any]) -> Iterator[ConsoleCommand]:
    labels: set[str] = set()
    for pane_id, pane in ops_of(app).panes.items():
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


def _plan_commands(app: App[Any]) -> Iterator[ConsoleCommand]:
    if not allowed(app, "start_plan"):
        return
    for plan in ops_of(app).engine.config.plans.values():
        phases = ", ".join(phase.name for phase in plan.phases)
        yield ConsoleCommand(
            f"Start plan: {plan.name}",
            f"{len(plan.phases)} phases: {phases}",
            partial(_start_plan, app, plan.name),
        )


def _theme_commands(app: App[Any]) -> Iterator[ConsoleCommand]:
    for name in file_themes(app):
        yield ConsoleCommand(
            f"Theme: {name}",
            "current theme" if name == app.theme else "switch colours (themes/*.yaml)",
            partial(switch_theme, app, name),
        )


def _runner(app: App[Any], action: str, pane_id: str | None) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        if pane_id is None:
            await app.run_action(action)
            return
        ops = ops_of(app)
        ops.action_show_pane(pane_id)  # the action works on what that pane has selected
        await app.run_action(action, ops.panes[pane_id])

    return run


def _start_plan(app: App[Any], plan: str) -> None:
    from .screens.reason import ReasonScreen

    def done(reason: str | None) -> None:
        if reason is not None:
            ops = ops_of(app)
            ops.run_engine(
                ops.engine.start_rollout, plan, reason, action=f"Start {plan}", done=f"started {plan}"
            )

    app.push_screen(ReasonScreen(f"Start plan {plan}", required=False), done)


def _open_kill_screen(app: App[Any]) -> None:
    from .screens.killswitch import KillSwitchScreen

    app.push_screen(KillSwitchScreen())  # when engaged it is the all-clear dialog


def _kill_engaged(app: App[Any]) -> bool:
    """What the header last showed: reading the store here would block the palette."""
    header = getattr(app, "header", None)
    return bool(header is not None and header.has_class("-killed"))


def _selection(pane: object) -> str:
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
