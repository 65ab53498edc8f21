"""The queue's small shared state in the store's kv table, and the views built from it.

Kept in the store (not in the runner's memory) so the CLI and every console see what the running
engine saw: when it last synced, whether the agent answered, why not.

- `improvements.sync.<env>`: the source's state (SourceState).
- `improvements.autonomy_suspended` (written by the kill switch) and
  `improvements.autonomy_resumed.<env>` (written by resume_autonomous): autonomous mode is suspended
  while the last suspension is newer than the environment's last resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..killswitch import AUTONOMY_SUSPENDED_KEY, IMPROVEMENTS_KEY, ImprovementsPause, improvements_pause

BACKOFF_BASE = 5.0
BACKOFF_MAX = 600.0


def backoff(failures: int) -> float:
    """Seconds to wait after `failures` failed attempts in a row: 5, 10, 20 ... up to 10 minutes."""
    return float(min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, failures - 1)))


def sync_key(environment: str) -> str:
    return f"improvements.sync.{environment}"


def resumed_key(environment: str) -> str:
    return f"improvements.autonomy_resumed.{environment}"


@dataclass(frozen=True)
class SourceState:
    agent_state: str = "never"
    """ok | unreachable | timeout | auth | protocol | refused | unsupported | off | never"""
    agent_error: str = ""
    last_sync_at: float | None = None
    """The last sync that succeeded."""
    last_attempt_at: float | None = None
    next_sync_at: float | None = None
    failures: int = 0

    @classmethod
    def load(cls, stored: Any) -> SourceState:
        if not isinstance(stored, dict):
            return cls()
        known = {k: v for k, v in stored.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known)
        except TypeError:
            return cls()

    def dump(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Suspension:
    suspended: bool
    at: float | None = None
    by: str = ""
    reason: str = ""


def suspension(tx: Any, environment: str) -> Suspension:
    stopped = tx.get_kv(AUTONOMY_SUSPENDED_KEY)
    if not isinstance(stopped, dict) or not isinstance(stopped.get("at"), int | float):
        return Suspension(False)
    resumed = tx.get_kv(resumed_key(environment))
    resumed_at = resumed.get("at") if isinstance(resumed, dict) else None
    if isinstance(resumed_at, int | float) and resumed_at >= stopped["at"]:
        return Suspension(False)
    return Suspension(True, float(stopped["at"]), str(stopped.get("by", "")), str(stopped.get("reason", "")))


def paused(tx: Any) -> ImprovementsPause:
    return improvements_pause(tx.get_kv(IMPROVEMENTS_KEY))


@dataclass(frozen=True)
class QueueMode:
    """How one environment's queue runs right now, for the pane's header and `improvements list`."""

    environment: str
    source: str
    """What proposals come from: `agent http://127.0.0.1:8004/mcp`, `file proposals.yaml`."""
    autonomous: bool
    """Effective: configured on, the flag enable_autonomous_improvements on, not suspended by the
    kill switch, not paused. False: observation mode (nothing deploys without a person)."""
    configured_autonomous: bool
    autonomous_suspended: bool
    """The kill switch suspended it; only resume_autonomous lifts it (not the all-clear)."""
    paused: ImprovementsPause
    self_building: bool
    """The flag enable_self_building: off, nothing syncs or deploys."""
    component_generation: bool
    rollback_enabled: bool
    last_sync_at: float | None
    next_sync_at: float | None
    agent_state: str
    agent_error: str
    live: int
    """Deploying plus monitoring."""
    max_concurrent: int


@dataclass(frozen=True)
class SyncResult:
    environments: tuple[str, ...] = ()
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: tuple[str, ...] = ()
    """One line per environment whose source failed (`production: timeout: ...`)."""
    seconds: float = 0.0

    def __add__(self, other: SyncResult) -> SyncResult:
        return SyncResult(
            self.environments + other.environments,
            self.new + other.new,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.errors + other.errors,
            self.seconds + other.seconds,
        )
