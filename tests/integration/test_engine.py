"""The engine against real components: SQLite store, the demo service over HTTP, flag files on disk."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from opsconsole.demo.traffic import TrafficGenerator
from opsconsole.engine import Forbidden, Rejected
from opsconsole.engine.model import RolloutState
from opsconsole.engine.runner import Runner

from .conftest import engine_as, load_ws, write_workspace

S = RolloutState


def flag_doc(ws: Path, env: str = "production") -> dict:
    return json.loads((ws / "flags" / f"{env}.json").read_text())


def drive_until(engine, runner, rid, states, approver=None, seconds=20.0):
    async def loop():
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                await runner.tick()
                r = engine.rollout(rid)
                if r.state in states:
                    return r
                if approver is not None and r.state is S.AWAITING_APPROVAL:
                    approver.approve(rid, "gates pass, approving")
                await asyncio.sleep(0.2)
        finally:
            await runner.observer.close()
        raise AssertionError(f"rollout stuck in {engine.rollout(rid).state}: {engine.rollout(rid).reason}")

    return asyncio.run(loop())


def test_rollout_completes_with_real_gates_and_flag_file(tmp_path, service):
    ws = write_workspace(tmp_path, service.port)
    bob, alice = engine_as(ws, "bob"), engine_as(ws, "alice")
    traffic = TrafficGenerator(service.url, rps=40, max_seconds=30)
    traffic.start()
    try:
        r = bob.start_rollout("fast", "test run")
        runner = Runner(bob)
        done = drive_until(bob, runner, r.id, {S.COMPLETED, S.ROLLED_BACK}, approver=alice)
    finally:
        traffic.stop()
    assert done.state is S.COMPLETED, done.reason
    assert flag_doc(ws)["flags"]["new_checkout"]["rollout_percentage"] == 100
    assert flag_doc(ws, "staging")["flags"]["enable_new_checkout"]["enabled"] is True
    rep = bob.report(r.id).to_dict()
    canary = rep["rollout"]["phases"][1]
    assert [s["percent"] for s in canary["steps"]] == [0, 50, 100]
    approval = next(t for t in rep["timeline"] if t["action"] == "rollout.approval")
    assert approval["actor"] == "alice" and approval["reason"] == "gates pass, approving"
    assert bob.verify_audit().ok


def test_guard_breach_rolls_back_and_restores_flags(tmp_path, service):
    service.fault = "canary-errors"
    ws = write_workspace(tmp_path, service.port)
    bob, alice = engine_as(ws, "bob"), engine_as(ws, "alice")
    traffic = TrafficGenerator(service.url, rps=60, max_seconds=30)
    traffic.start()
    try:
        r = bob.start_rollout("fast")
        done = drive_until(bob, Runner(bob), r.id, {S.COMPLETED, S.ROLLED_BACK}, approver=alice)
    finally:
        traffic.stop()
    assert done.state is S.ROLLED_BACK
    assert "error_rate" in bob.report(r.id).to_dict()["timeline"][-2]["reason"]
    assert flag_doc(ws)["flags"]["new_checkout"]["rollout_percentage"] == 0
    # the rollback restores what the rollout changed: staging's flag goes back to its default
    assert flag_doc(ws, "staging")["flags"]["enable_new_checkout"]["enabled"] is False


def _to_awaiting_approval(ws, service):
    bob = engine_as(ws, "bob")
    r = bob.start_rollout("fast")
    runner = Runner(bob)
    return bob, drive_until(bob, runner, r.id, {S.AWAITING_APPROVAL})


def test_two_consoles_approving_at_once_promote_exactly_once(tmp_path, service):
    ws = write_workspace(tmp_path, service.port)
    _, r = _to_awaiting_approval(ws, service)
    config = load_ws(ws)
    approvers = [engine_as(ws, "alice", config), engine_as(ws, "root", config)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def approve(engine):
        barrier.wait()
        try:
            engine.approve(r.id, f"{engine.actor.user} approves")
            outcomes.append("ok")
        except Rejected as exc:
            outcomes.append(f"refused: {exc}")

    threads = [threading.Thread(target=approve, args=(e,)) for e in approvers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o == "ok" for o in outcomes) == [False, True], outcomes
    events = approvers[0].audit_events(target=f"rollout:{r.id}")
    assert sum(e.action == "rollout.approval" for e in events) == 1
    entered = [e for e in events if e.action == "rollout.transition" and e.data["phase"] == "canary"]
    assert len(entered) == 1
    assert approvers[0].rollout(r.id).phase_index == 1


def test_roles_and_read_only_are_enforced(tmp_path, service):
    ws = write_workspace(tmp_path, service.port)
    with pytest.raises(Forbidden, match="carol is viewer"):
        engine_as(ws, "carol").start_rollout("fast")
    bob, r = _to_awaiting_approval(ws, service)
    with pytest.raises(Forbidden, match="bob is operator, needs approver"):
        bob.approve(r.id, "mine")
    from opsconsole.engine.core import Engine
    from opsconsole.engine.model import Actor

    ro = Engine(load_ws(ws), ws, Actor("root", "test"), read_only=True)
    with pytest.raises(Forbidden, match="read-only"):
        ro.command(r.id, "abort", "forged")
    with pytest.raises(Forbidden, match="read-only"):
        ro.kill("forged")
    assert bob.rollout(r.id).state is S.AWAITING_APPROVAL


def test_kill_switch_aborts_everything_writes_files_and_one_audit_event(tmp_path, service):
    ws = write_workspace(tmp_path, service.port)
    bob, r_wait = _to_awaiting_approval(ws, service)
    # One active rollout per flag: the other three drive flags of their own.
    for flag in ("otel_enabled", "error_handling_enabled", "reward_learning_enabled"):
        plan = (
            f"name: {flag}\nphases:\n  - {{name: switch, environment: production, flags: {{{flag}: true}}}}\n"
        )
        (tmp_path / "plans" / f"{flag}.yaml").write_text(plan)
    bob = engine_as(ws, "bob")
    pending = [
        bob.start_rollout(flag)
        for flag in ("otel_enabled", "error_handling_enabled", "reward_learning_enabled")
    ]
    before = len(bob.audit_events())
    res = bob.kill("drill")
    assert res.recorded and not res.already_engaged
    assert sorted(res.aborted) == sorted([r_wait.id, *[p.id for p in pending]])
    for env in ("staging", "production"):
        doc = flag_doc(ws, env)
        assert doc["emergency_shutdown"] is True
        assert doc["flags"]["emergency_shutdown"]["enabled"] is True
        assert doc["flags"]["phase_4_deployment"]["enabled"] is False
    assert all(r.state is S.ABORTED for r in bob.rollouts())
    new = bob.audit_events()[before:]
    assert [e.action for e in new] == ["kill_switch.engage"]
    assert new[0].data["reason"] == "drill"
    assert bob.verify_audit().ok
    # idempotent, and nothing starts while engaged
    again = bob.kill("drill again")
    assert again.already_engaged and again.aborted == []
    with pytest.raises(Rejected, match="kill switch is engaged"):
        bob.start_rollout("fast")
    # all-clear needs an approver and a reason; then files show stored values again
    with pytest.raises(Forbidden):
        bob.all_clear("over")
    alice = engine_as(ws, "alice")
    with pytest.raises(Rejected, match="reason"):
        alice.all_clear(" ")
    alice.all_clear("drill over")
    assert flag_doc(ws)["emergency_shutdown"] is False
    assert not alice.kill_state().engaged


def test_environment_variable_at_start_engages_the_kill_switch_as_an_audited_action(tmp_path, service):
    ws = write_workspace(tmp_path, service.port)
    from opsconsole.engine.core import Engine
    from opsconsole.engine.model import Actor

    env = {"EMERGENCY_SHUTDOWN": "true"}
    viewer = Engine(load_ws(ws), ws, Actor("carol", "t"), environ=env)
    with pytest.raises(Forbidden):
        viewer.engage_from_environment()  # the same permission as the key
    assert not viewer.kill_state().engaged
    eng = Engine(load_ws(ws), ws, Actor("alice", "t"), environ=env)
    res = eng.engage_from_environment()
    assert res is not None and res.recorded
    assert eng.kill_state().engaged and eng.kill_state().by == "alice"
    assert flag_doc(ws)["flags"]["emergency_shutdown"]["enabled"] is True
    (event,) = [e for e in eng.audit_events() if e.action == "kill_switch.engage"]
    assert event.actor == "alice" and "EMERGENCY_SHUTDOWN" in event.data["reason"]
    assert eng.engage_from_environment() is None  # engaged already: no second event
    eng.all_clear("drill over")
    assert flag_doc(ws)["emergency_shutdown"] is False


@pytest.fixture
def hanging_server():
    """Accepts connections and never answers: a metric source that hangs."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    conns = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for c in conns:
        c.close()
    srv.close()


def test_kill_switch_does_not_wait_on_a_hanging_metric_source(tmp_path, service, hanging_server):
    ws = write_workspace(tmp_path, service.port)
    text = (ws / "opsconsole.yaml").read_text()
    hang = f"http://127.0.0.1:{hanging_server}/metrics"
    text = text.replace(f'http://127.0.0.1:{service.port}/metrics", timeout: 1s', f'{hang}", timeout: 3s')
    (ws / "opsconsole.yaml").write_text(text)
    bob, alice = engine_as(ws, "bob"), engine_as(ws, "alice")
    r = bob.start_rollout("fast")
    runner = Runner(bob)

    async def scenario():
        try:
            return await _scenario()
        finally:
            await runner.observer.close()

    async def _scenario():
        await runner.tick()  # pending -> progressing
        await runner.tick()  # staging gates pass (health is on the live service)
        alice.approve(r.id, "go")
        tick = asyncio.create_task(runner.tick())  # canary: its guard scrapes the hanging source
        await asyncio.sleep(0.3)
        assert not tick.done()
        t0 = time.perf_counter()
        res = await asyncio.to_thread(bob.kill, "source hangs")
        kill_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        await tick
        return res, kill_s, time.perf_counter() - t1

    res, kill_s, tick_rest = asyncio.run(scenario())
    assert kill_s < 0.5, kill_s
    assert res.aborted == [r.id]
    assert flag_doc(ws)["flags"]["new_checkout"]["rollout_percentage"] == 0
    assert tick_rest < 4.0  # the hanging scrape is bounded by its timeout
    assert bob.rollout(r.id).state is S.ABORTED


def test_kill_switch_with_a_locked_store_writes_files_first_and_journals(tmp_path, service):
    import sqlite3

    ws = write_workspace(tmp_path, service.port)
    bob = engine_as(ws, "bob")
    r = bob.start_rollout("fast")
    holder = sqlite3.connect(ws / "state.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock for too long
    try:
        res = bob.kill("store wedged")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not res.recorded and res.timings_ms["files"] < 200
    assert flag_doc(ws)["emergency_shutdown"] is True
    later = engine_as(ws, "alice")  # opening the store again replays the journal
    assert later.kill_state().engaged
    assert later.rollout(r.id).state is S.ABORTED
    kills = later.audit_events(target="kill_switch")
    assert len(kills) == 1 and kills[0].data["recorded_late"] and kills[0].actor == "bob"


def test_high_risk_and_production_flag_changes_need_a_reason(tmp_path):
    """The console asks for a reason; the engine refuses without one, whoever calls it."""
    ws = write_workspace(tmp_path, port=9)
    alice = engine_as(ws, "alice")
    with pytest.raises(Rejected, match="needs a reason"):
        alice.set_flag("production", "new_checkout", 10, "  ")
    with pytest.raises(Rejected, match="high-risk"):
        alice.set_flag("staging", "emergency_shutdown", True, "")
    assert alice.flag_history("production", "new_checkout") == []
    alice.set_flag("staging", "enable_new_checkout", True, "")  # low risk, not production: fine
    alice.set_flag("production", "new_checkout", 10, "first 10%")
    assert alice.flag_states("production")["new_checkout"].value == 10
