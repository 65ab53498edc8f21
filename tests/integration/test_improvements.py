"""The improvement queue end to end against real parts: the store, a metrics endpoint served over
HTTP on 127.0.0.1, the runner's worker, the kill switch, and sources (a proposals file, and a small
in-test AgentSource whose answers each test sets: the MCP server lives in its own tests)."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opsconsole.engine.authz import Forbidden
from opsconsole.engine.config import load_config
from opsconsole.engine.core import Engine, NotFound
from opsconsole.engine.improvements.model import ImprovementStatus
from opsconsole.engine.improvements.protocol import (
    ActionResult,
    CycleResult,
    ImprovementList,
    SystemStatus,
    TelemetryInsights,
    parse_proposal,
)
from opsconsole.engine.improvements.service import PartlyRefused
from opsconsole.engine.improvements.source import AgentError
from opsconsole.engine.improvements.worker import QueueWorker
from opsconsole.engine.model import Actor
from opsconsole.engine.observe import Observer
from opsconsole.engine.rollout import Rejected

S = ImprovementStatus
REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------ real parts


class MetricsServer:
    """A /metrics endpoint whose gauge `latency_ms` the test sets (None: the endpoint fails)."""

    def __init__(self) -> None:
        self.value: float | None = 100.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if outer.value is None:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = f"# TYPE latency_ms gauge\nlatency_ms {outer.value}\n".encode()
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Hook:
    """A webhook receiver, to see the notifications really sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("content-length", 0))
                outer.bodies.append(json.loads(self.rfile.read(n)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Clock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def proposal(pid: str, quality: float = 0.97, risk: float = 0.01, **kw: Any) -> dict[str, Any]:
    doc = {
        "id": pid,
        "title": f"improve {pid}",
        "description": "\x1b]0;evil\x07 [b]raw[/b]",
        "component": "checkout",
        "tenant": "meetmind-prod",
        "kind": "tuning",
        "predicted_impact": {"metric": "", "expected_change": -0.1, "better": "lower"},
        "quality_score": quality,
        "risk": risk,
    }
    doc.update(kw)
    return doc


@dataclass
class InTestSource:
    """An AgentSource whose proposals and answers the test sets."""

    proposals: list[dict[str, Any]] = field(default_factory=list)
    fail_list: AgentError | None = None
    fail_deploy: AgentError | None = None
    fail_rollback: AgentError | None = None
    deployed: list[str] = field(default_factory=list)
    rolled_back: list[tuple[str, str]] = field(default_factory=list)
    cycles: list[tuple[float, int]] = field(default_factory=list)
    name: str = "agent in-test"

    async def system_status(self) -> SystemStatus:
        return SystemStatus("ok")

    async def insights(self, time_range_hours: float) -> TelemetryInsights:
        return TelemetryInsights()

    async def trigger_cycle(self, analysis_window_hours: float, max_improvements: int) -> CycleResult:
        self.cycles.append((analysis_window_hours, max_improvements))
        return CycleResult("c1")

    async def list_improvements(self, since_hours: float | None = None) -> ImprovementList:
        if self.fail_list is not None:
            raise self.fail_list
        from opsconsole.engine.improvements.protocol import ProtocolError, parse_proposals

        try:
            return ImprovementList(parse_proposals(self.proposals, "list_improvements.improvements"))
        except ProtocolError as exc:
            raise AgentError("protocol", str(exc)) from None

    async def deploy(self, improvement_id: str) -> ActionResult:
        if self.fail_deploy is not None:
            raise self.fail_deploy
        self.deployed.append(improvement_id)
        return ActionResult(improvement_id, True, "deployed")

    async def rollback(self, improvement_id: str, reason: str) -> ActionResult:
        if self.fail_rollback is not None:
            raise self.fail_rollback
        self.rolled_back.append((improvement_id, reason))
        return ActionResult(improvement_id, True, "rolled back")

    async def close(self) -> None:
        pass


SECTION = """
improvements:
  production:
    agent: {{url: "http://127.0.0.1:9/mcp", token_env: TEST_TOKEN, timeout: 2s}}
    cycle_interval: 1h
    analysis_window: 24h
    max_improvements: 3
    quality_threshold: 0.95
    risk_tolerance: 0.05
    max_concurrent: 1
    monitoring: 100s
    rollback_threshold: 0.05
    metric: latency_ms
    autonomous: {autonomous}
    component_generation: false
    tenants: {{meetmind-prod: {{enabled: true}}, agent-svea-prod: {{enabled: false}}}}
"""


@dataclass
class World:
    ws: Path
    clock: Clock
    metrics: MetricsServer
    hook: Hook
    source: InTestSource

    def engine(self, user: str = "alice", autonomous: bool = False) -> Engine:
        config = load_config(self.ws / "opsconsole.yaml", {"WORKSPACE": str(self.ws)})
        e = Engine(config, self.ws, Actor(user, "test"), clock=self.clock)
        e.improvement_sources = lambda settings, environ: self.source
        return e


def write_config(ws: Path, port: int, hook: int, autonomous: bool = False) -> None:
    main = f"""
    interval: 1s
    roles:
      default: viewer
      users: {{alice: approver, bob: operator, carol: viewer, root: admin}}
    environments:
      production:
        metrics: {{kind: scrape, url: "http://127.0.0.1:{port}/metrics", timeout: 1s, window: 10s}}
        flags: {{kind: file, path: "${{WORKSPACE}}/flags/production.json"}}
    flags: "{REPO}/config/flags.yaml"
    notifications:
      - {{kind: webhook, url: "http://127.0.0.1:{hook}/hook", events: [improvement_rollback, improvement_failed], timeout: 2s}}
    kill_switch:
      flags_off: [enable_autonomous_improvements, enable_component_generation]
      flags_on: [emergency_shutdown]
    """
    (ws / "opsconsole.yaml").write_text(
        textwrap.dedent(main) + textwrap.dedent(SECTION.format(autonomous=str(autonomous).lower()))
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    ws = tmp_path / "ws"
    ws.mkdir()
    metrics, hook = MetricsServer(), Hook()
    write_config(ws, metrics.port, hook.port)
    try:
        yield World(ws, Clock(), metrics, hook, InTestSource())
    finally:
        metrics.close()
        hook.close()


async def step(worker: QueueWorker, world: World, seconds: float = 0.0) -> None:
    world.clock.now += seconds
    await worker.step(world.clock.now)


def worker_for(engine: Engine) -> QueueWorker:
    return QueueWorker(engine.improvement_queue, Observer(engine.config))


def set_flag(world: World, name: str, value: bool) -> None:
    world.engine("root").set_flag("production", name, value, "test")


# ------------------------------------------------------------------------------------ sync


def test_sync_upserts_and_never_overwrites_a_decision(world: World) -> None:
    world.source.proposals = [proposal("a"), proposal("b", quality=0.5)]
    bob, alice = world.engine("bob"), world.engine("alice")
    first = bob.sync_improvements("production")
    assert (first.new, first.updated, first.unchanged, first.errors) == (2, 0, 0, ())
    assert world.source.cycles == [(24.0, 3)]  # the seed's arguments, from the config
    alice.approve_improvements("production", ["a"], "fine")
    world.source.proposals = [
        proposal("a", title="changed after approval", status="deployed"),
        proposal("b", title="better title", quality=0.5),
        proposal("c"),
    ]
    second = bob.sync_improvements("production")
    assert (second.new, second.updated, second.unchanged) == (1, 2, 0)
    a = alice.improvement("production", "a")
    assert a.status is S.APPROVED and a.reviewer == "alice" and a.proposal.title == "improve a"
    assert a.proposal.agent_status == "deployed"  # the agent's word is refreshed, the decision kept
    assert alice.improvement("production", "b").proposal.title == "better title"
    assert alice.improvement("production", "c").proposal.description.startswith(
        "\x1b]0;"
    )  # raw, escaped at display
    assert [i.id for i in alice.improvements("production")] == ["a", "c", "b"]
    mode = alice.improvement_mode("production")
    assert mode.agent_state == "ok" and mode.last_sync_at == world.clock.now
    assert mode.next_sync_at == world.clock.now + 3600


def test_agent_errors_are_a_visible_state_with_backoff_and_lose_nothing(world: World) -> None:
    world.source.proposals = [proposal("a")]
    bob = world.engine("bob")
    bob.sync_improvements("production")
    world.source.proposals = [proposal("a"), proposal("a")]  # duplicate ids
    result = bob.sync_improvements("production")
    assert result.errors and "repeats" in result.errors[0]
    mode = bob.improvement_mode("production")
    assert mode.agent_state == "protocol" and "repeats" in mode.agent_error
    assert mode.next_sync_at == world.clock.now + 5.0  # backoff, not the hour-long interval
    world.source.fail_list = AgentError("auth", "the token was refused")
    bob.sync_improvements("production")
    mode = bob.improvement_mode("production")
    assert mode.agent_state == "auth" and mode.next_sync_at == world.clock.now + 10.0
    assert [i.id for i in bob.improvements("production")] == ["a"]


def test_file_source_sync(world: World, tmp_path: Path) -> None:
    props = tmp_path / "props.json"
    props.write_text(json.dumps({"improvements": [proposal("f1"), proposal("f2")]}))
    text = (world.ws / "opsconsole.yaml").read_text()
    text = text.replace(
        'agent: {url: "http://127.0.0.1:9/mcp", token_env: TEST_TOKEN, timeout: 2s}', f"proposals: {props}"
    )
    (world.ws / "opsconsole.yaml").write_text(text)
    config = load_config(world.ws / "opsconsole.yaml", {"WORKSPACE": str(world.ws)})
    e = Engine(config, world.ws, Actor("bob", "test"), clock=world.clock)
    assert e.sync_improvements().new == 2
    assert e.improvement_mode("production").source == f"file {props}"
    assert {i.source for i in e.improvements()} == {"file"}


# ------------------------------------------------------------------------------------ review


def test_review_rules_roles_and_reasons(world: World) -> None:
    world.source.proposals = [
        proposal("good"),
        proposal("low", quality=0.5),
        proposal("comp", kind="new_component"),
        proposal("svea", tenant="agent-svea-prod"),
    ]
    world.engine("bob").sync_improvements()
    alice, root, carol = world.engine("alice"), world.engine("root"), world.engine("carol")
    with pytest.raises(Forbidden):
        carol.approve_improvements("production", ["good"], "")
    with pytest.raises(NotFound):
        alice.approve_improvements("production", ["good", "nope"], "")
    assert alice.improvement("production", "good").status is S.PROPOSED  # nothing of that call written
    with pytest.raises(PartlyRefused) as info:
        alice.approve_improvements("production", ["good", "low", "svea"], "ok")
    assert [i.id for i in info.value.updated] == ["good"]
    assert "quality 0.50 is under the threshold 0.95" in str(info.value)
    assert "tenant agent-svea-prod is not enabled" in str(info.value)
    with pytest.raises(Forbidden):
        alice.approve_improvements("production", ["low"], "trust me", override=True)
    [low] = root.approve_improvements("production", ["low"], "checked by hand", override=True)
    assert low.override and low.reviewer == "root"
    with pytest.raises(Rejected, match="no override"):
        root.approve_improvements("production", ["comp"], "x", override=True)
    with pytest.raises(Rejected, match="needs a reason"):
        alice.reject_improvements("production", ["comp"], " ")
    [comp] = alice.reject_improvements("production", ["comp"], "no new components yet")
    assert comp.status is S.REJECTED
    with pytest.raises(Rejected, match="only proposed"):
        alice.approve_improvements("production", ["comp"], "changed my mind")
    events = alice.audit_events(target="improvement:production/low")
    assert [e.action for e in events] == ["improvement.approve"]
    assert events[0].actor == "root" and events[0].data["override"] is True
    assert events[0].data["reason"] == "checked by hand"
    assert alice.review_problems(alice.improvement("production", "comp")) == [
        "a new component while component generation is off (no override)"
    ]


# ------------------------------------------------------------------------------------ the worker


def test_approved_deploys_with_baseline_then_harmful_one_rolls_back_with_evidence(world: World) -> None:
    world.source.proposals = [proposal("fast"), proposal("slow")]
    alice = world.engine("alice")

    async def scenario() -> None:
        worker = worker_for(alice)
        try:
            await step(worker, world)  # syncs (never synced before)
            assert alice.improvement("production", "fast").status is S.PROPOSED  # observation mode
            alice.approve_improvements("production", ["fast", "slow"], "both look fine")
            await step(worker, world, 1)
            fast = alice.improvement("production", "fast")
            assert fast.status is S.MONITORING and fast.baseline == 100.0
            assert alice.improvement("production", "slow").status is S.APPROVED  # max_concurrent 1
            assert alice.improvement_mode("production").live == 1
            world.metrics.value = 90.0
            await step(worker, world, 50)
            await step(worker, world, 51)  # past the 100 s window, a known value: kept
            fast = alice.improvement("production", "fast")
            assert fast.status is S.KEPT and "10.0% better" in fast.evidence
            await step(worker, world, 1)  # the slot is free: slow deploys, baseline 90
            slow = alice.improvement("production", "slow")
            assert slow.status is S.MONITORING and slow.baseline == 90.0
            world.metrics.value = 99.0
            await step(worker, world, 2)
        finally:
            await worker.close()

    asyncio.run(scenario())
    slow = alice.improvement("production", "slow")
    assert slow.status is S.ROLLED_BACK
    assert "90 to 99" in slow.evidence and "10.0% worse" in slow.evidence
    assert world.source.rolled_back and world.source.rolled_back[0][0] == "slow"
    assert [s.value for s in slow.samples][-1] == 99.0 and slow.observed == 99.0
    actions = [e.action for e in alice.audit_events(target="improvement:production/slow")]
    assert actions == [
        "improvement.approve",
        "improvement.deploy",
        "improvement.deployed",
        "improvement.rollback_requested",
        "improvement.rollback",
    ]
    _wait_for(lambda: any(b["event"] == "improvement_rollback" for b in world.hook.bodies))
    stats = alice.improvement_stats("production")
    assert (stats.deployed, stats.kept, stats.rolled_back, stats.rollback_rate) == (2, 1, 1, 0.5)


def test_a_rollback_that_fails_at_the_agent_is_failed_notified_and_retried(world: World) -> None:
    world.source.proposals = [proposal("x")]
    alice, bob = world.engine("alice"), world.engine("bob")

    async def scenario() -> None:
        worker = worker_for(alice)
        try:
            await step(worker, world)
            alice.approve_improvements("production", ["x"], "go")
            await step(worker, world, 1)
            world.metrics.value = 200.0
            world.source.fail_rollback = AgentError("timeout", "no answer within 2s")
            await step(worker, world, 1)
            failed = alice.improvement("production", "x")
            assert failed.status is S.FAILED and failed.rollback_pending
            assert "rollback failed" in failed.evidence and "may still be live" in failed.evidence
            assert failed.error.startswith("timeout")
            world.source.fail_rollback = None
            await step(worker, world, 1)  # still inside the backoff: not yet
            assert alice.improvement("production", "x").status is S.FAILED
            await step(worker, world, 10)
        finally:
            await worker.close()

    asyncio.run(scenario())
    done = bob.improvement("production", "x")
    assert done.status is S.ROLLED_BACK and "100 to 200" in done.evidence and done.reason == "go"
    _wait_for(lambda: any(b["event"] == "improvement_failed" for b in world.hook.bodies))


def test_manual_rollback_failure_is_recorded_as_failed_not_rolled_back(world: World) -> None:
    world.source.proposals = [proposal("x"), proposal("y")]
    alice, bob = world.engine("alice"), world.engine("bob")

    async def deploy() -> None:
        worker = worker_for(alice)
        try:
            await step(worker, world)
            alice.approve_improvements("production", ["x"], "go")
            await step(worker, world, 1)
        finally:
            await worker.close()

    asyncio.run(deploy())
    with pytest.raises(Rejected, match="needs a reason"):
        bob.rollback_improvements("production", ["x"], "")
    world.source.fail_rollback = AgentError("refused", "the agent will not")
    [x] = bob.rollback_recent("production", 1, "all recent, as in the guide")
    assert x.status is S.FAILED and "refused" in x.error and not x.rollback_pending
    assert "rolled_back" not in [
        e.data.get("to") for e in bob.audit_events(target="improvement:production/x")
    ]
    world.source.fail_rollback = None
    [x] = bob.rollback_improvements("production", ["x"], "paged at 3am")
    assert x.status is S.ROLLED_BACK and x.evidence == "rolled back by bob: paged at 3am" and x.reason == "go"
    with pytest.raises(PartlyRefused, match="only deploying"):
        bob.rollback_improvements("production", ["y"], "y was never deployed")


def test_unknown_metric_never_keeps_and_blocks_a_blind_deploy(world: World) -> None:
    world.source.proposals = [proposal("x"), proposal("y")]
    alice = world.engine("alice")

    async def scenario() -> None:
        worker = worker_for(alice)
        try:
            await step(worker, world)
            world.metrics.value = None
            alice.approve_improvements("production", ["x"], "go")
            await step(worker, world, 1)
            held = alice.improvement("production", "x")
            assert held.status is S.APPROVED and held.error.startswith("no baseline")
            world.metrics.value = 100.0
            await step(worker, world, 10)
            assert alice.improvement("production", "x").status is S.MONITORING
            world.metrics.value = None
            await step(worker, world, 120)  # past the window, no value: hold
            assert alice.improvement("production", "x").status is S.MONITORING
            await step(worker, world, 100)  # past twice the window: failed, with why
        finally:
            await worker.close()

    asyncio.run(scenario())
    x = alice.improvement("production", "x")
    assert x.status is S.FAILED and "twice the monitoring window" in x.evidence


# ------------------------------------------------------------------------------------ autonomy and the kill switch


def test_autonomous_mode_kill_switch_pause_and_suspension(world: World) -> None:
    write_config(world.ws, world.metrics.port, world.hook.port, autonomous=True)
    world.source.proposals = [
        proposal("auto1"),
        proposal("low", quality=0.5),
        proposal("auto2", quality=0.96),
    ]
    alice, bob, root = world.engine("alice"), world.engine("bob"), world.engine("root")
    set_flag(world, "enable_autonomous_improvements", True)

    async def scenario() -> None:
        worker = worker_for(alice)
        try:
            await step(worker, world)
            auto1 = alice.improvement("production", "auto1")
            assert auto1.status is S.MONITORING and auto1.reviewer == "autonomous"
            assert alice.improvement_mode("production").autonomous
            bob.kill("test emergency")
            mode = alice.improvement_mode("production")
            assert mode.paused.paused and mode.autonomous_suspended and not mode.autonomous
            world.metrics.value = 95.0
            await step(worker, world, 101)  # monitoring goes on while paused: auto1 kept
            assert alice.improvement("production", "auto1").status is S.KEPT
            assert alice.improvement("production", "auto2").status is S.PROPOSED  # no deploy while paused
            alice.all_clear("resolved")
            set_flag(world, "enable_autonomous_improvements", True)
            mode = alice.improvement_mode("production")
            assert not mode.paused.paused and mode.autonomous_suspended and not mode.autonomous
            await step(worker, world, 1)
            assert alice.improvement("production", "auto2").status is S.PROPOSED  # still suspended
            with pytest.raises(Forbidden):
                alice.resume_autonomous("production", "go")
            root.resume_autonomous("production", "reviewed the incident")
            assert alice.improvement_mode("production").autonomous
            await step(worker, world, 1)
            assert alice.improvement("production", "auto2").status is S.MONITORING
            assert alice.improvement("production", "low").status is S.PROPOSED  # never without a person
        finally:
            await worker.close()

    asyncio.run(scenario())


def test_self_building_off_syncs_and_deploys_nothing(world: World) -> None:
    world.source.proposals = [proposal("x")]
    alice = world.engine("alice")
    world.engine("bob").sync_improvements()
    alice.approve_improvements("production", ["x"], "go")
    set_flag(world, "enable_self_building", False)

    async def scenario() -> None:
        worker = worker_for(alice)
        try:
            await step(worker, world, 1)
        finally:
            await worker.close()

    asyncio.run(scenario())
    assert alice.improvement("production", "x").status is S.APPROVED
    assert world.source.deployed == []
    assert alice.improvement_mode("production").agent_state == "off"


def test_a_deploy_refused_by_the_agent_fails_and_is_notified(world: World) -> None:
    world.source.proposals = [proposal("x")]
    alice = world.engine("alice")
    world.source.fail_deploy = AgentError("refused", "not today")

    async def scenario() -> None:
        worker = worker_for(alice)
        try:
            await step(worker, world)
            alice.approve_improvements("production", ["x"], "go")
            await step(worker, world, 1)
        finally:
            await worker.close()

    asyncio.run(scenario())
    x = alice.improvement("production", "x")
    assert x.status is S.FAILED and "not today" in x.evidence and x.deployed_at is None


def _wait_for(check: Any, seconds: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_parse_proposal_helper_matches_wire_shape() -> None:
    assert parse_proposal(proposal("w")).id == "w"


def test_a_slow_agent_never_holds_up_the_runners_tick(world: World) -> None:
    """The runner starts the queue's work as a task of its own: a deploy that hangs at the agent
    leaves the tick's time unchanged, and the next tick does not start a second step meanwhile."""
    from opsconsole.engine.runner import Runner

    world.source.proposals = [proposal("x")]
    alice = world.engine("alice")
    world.engine("bob").sync_improvements()
    alice.approve_improvements("production", ["x"], "go")
    release = asyncio.Event()
    deploy_started = asyncio.Event()

    async def slow_deploy(improvement_id: str) -> ActionResult:
        deploy_started.set()
        await release.wait()
        return ActionResult(improvement_id, True)

    world.source.deploy = slow_deploy  # type: ignore[method-assign]

    async def scenario() -> None:
        runner = Runner(alice)
        assert runner.improvements is not None
        try:
            await runner.tick()
            await asyncio.wait_for(deploy_started.wait(), 5)
            assert runner.stats.last_ms < 1000
            await runner.tick()  # the first step is still waiting on the agent: no second one
            assert not runner.improvements.kick(world.clock.now)
            assert alice.improvement("production", "x").status is S.DEPLOYING
            release.set()
            await runner.improvements.wait()
        finally:
            await runner.improvements.close()
            await runner.observer.close()

    asyncio.run(scenario())
    assert alice.improvement("production", "x").status is S.MONITORING
