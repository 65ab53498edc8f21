"""Which AgentSource serves an environment: its proposals file, or its agent over MCP.

The MCP client is a separate module loaded only when an environment names an agent, so the console
starts without the MCP SDK imported (and works without it installed, with the agent shown as
unavailable).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from .model import ImprovementSettings
from .protocol import ActionResult, CycleResult, ImprovementList, SystemStatus, TelemetryInsights
from .source import AgentError, AgentSource

SourceFactory = Callable[[ImprovementSettings, Mapping[str, str]], AgentSource]

AGENT_CLIENT = "opsconsole.engine.improvements.mcpclient:open_agent_source"
"""`module:function` building the MCP client: (settings, environ) -> AgentSource."""


def open_source(settings: ImprovementSettings, environ: Mapping[str, str]) -> AgentSource:
    if settings.proposals_file is not None:
        from .filesource import FileSource

        return FileSource(settings)
    if settings.agent is None:
        return Unavailable(settings.environment, "no agent or proposals file configured")
    module, _, name = AGENT_CLIENT.partition(":")
    try:
        factory: SourceFactory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        return Unavailable(f"agent {settings.agent.url}", f"the MCP agent client is not available: {exc}")
    return factory(settings, environ)


class Unavailable:
    """A source that cannot be reached at all; every call says why."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why

    def _fail(self) -> AgentError:
        return AgentError("unsupported", self.why)

    async def system_status(self) -> SystemStatus:
        raise self._fail()

    async def insights(self, time_range_hours: float) -> TelemetryInsights:
        raise self._fail()

    async def trigger_cycle(self, analysis_window_hours: float, max_improvements: int) -> CycleResult:
        raise self._fail()

    async def list_improvements(self, since_hours: float | None = None) -> ImprovementList:
        raise self._fail()

    async def deploy(self, improvement_id: str) -> ActionResult:
        raise self._fail()

    async def rollback(self, improvement_id: str, reason: str) -> ActionResult:
        raise self._fail()

    async def close(self) -> None:
        return None
