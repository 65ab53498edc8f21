"""Real servers over loopback for the improvement agent's tests: the demo agent (the official SDK)
and a fault-injecting MCP server, written by hand so that it can answer what no SDK would send.

Both run uvicorn in a background thread on 127.0.0.1 and a free port, and stop at the end of the
module that used them."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from opsconsole.demo.agent import DemoAgent
from opsconsole.demo.service import DemoService

TOKEN = "tok-Zq9-never-shown-7781"
"""The fault server's token: tests assert it appears in no message, repr or log line."""

GOOD_PROPOSAL = {
    "id": "imp-1",
    "title": "Raise the pool size",
    "description": "more connections",
    "component": "api",
    "tenant": "meetmind-dev",
    "kind": "tuning",
    "predicted_impact": {
        "metric": "quantile(0.95, http_request_duration_seconds) * 1000",
        "expected_change": -0.2,
        "better": "lower",
    },
    "quality_score": 0.9,
    "risk": 0.05,
}


@dataclass
class FaultServer:
    """`fault` chooses the misbehaviour of the next calls; `requests` counts the HTTP requests."""

    url: str = ""
    token: str = TOKEN
    fault: str = "none"
    requests: int = 0
    calls: list[str] = field(default_factory=list)

    def reset(self, fault: str = "none") -> None:
        self.fault, self.requests, self.calls = fault, 0, []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests += 1
        if scope["method"] != "POST":
            return await _reply(send, 405, b"")
        auth = dict(scope["headers"]).get(b"authorization", b"")
        if auth != f"Bearer {self.token}".encode() or self.fault == "token-refused":
            return await _reply(send, 401, b'{"error": "unauthorized"}')
        if self.fault == "forbidden":
            return await _reply(send, 403, b'{"error": "forbidden"}')
        if self.fault == "http-500":
            return await _reply(send, 500, b'{"error": "boom"}')
        rpc = json.loads(body)
        if "id" not in rpc:  # a notification
            return await _reply(send, 202, b"")
        method = rpc["method"]
        if method == "initialize":
            return await _answer(send, rpc, _initialized(rpc))
        if method == "tools/list":
            return await _answer(
                send, rpc, {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in _TOOLS]}
            )
        if method != "tools/call":
            return await _reply(send, 200, _error(rpc, -32601, f"no method {method}"))
        tool = rpc["params"]["name"]
        args = rpc["params"].get("arguments") or {}
        self.calls.append(tool)
        if self.fault == "slow":
            await asyncio.sleep(30)
        if self.fault == "malformed":
            return await _reply(send, 200, b'{"jsonrpc": "2.0", "id": ')
        if self.fault == "not-jsonrpc":
            return await _reply(send, 200, b'{"hello": "world"}')
        if self.fault == "wrong-rpc-id":
            return await _answer(send, {**rpc, "id": 424242}, {"content": []})
        if self.fault == "bad-result":
            return await _answer(send, rpc, {"content": "not a list"})
        if self.fault == "tool-error":
            return await _answer(
                send, rpc, {"content": [{"type": "text", "text": "disk full"}], "isError": True}
            )
        if self.fault == "unknown-tool":
            return await _reply(send, 200, _error(rpc, -32601, f"Unknown tool: {tool}"))
        doc = self.answer(tool, args)
        if self.fault == "text-block":
            result = {"content": [{"type": "text", "text": json.dumps(doc)}]}
        elif self.fault == "two-text-blocks":
            result = {"content": [{"type": "text", "text": "{}"}, {"type": "text", "text": "{}"}]}
        elif self.fault == "text-not-json":
            result = {"content": [{"type": "text", "text": "all good!"}]}
        else:
            result = {"content": [{"type": "text", "text": json.dumps(doc)}], "structuredContent": doc}
        return await _answer(send, rpc, result)

    def answer(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        fault = self.fault
        if tool == "get_system_status":
            return {"status": 3} if fault == "wrong-types" else {"status": "ok", "version": "fault-1"}
        if tool == "query_telemetry_insights":
            return {"insights": [{"metric": "p95", "summary": "fine", "value": 12.5}]}
        if tool in ("trigger_improvement_cycle", "list_improvements"):
            items = [dict(GOOD_PROPOSAL), {**GOOD_PROPOSAL, "id": "imp-2"}]
            if fault == "wrong-types":
                items[1]["quality_score"] = "high"
            if fault == "duplicate-ids":
                items[1]["id"] = "imp-1"
            key = "proposals" if tool == "trigger_improvement_cycle" else "improvements"
            return {"cycle_id": "c-1", key: items} if key == "proposals" else {key: items}
        ident = args.get("improvement_id", "")
        if tool == "rollback_improvement" and fault == "rollback-fails":
            return {"improvement_id": ident, "ok": False, "message": "the old config is gone"}
        if fault == "other-id":
            return {"improvement_id": "someone-else", "ok": True}
        return {
            "improvement_id": ident,
            "ok": True,
            "status": "deployed" if tool == "deploy_improvement" else "rolled_back",
        }


_TOOLS = (
    "get_system_status",
    "query_telemetry_insights",
    "trigger_improvement_cycle",
    "list_improvements",
    "deploy_improvement",
    "rollback_improvement",
)


def _initialized(rpc: dict[str, Any]) -> dict[str, Any]:
    return {
        "protocolVersion": rpc["params"]["protocolVersion"],
        "capabilities": {"tools": {}},
        "serverInfo": {"name": "fault-server", "version": "1"},
    }


def _error(rpc: dict[str, Any], code: int, message: str) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": rpc["id"], "error": {"code": code, "message": message}}
    ).encode()


async def _answer(send: Any, rpc: dict[str, Any], result: dict[str, Any]) -> None:
    await _reply(send, 200, json.dumps({"jsonrpc": "2.0", "id": rpc["id"], "result": result}).encode())


async def _reply(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def fault_server() -> Iterator[FaultServer]:
    app = FaultServer()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app.url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the fault server did not start"
    try:
        yield app
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


@pytest.fixture(scope="module")
def demo_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoService, DemoAgent]]:
    flags: Path = tmp_path_factory.mktemp("agent") / "flags.json"
    service = DemoService(flags, seed=7).start()
    agent = DemoAgent(service).start()
    try:
        assert agent.wait_ready(20), "the demo agent did not start"
        yield service, agent
    finally:
        agent.stop()
        service.stop()
