"""McpAgent against a misbehaving MCP server over loopback: every fault becomes an AgentError of the
documented kind, with a message that names the tool (and the field), within the timeout, in a
bounded number of requests, and the token in no message, repr or log line."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from opsconsole.engine import AgentEndpoint, AgentError, McpAgent
from opsconsole.engine.improvements import mcp_client

from .conftest import TOKEN, FaultServer, free_port

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 1.5
MAX_REQUESTS = 5
"""initialize, its notification, tools/call, the SDK's tools/list and a spare: never a retry storm."""


def agent(url: str, token: str | None = TOKEN, timeout: float = TIMEOUT) -> McpAgent:
    env = {} if token is None else {"AGENT_TOKEN": token}
    return McpAgent(AgentEndpoint(url, "AGENT_TOKEN", timeout), environ=env)


def fails(call: Callable[[], Awaitable[Any]], caplog: pytest.LogCaptureFixture) -> AgentError:
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(AgentError) as info:
        asyncio.run(call())
    assert time.monotonic() - started < TIMEOUT + 2.0
    err = info.value
    for text in (str(err), repr(err), caplog.text):
        assert TOKEN not in text
    assert err.__cause__ is None and err.__context__ is None  # nothing carrying the request hangs on
    return err


@pytest.fixture
def server(fault_server: FaultServer) -> FaultServer:
    fault_server.reset()
    return fault_server


def test_a_healthy_call_uses_a_bounded_number_of_requests(server: FaultServer) -> None:
    a = agent(server.url)
    status = asyncio.run(a.system_status())
    assert status.status == "ok" and status.version == "fault-1"
    assert 1 < server.requests <= MAX_REQUESTS
    assert TOKEN not in repr(a) and "AGENT_TOKEN" in repr(a)


def test_agent_down_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    err = fails(agent(f"http://127.0.0.1:{free_port()}/mcp").system_status, caplog)
    assert err.kind == "unreachable" and err.retryable
    assert "get_system_status" in str(err) and "cannot reach" in str(err)


def test_slow_agent_times_out_within_the_timeout(
    server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.reset("slow")
    started = time.monotonic()
    err = fails(agent(server.url).list_improvements, caplog)
    assert err.kind == "timeout" and err.retryable
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 1.5
    assert "list_improvements" in str(err) and f"{TIMEOUT:g} s" in str(err)


@pytest.mark.parametrize("fault", ["malformed", "not-jsonrpc", "bad-result"])
def test_malformed_json_rpc_is_a_protocol_error(
    server: FaultServer, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    server.reset(fault)
    err = fails(lambda: agent(server.url).trigger_cycle(24, 5), caplog)
    assert err.kind == "protocol", str(err)
    assert "trigger_improvement_cycle" in str(err)
    assert server.requests <= MAX_REQUESTS


def test_an_answer_to_another_request_is_never_taken(
    server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A JSON-RPC answer with an id nobody asked for cannot be told from a lost answer: the call waits
    for its own until the timeout."""
    server.reset("wrong-rpc-id")
    err = fails(agent(server.url).system_status, caplog)
    assert err.kind == "timeout"


def test_wrong_types_name_the_tool_and_the_field(
    server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.reset("wrong-types")
    err = fails(agent(server.url).list_improvements, caplog)
    assert err.kind == "protocol"
    assert "list_improvements.improvements[1].quality_score" in str(err) and "'high'" in str(err)
    err = fails(agent(server.url).system_status, caplog)
    assert err.kind == "protocol" and "get_system_status.status: expected text" in str(err)


def test_duplicate_ids_are_refused_as_a_whole(server: FaultServer, caplog: pytest.LogCaptureFixture) -> None:
    server.reset("duplicate-ids")
    err = fails(lambda: agent(server.url).trigger_cycle(24, 5), caplog)
    assert err.kind == "protocol"
    assert "trigger_improvement_cycle.proposals[1].id: 'imp-1' repeats" in str(err)


@pytest.mark.parametrize("fault", ["token-refused", "forbidden"])
def test_a_refused_token_is_auth(server: FaultServer, caplog: pytest.LogCaptureFixture, fault: str) -> None:
    server.reset(fault)
    err = fails(lambda: agent(server.url).deploy("imp-1"), caplog)
    assert err.kind == "auth" and not err.retryable
    assert "AGENT_TOKEN" in str(err) and ("401" in str(err) or "403" in str(err))
    assert server.requests <= MAX_REQUESTS


def test_a_wrong_token_value_is_not_echoed(server: FaultServer, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-Kp2-token-0042"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AgentError) as info:
        asyncio.run(agent(server.url, token=wrong).system_status())
    assert info.value.kind == "auth"
    assert wrong not in str(info.value) + repr(info.value) + caplog.text


def test_a_missing_token_variable_is_auth_naming_the_variable(caplog: pytest.LogCaptureFixture) -> None:
    err = fails(agent(f"http://127.0.0.1:{free_port()}/mcp", token=None).system_status, caplog)
    assert err.kind == "auth" and "AGENT_TOKEN is not set" in str(err)


def test_a_tool_error_result_is_refused_with_its_text(
    server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.reset("tool-error")
    err = fails(lambda: agent(server.url).deploy("imp-1"), caplog)
    assert err.kind == "refused" and "deploy_improvement" in str(err) and "disk full" in str(err)


def test_a_failed_rollback_is_never_taken_for_done(
    server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.reset("rollback-fails")
    err = fails(lambda: agent(server.url).rollback("imp-1", "p95 up 40%"), caplog)
    assert err.kind == "refused" and not err.retryable
    assert "rollback_improvement imp-1" in str(err) and "the old config is gone" in str(err)


def test_an_answer_about_another_improvement_is_a_protocol_error(
    server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.reset("other-id")
    err = fails(lambda: agent(server.url).deploy("imp-1"), caplog)
    assert err.kind == "protocol" and "deploy_improvement.improvement_id" in str(err)


def test_a_server_error_is_unreachable(server: FaultServer, caplog: pytest.LogCaptureFixture) -> None:
    server.reset("http-500")
    err = fails(agent(server.url).system_status, caplog)
    assert err.kind == "unreachable" and "HTTP 500" in str(err)


def test_an_unknown_tool_is_unsupported(server: FaultServer, caplog: pytest.LogCaptureFixture) -> None:
    server.reset("unknown-tool")
    err = fails(lambda: agent(server.url).insights(24), caplog)
    assert err.kind == "unsupported" and "query_telemetry_insights" in str(err)


def test_one_json_text_block_is_accepted_without_structured_content(server: FaultServer) -> None:
    server.reset("text-block")
    listed = asyncio.run(agent(server.url).list_improvements())
    assert [p.id for p in listed.improvements] == ["imp-1", "imp-2"]
    assert listed.improvements[0].tenant == "meetmind-dev"


@pytest.mark.parametrize("fault", ["two-text-blocks", "text-not-json"])
def test_text_that_is_not_one_json_object_is_a_protocol_error(
    server: FaultServer, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    server.reset(fault)
    err = fails(agent(server.url).system_status, caplog)
    assert err.kind == "protocol" and "get_system_status" in str(err)


def test_an_oversized_answer_is_refused_before_it_is_read(
    server: FaultServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mcp_client, "MAX_RESPONSE_BYTES", 100)
    err = fails(agent(server.url).list_improvements, caplog)
    assert err.kind == "protocol" and "more than the 100" in str(err)


def test_settings_that_cannot_work_are_refused_at_once() -> None:
    with pytest.raises(ValueError):
        McpAgent(AgentEndpoint("ftp://example.org/mcp"))
    with pytest.raises(ValueError):
        McpAgent(AgentEndpoint("http://127.0.0.1:1/mcp", timeout=0))
