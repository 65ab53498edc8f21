"""Leadership on a shared PostgreSQL store (issue 15 item 3): engines as separate processes on one
database; only the holder of the advisory lock runs the gates; a killed leader is replaced within
seconds and the rollout finishes with every step exactly once; SIGTERM hands over at once."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import engine_as
from tests.pg.server import PgServer

from .leader_support import (
    STEPS,
    cli,
    demo_service,
    leader_pid,
    new_database,
    pg_workspace,
    start_engine,
    stop,
    wait_for,
)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Any]:
    with demo_service(tmp_path) as svc:
        yield svc


def canary_steps(eng: Any, rid: str) -> list[int]:
    return [
        e.data["percent"]
        for e in eng.audit_events(target=f"rollout:{rid}")
        if e.action == "rollout.transition" and e.data["phase"] == "canary" and e.data["to"] == "progressing"
    ]


def test_sigkill_of_the_leader_mid_rollout_hands_over_and_every_step_happens_once(
    tmp_path: Path, service: Any, pg_server: PgServer
) -> None:
    url = new_database(pg_server)
    ws = pg_workspace(tmp_path, service.port, url)
    eng = engine_as(ws, "bob")
    rid = eng.start_rollout("steps", "leader failover test").id
    first = start_engine(ws)
    second = None
    try:
        wait_for(lambda: leader_pid(url) == first.pid, what="the first engine leading")
        second = start_engine(ws)
        wait_for(
            lambda: eng.rollout(rid).phase_index == 1 and eng.rollout(rid).step_index >= 2, what="step 2"
        )
        time.sleep(1.0)  # the second engine is up and following by now
        assert leader_pid(url) == first.pid  # one leader: the follower did not take over
        first.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        stop(first)
        wait_for(lambda: leader_pid(url) == second.pid, 10, "the second engine leading")
        took_over = time.monotonic() - killed
        assert took_over < 5.0, took_over
        done = wait_for(
            lambda: eng.rollout(rid) if not eng.rollout(rid).active else None, what="the rollout done"
        )
    finally:
        out = stop(second) if second is not None else ""
        stop(first)
    try:
        assert done.state == "completed", out
        assert canary_steps(eng, rid) == STEPS  # every step once, in order, none skipped
        staging = [
            e
            for e in eng.audit_events(target=f"rollout:{rid}")
            if e.action == "rollout.transition"
            and e.data["phase"] == "staging"
            and e.data["to"] == "progressing"
        ]
        assert len(staging) == 1
        assert eng.verify_audit().ok
    finally:
        eng.close()


def test_sigterm_releases_leadership_at_once_and_check_says_so(
    tmp_path: Path, service: Any, pg_server: PgServer
) -> None:
    url = new_database(pg_server)
    ws = pg_workspace(tmp_path, service.port, url)
    w = ("--workspace", str(ws))
    p = cli("engine", "--check", *w)
    assert p.returncode == 1, p
    assert p.stdout.startswith("unhealthy: no engine holds leadership"), p.stdout
    first = start_engine(ws)
    second = None
    try:
        wait_for(lambda: leader_pid(url) == first.pid, what="the first engine leading")
        p = cli("engine", "--check", *w)
        assert p.returncode == 0, p
        assert f"pid {first.pid}" in p.stdout and len(p.stdout.strip().splitlines()) == 1, p.stdout
        second = start_engine(ws)
        time.sleep(2.0)  # the second is up and following
        assert leader_pid(url) == first.pid
        first.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        wait_for(lambda: leader_pid(url) == second.pid, 10, "the second engine leading")
        handed = time.monotonic() - sent
        out = stop(first)
        assert first.returncode == 0, out
        assert "leadership released" in out and "Traceback" not in out, out
        assert handed < 2.0, handed
    finally:
        stop(first)
        if second is not None:
            stop(second)
    p = cli("engine", "--check", *w)
    assert p.returncode == 1 and "no engine holds leadership" in p.stdout, p


def test_check_says_unhealthy_when_the_store_does_not_answer(tmp_path: Path, service: Any) -> None:
    ws = pg_workspace(tmp_path, service.port, "postgresql://nobody@127.0.0.1:9/none")
    p = cli("engine", "--check", "--workspace", str(ws), timeout=60)
    assert p.returncode == 1, p
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("unhealthy: "), p.stdout
    assert "Traceback" not in p.stdout + p.stderr


def test_a_follower_cut_from_the_store_says_so_and_recovers_while_the_leader_goes_on(
    tmp_path: Path, service: Any, pg_server: PgServer
) -> None:
    """Two hosts (two workspaces), one database: the follower's way to the server is cut; its health
    says the store is down, the leader keeps leading, and the follower is back to `running` after."""
    import json

    from .pg_proxy import TcpProxy

    url = new_database(pg_server)
    proxy = TcpProxy(pg_server.port)
    proxy.start()
    for host in ("a", "b"):
        (tmp_path / host).mkdir()
    ws_a = pg_workspace(tmp_path / "a", service.port, url)
    ws_b = pg_workspace(tmp_path / "b", service.port, url.replace(f":{pg_server.port}/", f":{proxy.port}/"))

    def state(ws: Path) -> str:
        try:
            return str(json.loads((ws / "engine-health.json").read_text())["state"])
        except (OSError, ValueError, KeyError):
            return ""

    leader = start_engine(ws_a)
    follower = None
    try:
        wait_for(lambda: leader_pid(url) == leader.pid, what="the first engine leading")
        follower = start_engine(ws_b)
        wait_for(lambda: state(ws_b) == "running", what="the follower running")
        proxy.cut()
        wait_for(lambda: state(ws_b) == "store_error", 20, "the follower saying the store is down")
        assert leader_pid(url) == leader.pid
        proxy.restore()
        wait_for(lambda: state(ws_b) == "running", 30, "the follower running again")
        assert leader_pid(url) == leader.pid
    finally:
        if follower is not None:
            stop(follower)
        stop(leader)
        proxy.close()


def test_the_leader_session_has_server_keepalives_so_a_vanished_host_loses_the_lock(
    pg_server: PgServer,
) -> None:
    """A leader host that disappears without closing its socket must not keep the lock for the OS
    default of two hours: the server probes the leader's session itself."""
    import os

    from opsconsole.engine.leader import Leadership

    url = new_database(pg_server)
    one, two = Leadership(url, None, os.environ), Leadership(url, None, os.environ)
    try:
        assert one.try_acquire() and not two.try_acquire()
        conn = one._conn
        assert conn is not None
        settings = [
            conn.execute(f"SHOW {name}").fetchone()[0]
            for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
        ]
        assert settings == ["10", "5", "3"], settings
        assert one.check()
        one.release()
        assert two.try_acquire()
    finally:
        one.release()
        two.release()


def test_check_on_sqlite_asks_the_workspace_lock(tmp_path: Path, service: Any) -> None:
    from tests.integration.conftest import write_workspace

    ws = write_workspace(tmp_path, service.port)
    w = ("--workspace", str(ws))
    p = cli("engine", "--check", *w)
    assert p.returncode == 1 and p.stdout.startswith("unhealthy: no engine is running on"), p
    proc = start_engine(ws)
    try:
        wait_for(lambda: cli("engine", "--check", *w).returncode == 0, what="--check healthy")
        p = cli("engine", "--check", *w)
        assert p.stdout.strip() == f"ok: engine pid {proc.pid} is running on {ws}; the store answers", p
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    assert cli("engine", "--check", *w).returncode == 1
