"""What the console knows about its keys, for the command palette (commands.py) and help (screens/help.py).

The keys themselves are the BINDINGS each class declares (the app's and each pane's); this module
reads them the same way for both, with the user's keymap applied, and holds the words both show: a
palette name for terse footer labels and one line of explanation per action. A new pane's key shows
up in the palette and in help without anyone editing either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.actions import parse
from textual.binding import Binding

if TYPE_CHECKING:
    from textual.app import App
    from textual.dom import DOMNode

ACTION_TITLES = {
    "approve": "Approve the selected rollout's phase",
    "promote": "Promote the selected rollout",
    "pause": "Pause the selected rollout",
    "resume": "Resume the selected rollout",
    "abort": "Abort the selected rollout",
    "rollback": "Roll back the selected rollout",
    "tick_checklist": "Tick a checklist item of the selected rollout",
    "detail": "Open the selected rollout's detail",
    "approve_improvement": "Approve the selected improvements",
    "reject_improvement": "Reject the selected improvements",
    "select_improvement": "Select an improvement for a batch decision",
    "rollback_improvement": "Roll back the selected improvements",
    "sync_improvements": "Sync the improvement queue now",
    "improvement_detail": "Open the improvement's detail",
    "switch_queue": "Show another environment's improvement queue",
    "silence_alarm": "Silence the selected Alertmanager alert",
    "unsilence_alarm": "Expire the selected alert's silence",
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
    "approve_improvement": "with a reason; under the quality threshold or over the risk tolerance needs an admin override",
    "reject_improvement": "with a reason (required); applies to every selected row",
    "select_improvement": "marks the row with ●; approve, reject and rollback then apply to all marked rows",
    "rollback_improvement": "with a reason (required): the agent undoes the change",
    "sync_improvements": "asks the agent (or reads the proposals file) now instead of at the next interval",
    "improvement_detail": "description, prediction, thresholds and the monitoring chart",
    "silence_alarm": "on its Alertmanager, for a duration, with a reason (recorded in the audit log)",
    "unsilence_alarm": "ends the silences that quiet it now, with a reason",
}
"""One line of explanation, shown under the palette entry and in the help screen."""

PANE_TITLES = {
    "rollouts": "Rollouts",
    "metrics": "Metrics & Alarms",
    "flags": "Flags",
    "improvements": "Improvements",
    "backups": "Backups",
}
"""The panes in tab order (their keys are 1..5): tab titles, palette and help. Here rather than in
layout.py so that help and the palette do not import the panes."""

NOT_IN_PALETTE = {"command_palette", "start_plan"}
"""The palette itself, and start_plan, which is offered once per plan instead."""


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


def key_display(app: App[object], binding: Binding) -> str:
    return "/".join(
        app.get_key_display(binding.with_key(key.strip(), binding.key_display))
        for key in binding.key.split(",")
    )


def action_name(binding: Binding) -> str:
    return parse(binding.action)[1]


def pane_title(pane_id: str) -> str:
    return PANE_TITLES.get(pane_id, pane_id)
