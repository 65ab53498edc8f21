"""Delivery: retried from the store's outbox, also by a new engine process after a restart; never
waited for by the kill switch or a rollback, however long a receiver hangs."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconsole.engine.model import RolloutState
from opsconsole.engine.runner import Runner
from tests.faults.conftest import cli, kill_only_workspace, spawn, wait_for
from tests.integration.test_improvements import MetricsServer

from .conftest import TOKEN, TOKEN_ENV, Receiver, free_port, hook, telegram
from .test_events import engine, write_ws

S = RolloutState
ENV = {TOKEN_ENV: TOKEN}

GUARDED = """
name: guarded
phases:
  - name: production
    environment: production
    strategy: {kind: canary, flag: new_checkout, steps: [10, 50, 100], step_wait: 30s}
    guards:
      - {kind: metric, name: latency, query: latency_ms, max: 500, failure_limit: 1}
"""


def outbox(ws: Path) -> list[tuple[str, str, int, str]]:
    with sqlite3.connect(ws / "state.db") as db:
        rows = db.execute("SELECT event, state, attempts, last_error FROM outbox ORDER BY id").fetchall()
    return [(str(e), str(s), int(a), str(err)) for e, s, a, err in rows]


def test_a_telegram_message_whose_receiver_was_down_is_sent_by_the_next_engine_process(
    tmp_path: Path,
) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    items = f"  - {telegram(api, '[kill_switch]')}\n  - {hook('slack', f'{api}/slack', '[kill_switch]')}\n"
    ws = kill_only_workspace(tmp_path, "notifications:\n" + items)
    w = ("--workspace", str(ws))
    p = cli("kill", "--reason", "receiver down", *w, timeout=30, env=ENV)
    assert p.returncode == 0, p.stderr
    # The process is gone; both messages wait in the store, tried once and refused.
    assert [(e, s) for e, s, _, _ in outbox(ws)] == [("kill_switch", "pending")] * 2
    assert all(a >= 1 and err.startswith("ConnectError") for _, _, a, err in outbox(ws))

    receiver = Receiver(port).start()
    engine = spawn("engine", *w, env=ENV)
    try:
        wait_for(lambda: len(receiver.posts) == 2, 40, "both messages delivered by the new engine")
        paths = sorted(path for path, _ in receiver.posts)
        assert paths == [f"/bot{TOKEN}/sendMessage", "/slack"]
        tg = next(b for path, b in receiver.posts if path.startswith("/bot"))
        assert "kill switch engaged" in tg["text"] and "receiver down" in tg["text"]
        wait_for(lambda: all(s == "delivered" for _, s, _, _ in outbox(ws)), 10, "the rows marked delivered")
    finally:
        engine.terminate()
        out, _ = engine.communicate(timeout=10)
        receiver.stop()
    assert TOKEN not in out and TOKEN not in p.stdout + p.stderr
    assert TOKEN.encode() not in (ws / "state.db").read_bytes()


def test_an_unsent_rollback_survives_a_new_engine_on_the_same_store(
    tmp_path: Path, metrics: MetricsServer, token: str
) -> None:
    port = free_port()  # nobody there yet
    ws = write_ws(tmp_path, metrics.port, f"- {telegram(f'http://127.0.0.1:{port}', '[rollback]')}\n")
    bob = engine(ws, "bob")
    r = bob.start_rollout("one", "test")
    bob.command(r.id, "rollback", "bad idea")
    wait_for(lambda: outbox(ws) and outbox(ws)[0][3], 10, "the first attempt, refused")
    bob.store.close()  # the first engine is gone
    with sqlite3.connect(ws / "state.db") as db:
        db.execute("UPDATE outbox SET next_at = 0")  # its pause is over

    later = Receiver(port).start()
    try:
        fresh = engine(ws, "bob")

        async def one_tick() -> None:
            runner = Runner(fresh)
            try:
                await runner.tick()
            finally:
                await runner.observer.close()

        asyncio.run(one_tick())
        wait_for(lambda: later.posts, 10, "the rollback delivered by the new engine")
        [(path, body)] = later.posts
        assert path == f"/bot{token}/sendMessage" and "bad idea" in body["text"]
        wait_for(lambda: outbox(ws)[0][1] == "delivered", 10, "the row marked delivered")
    finally:
        later.stop()


@pytest.fixture
def metrics() -> Iterator[MetricsServer]:
    m = MetricsServer()
    try:
        yield m
    finally:
        m.close()


def test_the_kill_switch_never_waits_for_hanging_telegram_or_slack(tmp_path: Path, hanging: int) -> None:
    api = f"http://127.0.0.1:{hanging}"
    items = (
        f"  - {telegram(api, '[kill_switch]', timeout='5s')}\n"
        f"  - {hook('slack', f'{api}/slack', '[kill_switch]', timeout='5s')}\n"
    )
    ws = kill_only_workspace(tmp_path, "notifications:\n" + items)
    w = ("--workspace", str(ws))
    assert cli("status", *w, env=ENV).returncode == 0  # the store exists before the timed command
    p = cli("kill", "--reason", "hanging receivers", *w, timeout=30, env=ENV)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["timings_ms"]["files"] < 1000
    assert json.loads((ws / "flags" / "production.json").read_text())["emergency_shutdown"] is True
    assert [s for _, s, _, _ in outbox(ws)] == ["pending", "pending"]  # kept for a runner to retry


def test_a_rollback_never_waits_for_a_hanging_receiver(
    tmp_path: Path, metrics: MetricsServer, hanging: int, token: str
) -> None:
    api = f"http://127.0.0.1:{hanging}"
    items = f"- {telegram(api, '[rollback]', timeout='5s')}\n- {hook('webhook', f'{api}/h', '[rollback]', timeout='5s')}\n"
    ws = write_ws(tmp_path, metrics.port, items)
    (tmp_path / "plans" / "guarded.yaml").write_text(GUARDED)
    bob = engine(ws, "bob")

    # By hand: the command returns with the flags restored while both POSTs hang.
    r = bob.start_rollout("one", "by hand")
    t0 = time.monotonic()
    done = bob.command(r.id, "rollback", "by hand")
    assert time.monotonic() - t0 < 1.0
    assert done.state is S.ROLLED_BACK

    # By a guard, in the runner's tick: the tick that rolls back is not held up either.
    r = bob.start_rollout("guarded", "guarded")
    runner = Runner(bob)
    took: list[float] = []

    async def drive() -> None:
        try:
            for _ in range(30):
                t = time.monotonic()
                await runner.tick()
                took.append(time.monotonic() - t)
                state = bob.rollout(r.id).state
                if state is S.PROGRESSING:
                    metrics.value = 900.0  # the guard breaches
                if state is S.ROLLED_BACK:
                    return
                await asyncio.sleep(0.05)
        finally:
            await runner.observer.close()

    asyncio.run(drive())
    assert bob.rollout(r.id).state is S.ROLLED_BACK
    assert max(took) < 2.0, took  # a POST waited for would take its 5 s timeout
    doc = json.loads((ws / "flags" / "production.json").read_text())
    assert doc["flags"]["new_checkout"]["rollout_percentage"] == 0
    assert {e for e, _, _, _ in outbox(ws)} == {"rollback"}
