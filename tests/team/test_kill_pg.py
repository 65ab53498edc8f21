"""The kill switch with the PostgreSQL store unreachable (issue 15 item 6): the flag files are safe
at once, the command says the store is down, and the event is recorded, once and with the audit
chain intact, when the store is back. The server is "stopped" by cutting a loopback TCP proxy in
front of the session's server: every connection reset, new ones refused, as a stopped server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsconsole.engine.model import RolloutState
from tests.integration.conftest import REPO, engine_as
from tests.pg.server import PgServer

from .leader_support import demo_service, leader_pid, new_database, pg_workspace, start_engine, stop, wait_for
from .pg_proxy import TcpProxy


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Any]:
    with demo_service(tmp_path) as svc:
        yield svc


@pytest.fixture
def proxy(pg_server: PgServer) -> Iterator[TcpProxy]:
    p = TcpProxy(pg_server.port)
    p.start()
    yield p
    p.close()


def flag_file(ws: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((ws / "flags" / "production.json").read_text())
    return doc


def safe(ws: Path) -> bool:
    try:
        doc = flag_file(ws)
    except (OSError, ValueError):
        return False
    nc = doc["flags"].get("new_checkout", {})
    return (
        doc.get("emergency_shutdown") is True and not nc.get("enabled") and not nc.get("rollout_percentage")
    )


def test_kill_with_postgresql_down_writes_files_at_once_and_records_when_it_is_back(
    tmp_path: Path, service: Any, pg_server: PgServer, proxy: TcpProxy
) -> None:
    url = new_database(pg_server).replace(f":{pg_server.port}/", f":{proxy.port}/")
    ws = pg_workspace(tmp_path, service.port, url)
    eng = engine_as(ws, "bob")
    rid = eng.start_rollout("steps", "kill drill").id
    engine = start_engine(ws)
    try:
        wait_for(lambda: leader_pid(url) == engine.pid, what="the engine leading")
        wait_for(
            lambda: eng.rollout(rid).phase_index == 1 and eng.rollout(rid).step_index >= 2, what="canary"
        )
        proxy.cut()
        t0 = time.monotonic()
        kill = subprocess.Popen(
            [sys.executable, "-m", "opsconsole", "kill", "--reason", "pg down drill", "--workspace", str(ws)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: safe(ws), 10, "safe flag files")
        files_after = time.monotonic() - t0  # a fresh process: the interpreter's start included
        out, err = kill.communicate(timeout=30)
        result = json.loads(out)
        assert kill.returncode == 5, out + err
        assert result["recorded"] is False and result["journaled"] is True, result
        assert result["timings_ms"]["files"] < 100, result["timings_ms"]
        assert files_after < 2.0, files_after
        assert "the store is down (unreachable)" in err, err
        assert result["store"] == "down", result
        assert "kill-journal.jsonl" in err, err
        # The store stays down a while: nothing undoes the safe files meanwhile.
        for _ in range(15):
            assert safe(ws), flag_file(ws)
            time.sleep(0.1)
        proxy.restore()
        wait_for(lambda: _recorded(eng), 30, "the kill recorded once the store is back")
        for _ in range(10):
            assert safe(ws), flag_file(ws)
            time.sleep(0.1)
    finally:
        log = stop(engine)
    try:
        r = eng.rollout(rid)
        assert r.state is RolloutState.ABORTED, (r.state, log)
        events = eng.audit_events()
        (kill_event,) = [e for e in events if e.action == "kill_switch.engage"]
        assert kill_event.data["recorded_late"] is True
        assert kill_event.data["reason"] == "pg down drill" or "pg down drill" in json.dumps(kill_event.data)
        promotions = [
            e
            for e in events
            if e.action == "rollout.transition" and e.data["to"] == "progressing" and e.seq > kill_event.seq
        ]
        assert promotions == []
        assert eng.verify_audit().ok
    finally:
        eng.close()


def _recorded(eng: Any) -> bool:
    try:
        return bool(eng.kill_state().source == "store")
    except Exception:  # the store is reconnecting
        return False


def test_the_console_kill_with_postgresql_down_is_safe_within_100_ms(
    tmp_path: Path, service: Any, pg_server: PgServer, proxy: TcpProxy
) -> None:
    """The console's path (an open engine, pools connected): the store vanishing does not delay the
    files; the result says the store is down; the next replay after it is back records it once."""
    url = new_database(pg_server).replace(f":{pg_server.port}/", f":{proxy.port}/")
    ws = pg_workspace(tmp_path, service.port, url)
    eng = engine_as(ws, "bob")
    try:
        eng.export_flags()
        proxy.cut()
        t0 = time.perf_counter()
        safe_at: list[float] = []
        res = eng.kill("console drill", on_safe=lambda s: safe_at.append(time.perf_counter() - t0))
        assert safe_at and safe_at[0] < 0.1, safe_at
        assert safe(ws)
        assert res.recorded is False and res.journaled is True
        assert res.store == "down" and res.store_note() == "the store is down (unreachable)", res
        proxy.restore()
        wait_for(lambda: _replayed(eng), 30, "the journal replayed")
        assert eng.replay_kill_journal() == 0  # once only
        (kill_event,) = [e for e in eng.audit_events() if e.action == "kill_switch.engage"]
        assert kill_event.data["recorded_late"] is True
        assert eng.verify_audit().ok
    finally:
        eng.close()


def _replayed(eng: Any) -> bool:
    try:
        eng.replay_kill_journal()
    except Exception:
        return False
    return bool(eng.kill_state().source == "store")
