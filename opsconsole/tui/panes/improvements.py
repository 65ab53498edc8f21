"""Improvements: the review queue for the self-building agent's proposals.

The queue itself (reading proposals over MCP or from a file, approve / reject, deploy and watch)
is not in this release, so the pane says exactly that and what will be configured, instead of
showing rows that do not exist. It is focusable so the console's keys keep working on it.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from ..safe import safe

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


class ImprovementsPane(VerticalScroll, can_focus=True):
    DEFAULT_CSS = """
    ImprovementsPane { padding: 1 2; }
    ImprovementsPane .empty-title { text-style: bold; padding: 0 0 1 0; }
    """

    def compose(self) -> ComposeResult:
        yield Static(EMPTY_TITLE, classes="empty-title")
        yield Static(EMPTY_TEXT, id="improvements-empty", markup=False)
        flags = _governing_flags(self.app.engine.config)  # type: ignore[attr-defined]
        if flags:
            yield Static(
                Text(f"\nFlags that govern the agent here (Flags pane, key 3): {', '.join(flags)}"),
                id="improvements-flags",
            )


def _governing_flags(config: Any) -> list[str]:
    return [safe(name) for name in IMPROVEMENT_FLAGS if name in config.flags]
