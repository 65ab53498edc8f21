"""The console's first look at the rollouts (engine/firstlook.py): the rows the engine would show,
read from the store without the engine, or nothing when the reader cannot vouch for them."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from opsconsole.demo.run import write_demo_config
from opsconsole.engine import config_path, open_engine, read_first_look, save_first_look
from opsconsole.engine.core import Engine
from opsconsole.engine.firstlook import LOOK
from opsconsole.engine.model import Actor, GateVerdict, RolloutState, Verdict
from opsconsole.engine.views import rollout_row, why

NOW = 1_900_000_000.0
ROW_KEYS = ("id", "plan", "state", "phase", "percent", "traffic", "started_by", "why")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _engine(ws: Path) -> Engine:
    engine = open_engine(None, ws)
    engine.clock = lambda: NOW
    return engine


def _look(ws: Path):  # type: ignore[no-untyped-def]
    return read_first_look(config_path(None, ws), ws, clock=lambda: NOW)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A demo workspace (metrics on a port nothing listens on) with rollouts in every state the
    table shows, as the engine stored them, and the first-look cache an earlier console left."""
    ws = tmp_path / "ws"
    ws.mkdir()
    write_demo_config(ws, free_port())
    engine = _engine(ws)
    first = engine.start_rollout("demo", "test")
    guard = GateVerdict(
        "error_rate", "metric", Verdict.FAIL, "4.2% > 1%", 0.042, "<= 1%", failures=1, failure_limit=2
    )
    gate = GateVerdict("health", "health", Verdict.UNKNOWN, "no data", None, "HTTP 200")
    soak = GateVerdict("soak", "soak", Verdict.PASS, "soaked 4s of 3s", 3.8, ">= 3s in phase")
    changes = [
        {"state": RolloutState.PENDING},
        {"state": RolloutState.PAUSED, "reason": "paused by alice: looking"},
        {"state": RolloutState.AWAITING_APPROVAL, "reason": "waiting for approval", "verdicts": (gate, soak)},
        {"state": RolloutState.COMPLETED, "reason": "all phases done", "phase_index": 1, "step_index": 6},
        # progressing: counting a step wait down; blocked by a failing guard; blocked by a gate
        {"state": RolloutState.PROGRESSING, "phase_index": 1, "step_index": 2, "step_started_at": NOW - 2},
        {"state": RolloutState.PROGRESSING, "phase_index": 1, "step_index": 3, "verdicts": (guard,)},
        {
            "state": RolloutState.PROGRESSING,
            "reason": "x",
            "verdicts": (gate, soak),
            "step_started_at": NOW - 60,
        },
        # stopped: the canary flag says what the new version gets now (the stored value: 0)
        {"state": RolloutState.ABORTED, "reason": "aborted by bob", "phase_index": 1, "step_index": 4},
    ]
    with engine.store.transaction() as tx:
        # Inserted beside the one started (one active rollout per flag is the engine's rule for
        # starting, not the store's): what the table shows of each is what matters here.
        for i, change in enumerate(changes):
            tx.insert_rollout(replace(first, id=f"demo-{i}", created_at=NOW - 100 + i, **change))  # type: ignore[arg-type]
        tx.set_flag("production", "new_checkout", 0, Actor("bob", "test"), "abort", NOW)
    save_first_look(engine)
    engine.close()
    return ws


def test_rows_agree_with_the_engine(ws: Path) -> None:
    look = _look(ws)
    assert look is not None
    engine = _engine(ws)
    rollouts = engine.rollouts()
    from opsconsole.engine.views import stopped_traffic

    traffic = stopped_traffic(engine, rollouts)
    expected = [rollout_row(engine, r, traffic) for r in rollouts]
    assert [{k: row[k] for k in ROW_KEYS} for row in look.rows] == [
        {k: row[k] for k in ROW_KEYS} for row in expected
    ]
    assert [row["why_static"] for row in look.rows] == [why(engine, r, live=False) for r in rollouts]
    assert [row["verdicts"] for row in look.rows] == [
        [v.to_dict() | _extra(v) for v in r.verdicts] for r in rollouts
    ]
    states = {row["state"] for row in look.rows}
    assert states == {"pending", "paused", "awaiting_approval", "completed", "progressing", "aborted"}
    aborted = next(row for row in look.rows if row["state"] == "aborted")
    assert (aborted["percent"], aborted["traffic"]) == (50, 0)
    assert any(row["why"].startswith("next step in ") for row in look.rows)
    assert any(row["why"].startswith("guard error_rate: ") for row in look.rows)
    assert look.environments == {"development": False, "staging": False, "production": True}
    engine.close()


def _extra(v: GateVerdict) -> dict[str, object]:
    """The verdict's fields the store keeps beyond to_dict (codec.verdict_to_text)."""
    return {"inconclusive": v.inconclusive, "escalate": v.escalate, "no_series": v.no_series}


def test_no_cache_or_a_changed_configuration(ws: Path) -> None:
    assert _look(ws) is not None
    config = ws / "opsconsole.yaml"
    config.write_text(config.read_text() + "\n# edited\n")
    assert _look(ws) is None  # the cache vouches for the configuration it was written from
    (ws / LOOK).unlink()
    assert _look(ws) is None


def test_a_missing_or_damaged_store(ws: Path) -> None:
    body = json.loads((ws / LOOK).read_text())
    os.replace(body["store"], ws / "moved.db")
    assert _look(ws) is None
    assert not Path(body["store"]).exists()  # and the reader did not create one
    Path(body["store"]).write_bytes(b"not a database" * 100)
    assert _look(ws) is None


def test_a_newer_schema(ws: Path) -> None:
    body = json.loads((ws / LOOK).read_text())
    with sqlite3.connect(body["store"]) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, ?)", (body["schema_version"] + 1, NOW))
    assert _look(ws) is None


def test_a_state_it_does_not_know(ws: Path) -> None:
    body = json.loads((ws / LOOK).read_text())
    with sqlite3.connect(body["store"]) as conn:
        conn.execute(
            "UPDATE rollouts SET state = 'quarantined' WHERE rowid = (SELECT min(rowid) FROM rollouts)"
        )
    assert _look(ws) is None


def test_a_locked_store(ws: Path) -> None:
    """Another process holds the database exclusively: the reader gives up within its busy timeout
    instead of waiting for it (the engine then reports the store as it does)."""
    body = json.loads((ws / LOOK).read_text())
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
            " c.execute('PRAGMA locking_mode = EXCLUSIVE'); c.execute('BEGIN EXCLUSIVE');"
            " c.execute('UPDATE rollouts SET id = id');"
            " print('locked', flush=True); sys.stdin.read()",
            body["store"],
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        assert _look(ws) is None
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    assert _look(ws) is not None  # and once it is free again, the rows are back


def test_the_reader_writes_nothing(ws: Path) -> None:
    """Read-only: the database and every file beside it stay as they were (SQLite may add its own
    empty -wal / -shm files for a read of a WAL database; the engine would make them anyway)."""
    body = json.loads((ws / LOOK).read_text())
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in ws.iterdir() if p.is_file()}
    assert _look(ws) is not None
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in ws.iterdir() if p.is_file()}
    added = set(after) - set(before)
    assert added <= {Path(body["store"]).name + "-wal", Path(body["store"]).name + "-shm"}
    assert {name: after[name] for name in before} == before
    assert all(not after[name][1].strip(b"\0") or name.endswith("-shm") for name in added)


def test_the_stamp_is_the_kill_plans(tmp_path: Path) -> None:
    """Both caches key on the same [path, size, mtime_ns] list (firstlook keeps its own copy)."""
    from opsconsole.engine import firstlook, killfast

    files = [str(tmp_path / "a"), str(tmp_path / "b")]
    for f in files:
        Path(f).write_text(f)
    assert firstlook._stamp(files) == killfast.stamp(files) is not None
    assert (
        firstlook._stamp([*files, str(tmp_path / "missing")])
        is killfast.stamp([str(tmp_path / "missing")])
        is None
    )
