"""Every console action that changes state, declared once with the engine right it needs.

Panes and screens do not decide who may do what: `GuardedActions.check_action` asks the engine's
authz (through the facade) for every action listed here, so read-only sessions and roles hide the
same keys everywhere. An action missing from this table is a read-only action by definition.
"""

from __future__ import annotations

from .handle import ConsoleAccess

RIGHTS: dict[str, str] = {
    "approve": "rollout.approve",
    "promote": "rollout.promote",
    "pause": "rollout.pause",
    "resume": "rollout.resume",
    "abort": "rollout.abort",
    "rollback": "rollout.rollback",
    "start_plan": "rollout.start",
    "tick_checklist": "checklist.tick",
    "toggle_flag": "flag.set",
    "set_percentage": "flag.set",
    "schedule_flag": "flag.set",
    "cancel_schedule": "flag.set",
    "ack_alarm": "alarm.ack",
    "silence_alarm": "alarm.silence",
    "unsilence_alarm": "alarm.unsilence",
    "kill_switch": "kill_switch.engage",
    "all_clear": "kill_switch.all_clear",
    "approve_improvement": "improvement.approve",
    "reject_improvement": "improvement.reject",
    "rollback_improvement": "improvement.rollback",
    "sync_improvements": "improvement.sync",
}
"""Console action name -> the engine action (authz.ACTIONS) it performs."""


class GuardedActions(ConsoleAccess):
    """Mixin for App, Screen and Widget classes: hides actions the session may not take."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        right = RIGHTS.get(action)
        if right is None:
            return True
        if not self.ops.opened:
            # The workspace is still opening: only the kill key works (it waits for the engine).
            return action == "kill_switch"
        return bool(self.ops.engine.can(right))
