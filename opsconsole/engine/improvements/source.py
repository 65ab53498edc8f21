"""Where proposals come from and where deploys and rollbacks go: an agent over MCP, or a file.

The queue talks to an `AgentSource` only. Every call is bounded in time by the source itself and
fails with `AgentError`, whose `kind` says what the queue should show and whether retrying can help;
its message never carries the token.
"""

from __future__ import annotations

from typing import Literal, Protocol

from .protocol import ActionResult, CycleResult, ImprovementList, SystemStatus, TelemetryInsights

AgentErrorKind = Literal["unreachable", "timeout", "auth", "protocol", "refused", "unsupported"]


class AgentError(Exception):
    """The agent did not do what was asked.

    - `unreachable`, `timeout`: the network or the agent is down or slow; retry with backoff.
    - `auth`: the token was refused (or is not set); retrying will not help until it is fixed.
    - `protocol`: the answer was not the documented shape (malformed JSON-RPC, wrong types,
      duplicate ids); the message names the field.
    - `refused`: the agent answered that it would not (`ok: false`); the message is its reason.
    - `unsupported`: this source cannot do it (a proposals file cannot deploy).
    """

    def __init__(self, kind: AgentErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: AgentErrorKind = kind

    @property
    def retryable(self) -> bool:
        return self.kind in ("unreachable", "timeout", "protocol")


class AgentSource(Protocol):
    name: str
    """What the console shows as the source: `agent http://127.0.0.1:8004/mcp`, `file proposals.yaml`."""

    async def system_status(self) -> SystemStatus: ...

    async def insights(self, time_range_hours: float) -> TelemetryInsights: ...

    async def trigger_cycle(self, analysis_window_hours: float, max_improvements: int) -> CycleResult: ...

    async def list_improvements(self, since_hours: float | None = None) -> ImprovementList: ...

    async def deploy(self, improvement_id: str) -> ActionResult: ...

    async def rollback(self, improvement_id: str, reason: str) -> ActionResult: ...

    async def close(self) -> None: ...
