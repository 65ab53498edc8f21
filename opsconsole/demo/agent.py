"""The demo's self-building agent: a real MCP server (the official SDK, streamable HTTP at /mcp) on
127.0.0.1 that watches the demo service and proposes changes to it.

It serves the six tools of README's "Improvement agent protocol" the way an agent team would build
them: from the documented JSON shapes, not from the console's own code. A bearer token, random per
start, guards /mcp (a request without it gets 401); GET /health answers without one.

Its proposals are real: deploying one changes how the demo service answers every request (through
`DemoService.set_tuning`), and rolling it back removes exactly that change. Some make the service
faster, some slower or more error-prone, and their quality scores and risks vary, so the console's
thresholds, monitoring window and automatic rollback all have something to do.

Start-up is cheap for the caller: `start()` binds the port and returns; the SDK and uvicorn are
imported and the server started in a background thread (`wait_ready()` waits for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .service import BUCKETS, DemoService, Totals, Tuning

if TYPE_CHECKING:
    import uvicorn

TOKEN_ENV = "OPSCONSOLE_DEMO_AGENT_TOKEN"
"""The variable the demo's configuration names for the agent's token."""
P95_MS = "quantile(0.95, http_request_duration_seconds) * 1000"
ERROR_RATIO = 'ratio(http_requests_total{code=~"5.."}, http_requests_total)'
ANALYSIS_SPAN = 10.0
"""Seconds of traffic the analysis looks at (the newest look at least this old is the base)."""
VERSION = "demo-agent 1"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Idea:
    """One change the agent knows how to make, what it really does and what the agent predicts."""

    key: str
    title: str
    description: str
    component: str
    kind: str
    effect: Tuning
    metric: str
    expected_change: float
    quality: float
    risk: float


CATALOGUE = (
    Idea(
        "pool-size",
        "Raise the connection pool size from 10 to 32",
        "Requests wait for a free upstream connection under load; a larger pool removes the queueing.",
        "checkout-api",
        "tuning",
        Tuning(latency_factor=0.5),
        P95_MS,
        -0.45,
        0.93,
        0.04,
    ),
    Idea(
        "retry-backoff",
        "Reduce the retry backoff from 200 ms to 20 ms",
        "Failed upstream calls are retried sooner. The agent expects shorter waits; under load, faster "
        "retries pile onto a busy upstream instead.",
        "checkout-api",
        "tuning",
        Tuning(latency_offset=0.02),
        P95_MS,
        -0.10,
        0.88,
        0.08,
    ),
    Idea(
        "response-cache",
        "Enable a response cache in front of GET /",
        "Adds an in-memory cache component with a 5 s TTL for anonymous answers.",
        "edge-cache",
        "new_component",
        Tuning(latency_factor=0.7),
        P95_MS,
        -0.15,
        0.90,
        0.07,
    ),
    Idea(
        "aggressive-timeout",
        "Cut the upstream timeout to 50 ms",
        "Slow upstream calls are abandoned early, which shortens the tail; abandoned calls answer 500.",
        "checkout-api",
        "tuning",
        Tuning(latency_factor=0.8, error_rate=0.15),
        ERROR_RATIO,
        0.0,
        0.86,
        0.09,
    ),
    Idea(
        "log-sampling",
        "Sample debug logs at 10%",
        "Debug logging costs a little on every request; sampling it saves that time.",
        "checkout-api",
        "tuning",
        Tuning(latency_factor=0.9),
        P95_MS,
        -0.05,
        0.72,
        0.02,
    ),
    Idea(
        "session-shards",
        "Shard the session store four ways",
        "A new sharded session store spreads lock contention; it needs a data migration.",
        "session-store",
        "new_component",
        Tuning(latency_factor=0.6),
        P95_MS,
        -0.35,
        0.91,
        0.35,
    ),
)
"""Ordered so that a cycle asking for two gets one that helps and one that hurts."""


@dataclass
class _Entry:
    idea: Idea
    id: str
    created_at: float
    updated_at: float
    status: str = "proposed"
    analysis: str = ""


class DemoAgent:
    """The demo agent for `service`. `start()` returns at once; `url` is the MCP endpoint, `token`
    the bearer token it requires (never shown by `repr`)."""

    def __init__(
        self,
        service: DemoService,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tenant: str = "",
        token: str | None = None,
    ) -> None:
        self.service = service
        self.host = host
        self.tenant = tenant
        self.token = token or secrets.token_urlsafe(24)
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self._stop_requested = False
        self._failed: BaseException | None = None
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._looks: deque[Totals] = deque(maxlen=256)
        self._last_cycle_at: float | None = None
        self._prefix = secrets.token_hex(3)
        """Ids differ per start: a workspace keeps the records of an earlier demo's proposals."""
        self._started_at = time.time()

    def __repr__(self) -> str:
        state = "started" if self._sock is not None else "stopped"
        return f"DemoAgent(url={self.url if self._sock else None!r}, {state})"

    # ------------------------------------------------------------------------------ life

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the demo agent is not started")
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        """The MCP endpoint (streamable HTTP)."""
        return f"http://{self.host}:{self.port}/mcp"

    @property
    def health_url(self) -> str:
        return f"http://{self.host}:{self.port}/health"

    def start(self) -> DemoAgent:
        """Bind the port and serve from a background thread. Returns before the server is up:
        connections made meanwhile wait in the listen queue (`wait_ready()` waits for it)."""
        if self._sock is not None:
            raise RuntimeError("the demo agent is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._ready.clear()
        self._failed = None
        self._stop_requested = False
        self._looks.append(self.service.totals())
        self._thread = threading.Thread(target=self._serve, name="demo-agent", daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """True once the server answers; False if it did not within `timeout` or failed to start."""
        return self._ready.wait(timeout) and self._failed is None

    def stop(self) -> None:
        if self._sock is None:
            return
        # Said before the server is looked at: a thread still importing sees it and does not serve.
        self._stop_requested = True
        server, thread, sock = self._server, self._thread, self._sock
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=5.0)
        sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> DemoAgent:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        try:
            import uvicorn

            # Without handlers of their own, the server's warnings would reach the console's terminal
            # through logging's last resort.
            for name in ("mcp", "uvicorn", "httpx2"):
                logging.getLogger(name).addHandler(logging.NullHandler())
            config = uvicorn.Config(
                self._app(),
                log_config=None,  # leave the process's logging alone
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=1,
            )
            server = uvicorn.Server(config)
            self._server = server
            if self._stop_requested:
                return
            assert self._sock is not None
            sock = self._sock
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._run(server, sock))
            finally:
                loop.close()
        except BaseException as exc:  # noqa: BLE001 - reported through wait_ready()
            self._failed = exc
        finally:
            self._ready.set()

    async def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        async def mark_ready() -> None:
            while not server.started and not server.should_exit:
                await asyncio.sleep(0.01)
            self._ready.set()

        watcher = asyncio.ensure_future(mark_ready())
        try:
            await server.serve(sockets=[sock])
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def _app(self) -> Asgi:
        from mcp.server.lowlevel import Server

        mcp = Server(
            "opsconsole-demo-agent",
            version=VERSION,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        inner: Asgi = mcp.streamable_http_app(stateless_http=True, json_response=True, host=self.host)
        expected = f"Bearer {self.token}".encode()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                if scope["path"] == "/health" and scope["method"] == "GET":
                    return await _send_json(send, 200, self._health())
                given = dict(scope["headers"]).get(b"authorization", b"")
                if not hmac.compare_digest(given, expected):
                    return await _send_json(send, 401, {"error": "a valid bearer token is required"})
            await inner(scope, receive, send)

        return app

    def _health(self) -> dict[str, Any]:
        with self._lock:
            deployed = sum(1 for e in self._entries.values() if e.status == "deployed")
        return {
            "status": "ok",
            "version": VERSION,
            "service": self.service.url,
            "active_improvements": deployed,
        }

    # ------------------------------------------------------------------------------ MCP handlers

    async def _list_tools(self, ctx: Any, params: Any) -> Any:
        from mcp.types import ListToolsResult, Tool

        return ListToolsResult(tools=[Tool(name=n, description=d, input_schema=s) for n, d, s in _TOOLS])

    async def _call_tool(self, ctx: Any, params: Any) -> Any:
        from mcp.types import CallToolResult, TextContent

        args = dict(params.arguments or {})
        handler = {
            "get_system_status": self.system_status,
            "query_telemetry_insights": self.insights,
            "trigger_improvement_cycle": self.trigger_cycle,
            "list_improvements": self.list_improvements,
            "deploy_improvement": self.deploy,
            "rollback_improvement": self.rollback,
        }.get(params.name)
        try:
            if handler is None:
                raise _BadCall(f"no tool named {params.name!r}")
            doc = handler(args)
        except _BadCall as exc:
            return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
        return CallToolResult(
            content=[TextContent(type="text", text=json.dumps(doc))], structured_content=doc
        )

    # ------------------------------------------------------------------------------ the six tools

    def system_status(self, args: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            deployed = sum(1 for e in self._entries.values() if e.status == "deployed")
            last = self._last_cycle_at
        doc: dict[str, Any] = {
            "status": "ok",
            "version": VERSION,
            "message": f"watching the demo service at {self.service.url}",
            "active_improvements": deployed,
        }
        if last is not None:
            doc["last_cycle_at"] = last
        return doc

    def insights(self, args: dict[str, Any]) -> dict[str, Any]:
        _number(args, "time_range_hours", required=True)
        now, base, first = self._analyse()
        p95 = _p95_ms(now, base)
        p95_first = _p95_ms(base, first) if base is not first else None
        requests = now.requests - base.requests
        errors = now.errors - base.errors
        seconds = max(now.at - base.at, 1e-9)
        out: list[dict[str, Any]] = [
            {
                "metric": P95_MS,
                "summary": f"p95 latency {_ms(p95)} over the last {seconds:.0f} s",
                "value": p95,
                "baseline": p95_first,
            },
            {
                "metric": ERROR_RATIO,
                "summary": f"{errors} of {requests} answers failed",
                "value": errors / requests if requests else None,
            },
            {
                "metric": "rate(http_requests_total)",
                "summary": f"{requests / seconds:.1f} requests per second",
                "value": requests / seconds,
            },
        ]
        return {"insights": out}

    def trigger_cycle(self, args: dict[str, Any]) -> dict[str, Any]:
        _number(args, "analysis_window_hours", required=True)
        wanted = _number(args, "max_improvements", required=True) or 0.0
        if wanted != int(wanted) or wanted < 0:
            raise _BadCall("max_improvements: expected a whole number >= 0")
        now, base, _ = self._analyse()
        p95 = _p95_ms(now, base)
        at = time.time()
        made: list[dict[str, Any]] = []
        with self._lock:
            proposed = {e.idea.key for e in self._entries.values()}
            for idea in CATALOGUE:
                if len(made) >= int(wanted):
                    break
                if idea.key in proposed:
                    continue
                entry = _Entry(
                    idea, f"{idea.key}-{self._prefix}", at, at, analysis=f"p95 latency was {_ms(p95)}"
                )
                self._entries[entry.id] = entry
                made.append(self._document(entry))
            self._last_cycle_at = at
        return {"cycle_id": f"cycle-{self._prefix}-{int(at)}", "proposals": made}

    def list_improvements(self, args: dict[str, Any]) -> dict[str, Any]:
        since = _number(args, "since_hours", required=False)
        cutoff = time.time() - since * 3600 if since is not None else -math.inf
        with self._lock:
            docs = [self._document(e) for e in self._entries.values() if e.updated_at >= cutoff]
        return {"improvements": docs}

    def deploy(self, args: dict[str, Any]) -> dict[str, Any]:
        ident = _text(args, "improvement_id")
        with self._lock:
            entry = self._entries.get(ident)
            if entry is None:
                return {"improvement_id": ident, "ok": False, "message": f"no improvement {ident!r}"}
            again = entry.status == "deployed"
            self.service.set_tuning(ident, entry.idea.effect)
            entry.status, entry.updated_at = "deployed", time.time()
        return {
            "improvement_id": ident,
            "ok": True,
            "status": "deployed",
            "message": "already deployed" if again else f"deployed to the demo service at {self.service.url}",
            "details": _effect(entry.idea.effect),
        }

    def rollback(self, args: dict[str, Any]) -> dict[str, Any]:
        ident = _text(args, "improvement_id")
        _text(args, "reason", required=False)
        with self._lock:
            entry = self._entries.get(ident)
            if entry is None:
                return {"improvement_id": ident, "ok": False, "message": f"no improvement {ident!r}"}
            was_live = self.service.clear_tuning(ident)
            if was_live or entry.status == "deployed":
                entry.status, entry.updated_at = "rolled_back", time.time()
        return {
            "improvement_id": ident,
            "ok": True,
            "status": entry.status,
            "message": "rolled back" if was_live else "was not deployed: nothing to undo",
        }

    # ------------------------------------------------------------------------------ analysis

    def _analyse(self) -> tuple[Totals, Totals, Totals]:
        """The service's totals now, at the newest earlier look at least ANALYSIS_SPAN old (else the
        oldest), and at the first look."""
        now = self.service.totals()
        with self._lock:
            looks = list(self._looks)
            self._looks.append(now)
        base = next((t for t in reversed(looks) if now.at - t.at >= ANALYSIS_SPAN), looks[0])
        return now, base, looks[0]

    def _document(self, e: _Entry) -> dict[str, Any]:
        idea = e.idea
        return {
            "id": e.id,
            "title": idea.title,
            "description": f"{idea.description} ({e.analysis} when proposed.)"
            if e.analysis
            else idea.description,
            "component": idea.component,
            "tenant": self.tenant,
            "kind": idea.kind,
            "predicted_impact": {
                "metric": idea.metric,
                "expected_change": idea.expected_change,
                "better": "lower",
            },
            "quality_score": idea.quality,
            "risk": idea.risk,
            "created_at": e.created_at,
            "status": e.status,
        }


class _BadCall(Exception):
    """Arguments the tool cannot use: answered as a tool error (`isError`)."""


async def _send_json(send: Send, status: int, doc: object) -> None:
    body = json.dumps(doc).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _number(args: dict[str, Any], key: str, *, required: bool) -> float | None:
    value = args.get(key)
    if value is None:
        if required:
            raise _BadCall(f"{key}: missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _BadCall(f"{key}: expected a number")
    return float(value)


def _text(args: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = args.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value):
        raise _BadCall(f"{key}: expected text")
    return value


def _p95_ms(now: Totals, base: Totals) -> float | None:
    """p95 of the answers between two looks, interpolated within its bucket as Prometheus does."""
    counts = [a - b for a, b in zip(now.buckets, base.buckets, strict=True)]
    total = sum(counts)
    if total <= 0:
        return None
    rank = 0.95 * total
    seen = 0
    lower = 0.0
    for bound, count in zip((*BUCKETS, math.inf), counts, strict=True):
        if seen + count >= rank and count > 0:
            if math.isinf(bound):
                return lower * 1000
            return (lower + (bound - lower) * (rank - seen) / count) * 1000
        seen += count
        lower = bound if not math.isinf(bound) else lower
    return lower * 1000


def _ms(value: float | None) -> str:
    return "unknown (no traffic yet)" if value is None else f"{value:.1f} ms"


def _effect(t: Tuning) -> dict[str, float]:
    return {
        "latency_factor": t.latency_factor,
        "latency_offset_ms": t.latency_offset * 1000,
        "error_rate": t.error_rate,
    }


_NUMBER = {"type": "number"}
_TOOLS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("get_system_status", "The agent's health and how many improvements are live.", {"type": "object"}),
    (
        "query_telemetry_insights",
        "What the agent sees in the service's metrics.",
        {"type": "object", "properties": {"time_range_hours": _NUMBER}, "required": ["time_range_hours"]},
    ),
    (
        "trigger_improvement_cycle",
        "Analyse the service and propose up to max_improvements changes.",
        {
            "type": "object",
            "properties": {"analysis_window_hours": _NUMBER, "max_improvements": {"type": "integer"}},
            "required": ["analysis_window_hours", "max_improvements"],
        },
    ),
    (
        "list_improvements",
        "Every improvement the agent proposed (changed in the last since_hours, if given).",
        {"type": "object", "properties": {"since_hours": _NUMBER}},
    ),
    (
        "deploy_improvement",
        "Apply an improvement to the service.",
        {
            "type": "object",
            "properties": {"improvement_id": {"type": "string"}},
            "required": ["improvement_id"],
        },
    ),
    (
        "rollback_improvement",
        "Undo exactly one improvement.",
        {
            "type": "object",
            "properties": {"improvement_id": {"type": "string"}, "reason": {"type": "string"}},
            "required": ["improvement_id", "reason"],
        },
    ),
)
