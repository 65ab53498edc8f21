"""`McpAgent`: the improvement queue's `AgentSource` over MCP (streamable HTTP, a bearer token).

One MCP session per call. Opening one costs an `initialize` round trip and the SDK's `tools/list`
(it checks results against the tool's declared output schema), about 0.1 s on loopback; the queue
calls the agent twice per cycle interval and deploys or rolls back rarely, so that price buys
simplicity: no session to keep alive, expire or re-open after the agent restarts, and no SDK task
group that must be entered and left by the same task while the engine calls from several.

The handshake is the `initialize` one (`mode="legacy"` in the SDK), which every MCP server to date
answers, whatever SDK or language it was built with.

The token is read from the environment variable the settings name at each call, sent as
`Authorization: Bearer`, and kept nowhere: not on the object, not in a message, not in a repr. Every
failure becomes an `AgentError` whose kind tells the queue what to show and whether retrying can
help, and whose message names the tool (and, for a wrong answer, the field).

The SDK (pydantic, httpx2, ...) is imported on the first call, in a worker thread, so neither
importing the engine nor the console's event loop pays for it.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .model import AgentEndpoint, ImprovementSettings
from .protocol import (
    DEPLOY_IMPROVEMENT,
    GET_SYSTEM_STATUS,
    LIST_IMPROVEMENTS,
    QUERY_TELEMETRY_INSIGHTS,
    ROLLBACK_IMPROVEMENT,
    TRIGGER_IMPROVEMENT_CYCLE,
    ActionResult,
    CycleResult,
    ImprovementList,
    ProtocolError,
    SystemStatus,
    TelemetryInsights,
    parse_action,
    parse_cycle,
    parse_insights,
    parse_list,
    parse_system_status,
)
from .source import AgentError, AgentErrorKind, AgentSource

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""An answer announcing a larger body is refused before it is read (a runaway agent must not fill
memory); the protocol's own caps then bound what is kept."""
MAX_REASON = 500
"""How much of an agent's error text goes into a message."""
CLIENT_NAME = "opsconsole"

T = TypeVar("T")

_sdk_ready = False


class McpAgent:
    """An agent that serves the six tools of `protocol` over MCP streamable HTTP.

    `environ` is where the token variable is looked up (the process environment by default).
    """

    def __init__(self, endpoint: AgentEndpoint, *, environ: Mapping[str, str] | None = None) -> None:
        if not endpoint.url.startswith(("http://", "https://")):
            raise ValueError(f"the agent's url must start with http:// or https://, got {endpoint.url!r}")
        if not (isinstance(endpoint.timeout, int | float) and math.isfinite(endpoint.timeout)):
            raise ValueError("the agent's timeout must be a number of seconds")
        if endpoint.timeout <= 0:
            raise ValueError("the agent's timeout must be more than 0 seconds")
        self.endpoint = endpoint
        self.name = f"agent {endpoint.url}"
        self._environ = environ

    def __repr__(self) -> str:
        e = self.endpoint
        return f"McpAgent(url={e.url!r}, token_env={e.token_env!r}, timeout={e.timeout!r})"

    # ------------------------------------------------------------------------------ the six tools

    async def system_status(self) -> SystemStatus:
        return await self._call(GET_SYSTEM_STATUS, {}, parse_system_status)

    async def insights(self, time_range_hours: float) -> TelemetryInsights:
        return await self._call(
            QUERY_TELEMETRY_INSIGHTS, {"time_range_hours": time_range_hours}, parse_insights
        )

    async def trigger_cycle(self, analysis_window_hours: float, max_improvements: int) -> CycleResult:
        args = {"analysis_window_hours": analysis_window_hours, "max_improvements": max_improvements}
        return await self._call(TRIGGER_IMPROVEMENT_CYCLE, args, parse_cycle)

    async def list_improvements(self, since_hours: float | None = None) -> ImprovementList:
        args: dict[str, Any] = {} if since_hours is None else {"since_hours": since_hours}
        return await self._call(LIST_IMPROVEMENTS, args, parse_list)

    async def deploy(self, improvement_id: str) -> ActionResult:
        return await self._action(DEPLOY_IMPROVEMENT, {"improvement_id": improvement_id}, improvement_id)

    async def rollback(self, improvement_id: str, reason: str) -> ActionResult:
        args = {"improvement_id": improvement_id, "reason": reason}
        return await self._action(ROLLBACK_IMPROVEMENT, args, improvement_id)

    async def close(self) -> None:
        """Nothing to close: every call opens and closes its own session."""

    # ------------------------------------------------------------------------------ one call

    async def _action(self, tool: str, args: dict[str, Any], improvement_id: str) -> ActionResult:
        result = await self._call(tool, args, lambda doc: parse_action(doc, tool, improvement_id))
        if not result.ok:
            why = _cap(result.message) or "no reason given"
            raise AgentError("refused", f"{tool} {improvement_id}: the agent did not do it: {why}")
        return result

    async def _call(self, tool: str, args: dict[str, Any], parse: Callable[[object], T]) -> T:
        token = self._token(tool)
        failure: AgentError | None = None
        try:
            return parse(await self._fetch(tool, args, token))
        except ProtocolError as exc:
            failure = AgentError("protocol", str(exc))
        except AgentError as exc:
            failure = exc
        # Raised out here, so that no exception of the SDK's or httpx2's (whose request carries the
        # token in its headers) hangs on the error as its context; and the token never travels in a
        # message, even if a lower layer quoted a header.
        message = str(failure).replace(token, "***") if token else str(failure)
        raise AgentError(failure.kind, message)

    def _token(self, tool: str) -> str | None:
        var = self.endpoint.token_env
        if not var:
            return None
        value = (self._environ if self._environ is not None else os.environ).get(var, "")
        if not value.strip():
            raise AgentError("auth", f"{tool}: the token variable {var} is not set (or is empty)")
        return value.strip()

    async def _fetch(self, tool: str, args: dict[str, Any], token: str | None) -> object:
        await _load_sdk()
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client
        from mcp.types import Implementation

        timeout = float(self.endpoint.timeout)
        statuses: list[int] = []

        async def on_response(response: httpx2.Response) -> None:
            statuses.append(response.status_code)
            size = response.headers.get("content-length", "")
            if size.isdigit() and int(size) > MAX_RESPONSE_BYTES:
                raise _TooLarge(int(size))

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        http = httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(timeout),
            event_hooks={"response": [on_response]},
        )
        try:
            # One deadline for all of it: connecting, the handshake, the call and closing.
            async with asyncio.timeout(timeout), http:
                transport = streamable_http_client(self.endpoint.url, http_client=http)
                client = Client(
                    transport,
                    mode="legacy",
                    cache=None,
                    read_timeout_seconds=timeout,
                    client_info=Implementation(name=CLIENT_NAME, version="1"),
                )
                async with client:
                    result = await client.call_tool(tool, args)
        except Exception as exc:
            failure = self._classify(tool, exc, statuses)
        else:
            return _document(tool, result.structured_content, result.content, result.is_error)
        raise failure

    def _classify(self, tool: str, exc: BaseException, statuses: list[int]) -> AgentError:
        """What went wrong, from the exceptions the SDK raised (often nested in groups) and the HTTP
        statuses seen."""
        import httpx2
        from mcp import MCPError
        from pydantic import ValidationError

        url = self.endpoint.url
        leaves = _leaves(exc)
        refused = [s for s in statuses if s in (401, 403)]
        if refused:
            var = self.endpoint.token_env
            what = f"the token from {var}" if var else "the request (no token is configured)"
            return AgentError("auth", f"{tool}: the agent at {url} refused {what} (HTTP {refused[0]})")
        too_large = next((e for e in leaves if isinstance(e, _TooLarge)), None)
        if too_large is not None:
            return AgentError(
                "protocol",
                f"{tool}: the answer is {too_large.size} bytes, more than the {MAX_RESPONSE_BYTES} accepted",
            )
        if any(isinstance(e, TimeoutError | httpx2.TimeoutException) for e in leaves):
            return AgentError("timeout", f"{tool}: no answer from {url} within {self.endpoint.timeout:g} s")
        if any(isinstance(e, httpx2.TransportError | OSError) for e in leaves):
            first = next(e for e in leaves if isinstance(e, httpx2.TransportError | OSError))
            return AgentError("unreachable", f"{tool}: cannot reach the agent at {url} ({_describe(first)})")
        failed = [s for s in statuses if s >= 400]
        if failed:
            status = failed[0]
            if status >= 500:
                return AgentError("unreachable", f"{tool}: the agent at {url} failed (HTTP {status})")
            if status == 404:
                return AgentError("protocol", f"{tool}: no MCP endpoint at {url} (HTTP 404)")
            return AgentError("protocol", f"{tool}: the agent at {url} answered HTTP {status}")
        for e in leaves:
            if isinstance(e, ValidationError):
                return AgentError("protocol", f"{tool}: the answer is not a valid MCP result: {_pydantic(e)}")
            if isinstance(e, MCPError):
                if e.code == -32601:  # method not found
                    return AgentError("unsupported", f"{tool}: the agent does not serve it ({_cap(str(e))})")
                return AgentError("protocol", f"{tool}: the agent answered an error: {_cap(str(e))}")
            if isinstance(e, RuntimeError) and "structured content" in str(e):
                return AgentError("protocol", f"{tool}: {_cap(str(e))}")
        return AgentError(
            "protocol",
            f"{tool}: unexpected failure talking to {url}: {_describe(leaves[0] if leaves else exc)}",
        )


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


def _document(tool: str, structured: object, content: list[Any], is_error: bool) -> object:
    """The tool's JSON object: structured content if sent, else the one text block holding it."""
    texts = [block.text for block in content if getattr(block, "type", None) == "text"]
    if is_error:
        why = _cap(" ".join(t.strip() for t in texts if t.strip())) or "no reason given"
        raise AgentError("refused", f"{tool}: the agent answered with an error: {why}")
    if structured is not None:
        if not isinstance(structured, dict):
            raise AgentError("protocol", f"{tool}: structuredContent: expected an object")
        return structured
    if len(texts) != 1:
        raise AgentError(
            "protocol",
            f"{tool}: expected structuredContent or one text block holding a JSON object, "
            f"got {len(content)} content block(s), {len(texts)} of them text",
        )
    try:
        doc = json.loads(texts[0])
    except json.JSONDecodeError as exc:
        raise AgentError("protocol", f"{tool}: the text block is not JSON ({exc.msg} at {exc.pos})") from None
    except RecursionError:
        raise AgentError("protocol", f"{tool}: the text block's JSON is nested too deeply") from None
    if not isinstance(doc, dict):
        raise AgentError("protocol", f"{tool}: the text block holds JSON that is not an object")
    return doc


async def _load_sdk() -> None:
    """Import the SDK once, in a worker thread: about a second of imports must not freeze the
    event loop the console draws with. Its loggers get a null handler, so that, in a process that
    configured no logging, its warnings do not reach the terminal through logging's last resort."""
    global _sdk_ready
    if not _sdk_ready:
        # Two first calls at once import twice in parallel: harmless, Python's import lock orders them.
        await asyncio.to_thread(_import_sdk)
        _sdk_ready = True


def _import_sdk() -> None:
    for name in ("mcp", "httpx2"):
        logging.getLogger(name).addHandler(logging.NullHandler())
    for module in ("httpx2", "pydantic", "mcp", "mcp.client.streamable_http"):
        importlib.import_module(module)


def _leaves(exc: BaseException, depth: int = 0) -> list[BaseException]:
    """The exceptions inside `exc`'s groups, each followed by what it was raised from."""
    if depth > 8:
        return []
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner, depth + 1)]
    out = [exc]
    if exc.__cause__ is not None:
        out += _leaves(exc.__cause__, depth + 1)
    return out


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {_cap(text)}" if text else type(exc).__name__


def _pydantic(exc: Any) -> str:
    try:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _cap(f"{where}: {first.get('msg', '')}")
    except Exception:
        return _cap(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _cap(text: str, limit: int = MAX_REASON) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["McpAgent", "AgentError", "AgentErrorKind"]


def open_agent_source(settings: ImprovementSettings, environ: Mapping[str, str]) -> AgentSource:
    """The queue's hook (sources.AGENT_CLIENT): the MCP client for an environment's `agent:`."""
    if settings.agent is None:
        raise ValueError(f"improvements for {settings.environment}: no agent configured")
    return McpAgent(settings.agent, environ=environ)
