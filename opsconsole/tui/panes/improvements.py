"""Improvements: the review queue for the self-building agent's proposals.

The queue itself (reading proposals over MCP or from a file, approve / reject, deploy and watch)
is not in this release, so the pane says exactly that and what will be configured, instead of
showing rows that do not exist. It is focusable so the console's keys keep working on it.

The pause is real already: the kill switch pauses improvements (unless configured not to) and the
all-clear lifts it; the pane says so while it holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from ..bridge import EngineChanged
from ..calls import call
from ..format import safe, utc_time
from ..handle import ConsoleAccess

if TYPE_CHECKING:
    from opsconsole.engine import Config, ImprovementsPause

EMPTY_TITLE = "Improvement queue: not configured in this release"
EMPTY_TEXT = (
    "Proposals from the self-building agent (over MCP: list_improvements, deploy_improvement, "
    "rollback_improvement) or submitted from a file are reviewed here: approve or reject, then "
    "deploy, watch, and keep or roll back.\n\n"
    "This release does not read proposals yet: opsconsole.yaml has no 'improvements:' section, "
    "so there is nothing to review and nothing deploys from this pane.\n\n"
    "To configure when it lands: the agent's MCP endpoint or a proposals file; quality threshold, "
    "risk tolerance, max concurrent, monitoring window, rollback threshold; per-tenant enablement; "
    "observation mode (a human approves every deploy) or autonomous mode."
)
IMPROVEMENT_FLAGS = (
    "enable_self_building",
    "enable_autonomous_improvements",
    "enable_component_generation",
    "enable_improvement_rollback",
)
"""The seed's flags that govern the agent; listed when this configuration defines them."""


class ImprovementsPane(ConsoleAccess, VerticalScroll, can_focus=True):
    DEFAULT_CSS = """
    ImprovementsPane { padding: 1 2; }
    ImprovementsPane .empty-title { text-style: bold; padding: 0 0 1 0; }
    ImprovementsPane #improvements-paused { display: none; text-style: bold; color: $error; padding: 0 0 1 0; }
    ImprovementsPane #improvements-paused.-paused { display: block; }
    """

    def compose(self) -> ComposeResult:
        yield Static(EMPTY_TITLE, classes="empty-title")
        yield Static(id="improvements-paused", markup=False)
        yield Static(EMPTY_TEXT, id="improvements-empty", markup=False)
        flags = _governing_flags(self.ops.engine.config)
        if flags:
            yield Static(
                Text(f"\nFlags that govern the agent here (Flags pane, key 3): {', '.join(flags)}"),
                id="improvements-flags",
            )

    def on_mount(self) -> None:
        self.reload()

    def on_engine_changed(self, message: EngineChanged) -> None:
        if message.kind in ("kill_switch", "poll", "engine"):
            self.reload()

    def reload(self) -> None:
        call(
            self,
            self.ops.engine.improvements_paused,
            action="Reading the improvements pause",
            done=self.show_pause,
            group="improvements-pause",
            exclusive=True,
            quiet=True,
        )

    def show_pause(self, pause: ImprovementsPause) -> None:
        line = self.query_one("#improvements-paused", Static)
        line.set_class(pause.paused, "-paused")
        if pause.paused:
            when = f" at {utc_time(pause.at)} UTC" if pause.at is not None else ""
            who = "the kill switch" if pause.by in ("", "kill_switch") else pause.by
            line.update(safe(f"Paused by {who}{when}: nothing deploys from here until the all-clear."))


def _governing_flags(config: Config) -> list[str]:
    return [safe(name) for name in IMPROVEMENT_FLAGS if name in config.flags]
