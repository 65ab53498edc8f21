"""Who may do what: the one place that decides it.

Panes, the CLI and the runner ask here; nothing else compares roles. Read-only sessions are refused
every action that changes state, whatever the user's role, so an observer's console cannot be talked
into a change by a forged key press or command.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Actor, Config, Role

ACTIONS: dict[str, Role] = {
    "rollout.start": Role.OPERATOR,
    "rollout.pause": Role.OPERATOR,
    "rollout.resume": Role.OPERATOR,
    "rollout.promote": Role.OPERATOR,
    "rollout.abort": Role.OPERATOR,
    "rollout.rollback": Role.OPERATOR,
    "rollout.approve": Role.APPROVER,
    "rollout.override": Role.ADMIN,
    "checklist.tick": Role.OPERATOR,
    "flag.set": Role.OPERATOR,
    "kill_switch.engage": Role.OPERATOR,
    "kill_switch.all_clear": Role.APPROVER,
    "alarm.ack": Role.OPERATOR,
    "alarm.silence": Role.OPERATOR,
    "alarm.unsilence": Role.OPERATOR,
    "improvement.approve": Role.APPROVER,
    "improvement.reject": Role.APPROVER,
    "improvement.override": Role.ADMIN,
    "improvement.rollback": Role.OPERATOR,
    "improvement.sync": Role.OPERATOR,
    "improvement.resume_autonomous": Role.ADMIN,
    "backup.run": Role.OPERATOR,
    "backup.verify": Role.OPERATOR,
    "backup.prune": Role.OPERATOR,
    "backup.restore": Role.OPERATOR,
    "backup.restore_overwrite": Role.APPROVER,
    "deploy.run": Role.OPERATOR,
}
"""Every action that changes state, with the least role that may take it."""


class Forbidden(Exception):
    """The actor may not take this action; the message says who, what and why."""


@dataclass(frozen=True)
class Authz:
    default_role: Role
    users: dict[str, Role]
    read_only: bool = False

    @classmethod
    def from_config(cls, config: Config, read_only: bool = False) -> Authz:
        return cls(config.default_role, dict(config.users), read_only)

    def role_of(self, user: str) -> Role:
        return self.users.get(user, self.default_role)

    def why_not(self, actor: Actor, action: str) -> str | None:
        """None when allowed, else the reason it is refused."""
        needed = ACTIONS.get(action)
        if needed is None:
            return f"unknown action {action!r}"
        if self.read_only:
            return f"{action} refused: this session is read-only"
        role = self.role_of(actor.user)
        if role < needed:
            return f"{action} refused: {actor.user} is {role.name.lower()}, needs {needed.name.lower()}"
        return None

    def allowed(self, actor: Actor, action: str) -> bool:
        return self.why_not(actor, action) is None

    def require(self, actor: Actor, action: str) -> Role:
        why = self.why_not(actor, action)
        if why is not None:
            raise Forbidden(why)
        return self.role_of(actor.user)
