"""McpAgent against the demo agent (the official SDK's server) over loopback: all six tools, and a
deploy that really changes the demo service, seen in its own metrics, undone by the rollback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from opsconsole.demo.agent import CATALOGUE, DemoAgent
from opsconsole.demo.service import DemoService
from opsconsole.engine import AgentEndpoint, AgentError, McpAgent
from opsconsole.engine.improvements.protocol import TOOLS
from opsconsole.engine.sources.promtext import parse
from opsconsole.engine.sources.query import Snapshot, evaluate, parse_query

pytestmark = pytest.mark.timeout(90)

P95 = "quantile(0.95, http_request_duration_seconds) * 1000"
ERRORS = 'ratio(http_requests_total{code=~"5.."}, http_requests_total)'


def client(agent: DemoAgent, timeout: float = 10.0) -> McpAgent:
    return McpAgent(AgentEndpoint(agent.url, "DEMO_TOKEN", timeout), environ={"DEMO_TOKEN": agent.token})


def judged(service: DemoService, query: str, requests: int = 200) -> float:
    """The judged metric over `requests` fresh answers, computed by the engine's own query code from
    two scrapes of the service's /metrics."""

    def scrape() -> Snapshot:
        with urllib.request.urlopen(f"{service.url}/metrics", timeout=5) as r:
            return Snapshot.of(time.monotonic(), parse(r.read().decode()))

    def hit(i: int) -> None:
        with contextlib.suppress(urllib.error.HTTPError):  # a 500 is an answer too
            urllib.request.urlopen(f"{service.url}/?user=u{i}", timeout=5).close()

    before = scrape()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(hit, range(requests)))
    after = scrape()
    value, _ = evaluate(parse_query(query), [before, after], window=1e9, now=after.at)
    return value


def test_the_agent_serves_the_six_tools_and_guards_them(demo_agent: tuple[DemoService, DemoAgent]) -> None:
    service, agent = demo_agent
    a = client(agent)

    async def run() -> None:
        status = await a.system_status()
        assert status.status == "ok" and status.version
        insights = await a.insights(1)
        assert P95 in [i.metric for i in insights.insights]
        cycle = await a.trigger_cycle(24, 2)
        assert len(cycle.proposals) == 2 and cycle.cycle_id
        more = await a.trigger_cycle(24, 100)
        assert len(more.proposals) == len(CATALOGUE) - 2  # each idea is proposed once
        listed = await a.list_improvements()
        assert {p.id for p in listed.improvements} == {p.id for p in cycle.proposals + more.proposals}
        assert (await a.list_improvements(since_hours=1)).improvements
        kinds = {p.kind for p in listed.improvements}
        assert kinds == {"tuning", "new_component"}
        # Some fall short of the seed's thresholds (quality 0.85, risk 0.10), so they matter.
        assert any(p.quality_score < 0.85 for p in listed.improvements)
        assert any(p.risk > 0.10 for p in listed.improvements)
        assert all(p.impact.metric for p in listed.improvements)

    asyncio.run(run())
    with urllib.request.urlopen(agent.health_url, timeout=5) as r:
        assert json.loads(r.read())["status"] == "ok"
    assert agent.token not in repr(agent)
    # The tools the agent lists are the protocol's six.
    assert {name for name, *_ in __import__("opsconsole.demo.agent", fromlist=["_TOOLS"])._TOOLS} == set(
        TOOLS
    )


def test_without_the_token_the_agent_answers_401(demo_agent: tuple[DemoService, DemoAgent]) -> None:
    _, agent = demo_agent
    request = urllib.request.Request(agent.url, data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 401
    wrong = McpAgent(AgentEndpoint(agent.url, "T", 5.0), environ={"T": "not-the-token"})
    with pytest.raises(AgentError) as err:
        asyncio.run(wrong.system_status())
    assert err.value.kind == "auth"


def test_deploy_changes_the_service_and_rollback_restores_it(
    demo_agent: tuple[DemoService, DemoAgent],
) -> None:
    service, agent = demo_agent
    a = client(agent)
    ids = {p.id.rsplit("-", 1)[0]: p.id for p in asyncio.run(a.list_improvements()).improvements}
    if not ids:
        ids = {p.id.rsplit("-", 1)[0]: p.id for p in asyncio.run(a.trigger_cycle(24, 10)).proposals}
    before = judged(service, P95)

    slower = ids["retry-backoff"]
    result = asyncio.run(a.deploy(slower))
    assert result.ok and result.status == "deployed"
    assert asyncio.run(a.deploy(slower)).ok  # twice is once
    assert list(service.tunings()) == [slower]
    during = judged(service, P95)
    assert during > before * 2, (before, during)  # +20 ms on a ~10 ms p95
    assert (asyncio.run(a.system_status())).active_improvements == 1

    undone = asyncio.run(a.rollback(slower, "p95 more than doubled"))
    assert undone.ok and undone.status == "rolled_back"
    assert service.tunings() == {}
    after = judged(service, P95)
    assert after < during / 2, (before, during, after)

    faster = ids["pool-size"]
    asyncio.run(a.deploy(faster))
    # The best of three: one p95 over real requests can catch a stall of a loaded CI machine (it
    # once read 13.5 ms against 9.7 ms without the tuning), the tuning's effect holds in all three.
    quicker = min(judged(service, P95) for _ in range(3))
    asyncio.run(a.rollback(faster, "test over"))
    assert quicker < after, (after, quicker)

    risky = ids["aggressive-timeout"]
    asyncio.run(a.deploy(risky))
    errors = judged(service, ERRORS, requests=300)
    asyncio.run(a.rollback(risky, "errors"))
    assert errors > 0.05, errors
    assert judged(service, ERRORS) == 0.0
    statuses = {p.id: p.agent_status for p in asyncio.run(a.list_improvements()).improvements}
    assert statuses[slower] == statuses[faster] == statuses[risky] == "rolled_back"


def test_unknown_ids_are_refused_not_done(demo_agent: tuple[DemoService, DemoAgent]) -> None:
    service, agent = demo_agent
    a = client(agent)
    for call in (a.deploy("no-such-id"), a.rollback("no-such-id", "why not")):
        with pytest.raises(AgentError) as info:
            asyncio.run(call)
        assert info.value.kind == "refused" and "no-such-id" in str(info.value)
    assert service.tunings() == {}


def test_start_is_quick_and_stop_frees_the_port(tmp_path: Path) -> None:
    service = DemoService(tmp_path / "flags.json").start()
    try:
        agent = DemoAgent(service)
        started = time.perf_counter()
        agent.start()
        assert time.perf_counter() - started < 0.5  # the SDK loads in the background
        url, port = agent.url, agent.port
        assert agent.wait_ready(20)
        with urllib.request.urlopen(agent.health_url, timeout=5) as r:
            assert r.status == 200
        agent.stop()
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(url.replace("/mcp", "/health"), timeout=2)
        again = DemoAgent(service, port=port).start()  # the port is free again
        again.stop()
    finally:
        service.stop()


def test_stop_during_start_up_leaves_no_server_behind(tmp_path: Path) -> None:
    service = DemoService(tmp_path / "flags.json")
    agent = DemoAgent(service).start()
    thread = agent._thread
    agent.stop()
    assert thread is not None
    thread.join(timeout=20)
    assert not thread.is_alive()
