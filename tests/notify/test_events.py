"""Every event a user can select is really sent by the engine, and only once the state it reports is
in the store: the receiver looks at the store at the moment a notification arrives.

Events: kill_switch, rollback, approval_needed, backup_failed, alarm_firing, improvement_rollback.
"""

from __future__ import annotations

import asyncio
import shutil
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opsconsole.engine.config import load_config
from opsconsole.engine.core import Engine
from opsconsole.engine.model import Actor, RolloutState
from opsconsole.engine.runner import Runner
from opsconsole.engine.targets import notify
from tests.integration.test_improvements import MetricsServer

from .conftest import Receiver, hook, telegram

REPO = Path(__file__).resolve().parents[2]
S = RolloutState
EVENTS = "[kill_switch, rollback, approval_needed, backup_failed, alarm_firing, improvement_rollback]"

PLAN = """
name: one
phases:
  - name: production
    environment: production
    flags: {enable_new_checkout: true}
    gates:
      - {kind: metric, name: latency, query: latency_ms, max: 100000}
    approval: {required: true, role: approver}
"""


def write_ws(tmp_path: Path, metrics_port: int, items: str) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "one.yaml").write_text(PLAN)
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("alpha\n")
    main = f"""
    interval: 0.2s
    roles:
      default: viewer
      users: {{alice: approver, bob: operator, root: admin}}
    environments:
      production:
        metrics: {{kind: scrape, url: "http://127.0.0.1:{metrics_port}/metrics", timeout: 1s, window: 10s}}
        flags: {{kind: file, path: "${{WORKSPACE}}/flags/production.json"}}
    plans: ["{tmp_path}/plans/*.yaml"]
    flags: "{REPO}/config/flags.yaml"
    kill_switch:
      flags_off: [phase_4_deployment]
      flags_on: [emergency_shutdown]
    alarms:
      rules:
        - {{name: LatencyHigh, environment: production, query: latency_ms, max: 500, severity: critical}}
    backups:
      site:
        kind: files
        paths: ["{data}"]
        configuration: false
        flags: false
    notifications:
    """
    (ws / "opsconsole.yaml").write_text(textwrap.dedent(main) + textwrap.indent(items, "  "))
    return ws


def engine(ws: Path, user: str) -> Engine:
    return Engine(load_config(ws / "opsconsole.yaml", {"WORKSPACE": str(ws)}), ws, Actor(user, "test"))


def wait_for(check: Callable[[], Any], seconds: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {seconds} s")


@pytest.fixture
def metrics() -> Iterator[MetricsServer]:
    m = MetricsServer()
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def ws(tmp_path: Path, metrics: MetricsServer, receiver: Receiver, token: str) -> Path:
    items = f"- {hook('webhook', f'{receiver.url}/hook', EVENTS)}\n- {telegram(receiver.url, EVENTS)}\n"
    return write_ws(tmp_path, metrics.port, items)


def at_receipt(receiver: Receiver, ws: Path, look: Callable[[Engine], Any]) -> None:
    """Each arrival records what the store said then (a fresh engine: another process's view)."""

    def on_post(path: str, body: dict[str, Any]) -> Any:
        reader = engine(ws, "root")
        try:
            return look(reader)
        finally:
            reader.store.close()

    receiver.on_post = on_post


def arrived(receiver: Receiver, event: str, n: int = 2) -> list[Any]:
    """What the store said when `event` arrived, once the webhook and the Telegram copy both have."""
    title = notify.TITLES[event]

    def got() -> list[Any]:
        seen = []
        with receiver.lock:
            pairs = list(zip(receiver.posts, receiver.seen, strict=True))
        for (_, body), look in pairs:
            if body.get("event") == event or str(body.get("text", "")).startswith(title):
                seen.append(look)
        return seen if len(seen) >= n else []

    return list(wait_for(got, 10, f"{event} at the webhook and at Telegram"))


def ticks(runner: Runner, n: int, until: Callable[[], bool] | None = None) -> None:
    async def loop() -> None:
        try:
            for _ in range(n):
                await runner.tick()
                if until is not None and until():
                    return
                await asyncio.sleep(0.1)
        finally:
            await runner.observer.close()

    asyncio.run(loop())


def test_kill_switch_is_sent_once_engaged_in_the_store(ws: Path, receiver: Receiver) -> None:
    at_receipt(receiver, ws, lambda e: e.kill_state().engaged)
    root = engine(ws, "root")
    root.kill("drill")
    assert arrived(receiver, "kill_switch") == [True, True]


def test_approval_needed_then_rollback_are_sent_after_their_state_is_stored(
    ws: Path, receiver: Receiver
) -> None:
    bob = engine(ws, "bob")
    r = bob.start_rollout("one", "test")
    at_receipt(receiver, ws, lambda e: e.rollout(r.id).state)
    ticks(Runner(bob), 40, lambda: bob.rollout(r.id).state is S.AWAITING_APPROVAL)
    assert bob.rollout(r.id).state is S.AWAITING_APPROVAL
    assert arrived(receiver, "approval_needed") == [S.AWAITING_APPROVAL] * 2
    bob.command(r.id, "rollback", "changed my mind")
    seen = arrived(receiver, "rollback")
    assert all(state in (S.ROLLING_BACK, S.ROLLED_BACK) for state in seen), seen
    rollback = next(b for b in receiver.bodies() if b.get("event") == "rollback")
    assert rollback["rollout"] == r.id and "changed my mind" in rollback["message"]


def test_backup_failed_is_sent_with_the_failed_run_in_the_store(
    ws: Path, receiver: Receiver, tmp_path: Path
) -> None:
    root = engine(ws, "root")
    at_receipt(receiver, ws, lambda e: [str(b.status) for b in e.backups("site")])
    assert str(root.run_backup("site").status) == "ok"
    shutil.rmtree(tmp_path / "data")  # what it backs up is gone
    failed = root.run_backup("site")
    assert str(failed.status) == "failed"
    [first, _] = arrived(receiver, "backup_failed")
    assert first[0] == "failed"  # the newest run, failed, was stored before the notification went
    body = next(b for b in receiver.bodies() if b.get("event") == "backup_failed")
    assert body["run"] == failed.id and body["target"] == "site"


def test_a_failed_verification_is_a_backup_failure_too(ws: Path, receiver: Receiver, tmp_path: Path) -> None:
    at_receipt(receiver, ws, lambda e: e.backup(run.id).status)
    root = engine(ws, "root")
    run = root.run_backup("site")
    Path(run.locations[0]).write_bytes(b"not the archive")
    assert str(root.verify_backup("site", run.id).status) == "verify_failed"
    assert [str(s) for s in arrived(receiver, "backup_failed")] == ["verify_failed"] * 2
    body = next(b for b in receiver.bodies() if b.get("event") == "backup_failed")
    assert "failed verification" in body["message"]


def test_alarm_firing_is_sent_once_recorded_and_once_per_firing_across_a_restart(
    ws: Path, receiver: Receiver, metrics: MetricsServer
) -> None:
    def look(e: Engine) -> list[str]:
        return [a.action for a in e.audit_events(target="alarm:LatencyHigh")]

    at_receipt(receiver, ws, look)
    metrics.value = 900.0
    bob = engine(ws, "bob")
    ticks(Runner(bob), 3)
    assert arrived(receiver, "alarm_firing") == [["alarm.firing"]] * 2
    body = next(b for b in receiver.bodies() if b.get("event") == "alarm_firing")
    assert body["alarm"] == "LatencyHigh" and body["severity"] == "critical"
    assert "LatencyHigh (critical) firing in production" in body["message"]

    ticks(Runner(engine(ws, "bob")), 3)  # a restarted engine: the alarm is still firing, said once
    time.sleep(0.3)
    assert len(receiver.posts) == 2

    metrics.value = 100.0
    ticks(Runner(engine(ws, "bob")), 2)  # it clears...
    metrics.value = 900.0
    ticks(Runner(engine(ws, "bob")), 2)  # ...and fires again: said again
    wait_for(lambda: len(receiver.posts) == 4, 10, "the second firing announced")
    assert [a.action for a in bob.audit_events(target="alarm:LatencyHigh")] == ["alarm.firing"] * 2


def test_improvement_rollback_is_sent_after_the_rollback_is_stored(
    tmp_path: Path, receiver: Receiver
) -> None:
    from opsconsole.engine.improvements.model import ImprovementStatus
    from tests.integration.test_improvements import (
        Clock,
        InTestSource,
        proposal,
        step,
        worker_for,
        write_config,
    )

    ws = tmp_path / "ws"
    ws.mkdir()
    metrics = MetricsServer()
    write_config(ws, metrics.port, receiver.port)  # its webhook posts to /hook on our receiver
    clock, source = Clock(), InTestSource()

    def make(user: str) -> Engine:
        e = Engine(
            load_config(ws / "opsconsole.yaml", {"WORKSPACE": str(ws)}), ws, Actor(user, "test"), clock=clock
        )
        e.improvement_sources = lambda settings, environ: source  # type: ignore[method-assign]
        return e

    world = type("W", (), {"clock": clock, "source": source, "metrics": metrics})()
    source.proposals = [proposal("x")]
    alice = make("alice")
    at_receipt(receiver, ws, lambda e: str(e.improvement("production", "x").status))

    async def scenario() -> None:
        worker = worker_for(alice)
        try:
            await step(worker, world)
            alice.approve_improvements("production", ["x"], "go")
            await step(worker, world, 1)
            metrics.value = 200.0  # twice the baseline: harmful
            await step(worker, world, 1)
        finally:
            await worker.close()

    try:
        asyncio.run(scenario())
        assert alice.improvement("production", "x").status is ImprovementStatus.ROLLED_BACK
        assert arrived(receiver, "improvement_rollback", n=1) == [str(ImprovementStatus.ROLLED_BACK)]
    finally:
        metrics.close()
