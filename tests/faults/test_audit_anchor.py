"""The audit chain's head is anchored outside the database, so cutting its tail shows.

Events are made by real CLI processes; the tail is cut (or rewritten) with sqlite3 directly, as
someone with write access to the database file would; `audit --verify` must then fail naming the
anchor, and pass on an untouched chain printing the count and the head hash.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from opsconsole.engine import audit
from opsconsole.engine.model import Actor
from opsconsole.engine.store import open_store

from .conftest import cli, write_workspace

ANCHOR = "audit-anchor.log"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace with five audit events, each made by its own CLI process."""
    ws = write_workspace(tmp_path, 9)
    for value in (10, 20, 30, 40, 50):
        p = cli("flags", "set", "new_checkout", str(value), "--env", "staging", "--reason", "r", *w(ws))
        assert p.returncode == 0, p.stderr
    return ws


def w(ws: Path) -> tuple[str, str]:
    return ("--workspace", str(ws))


def chain(ws: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(ws / "state.db") as db:
        return db.execute("SELECT seq, hash FROM audit ORDER BY seq").fetchall()


def cut(ws: Path, sql: str) -> None:
    db = sqlite3.connect(ws / "state.db")
    with db:
        db.execute(sql)
    db.close()


def test_an_untouched_chain_verifies_printing_count_and_head_hash(ws: Path) -> None:
    rows = chain(ws)
    assert [seq for seq, _ in rows] == [1, 2, 3, 4, 5]
    p = cli("audit", "--verify", *w(ws))
    assert p.returncode == 0, p.stderr
    assert "5 events verified" in p.stdout and rows[-1][1] in p.stdout, p.stdout
    assert "anchored at event 5" in p.stdout, p.stdout
    anchors = (ws / ANCHOR).read_text().splitlines()
    assert len(anchors) == 5 and anchors[-1].split()[:2] == ["5", rows[-1][1]], anchors


@pytest.mark.parametrize(
    ("sql", "head"),
    [("DELETE FROM audit WHERE seq > 3", 3), ("DELETE FROM audit", 0)],
    ids=["tail", "everything"],
)
def test_a_cut_tail_fails_verification_naming_the_anchor(ws: Path, sql: str, head: int) -> None:
    cut(ws, sql)
    p = cli("audit", "--verify", *w(ws))
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert str(ws / ANCHOR) in p.stderr and "anchors event 5" in p.stderr, p.stderr
    assert f"events {head + 1}..5 are missing" in p.stderr, p.stderr


def test_a_rewritten_tail_fails_verification(ws: Path) -> None:
    """Cut the last two events and write two others with valid hashes: the chain is internally
    consistent and as long as before, but event 5 is not the one that was anchored."""
    _, prev = chain(ws)[2]
    cut(ws, "DELETE FROM audit WHERE seq > 3")
    db = sqlite3.connect(ws / "state.db")
    with db:
        for seq in (4, 5):
            data = audit.audit_data_text({"forged": True})
            digest = audit.event_hash(prev, seq, 1.0, "root", "local", "flag.set", "flag:x", data)
            db.execute(
                "INSERT INTO audit (seq, at, actor, origin, action, target, data, prev_hash, hash)"
                " VALUES (?, 1.0, 'root', 'local', 'flag.set', 'flag:x', ?, ?, ?)",
                (seq, data, prev, digest),
            )
            prev = digest
    db.close()
    p = cli("audit", "--verify", *w(ws))
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "event 4" in p.stderr and str(ws / ANCHOR) in p.stderr and "rewritten" in p.stderr, p.stderr


def test_new_events_after_a_cut_do_not_hide_it(ws: Path) -> None:
    cut(ws, "DELETE FROM audit WHERE seq = 5")
    p = cli("flags", "set", "new_checkout", "60", "--env", "staging", "--reason", "cover up", *w(ws))
    assert p.returncode == 0, p.stderr
    p = cli("audit", "--verify", *w(ws))
    assert p.returncode == 1 and "event 5" in p.stderr and "rewritten" in p.stderr, p.stderr


def test_the_kill_switch_anchors_its_event_and_survives_an_unwritable_anchor(tmp_path: Path) -> None:
    ws = write_workspace(tmp_path, 9)
    p = cli("kill", "--reason", "drill", *w(ws))
    assert p.returncode == 0, p.stderr
    assert (ws / ANCHOR).read_text().split()[:2] == ["1", chain(ws)[0][1]]
    (ws / ANCHOR).unlink()
    (ws / ANCHOR).mkdir()  # the anchor cannot be written: the kill still lands and is recorded
    p = cli("kill", "--reason", "again", *w(ws))
    assert p.returncode == 0, p.stderr
    assert [seq for seq, _ in chain(ws)] == [1, 2]


def test_without_an_anchor_file_verification_passes_with_a_warning(ws: Path) -> None:
    (ws / ANCHOR).unlink()
    p = cli("audit", "--verify", *w(ws))
    assert p.returncode == 0, p.stderr
    assert "5 events verified" in p.stdout and "no audit anchor" in p.stderr, (p.stdout, p.stderr)


def test_the_store_reports_the_committed_head_once_per_transaction(tmp_path: Path) -> None:
    """Only committed heads are anchored: a rolled-back savepoint's event is not, a failed
    transaction's event is not."""
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    heads: list[tuple[int, str]] = []
    store.after_audit_commit = lambda seq, digest, at: heads.append((seq, digest))
    me = Actor("root", "local")
    with store.transaction() as tx:
        first = tx.append_audit(1.0, me, "a", "t", {})
        with pytest.raises(RuntimeError), store.transaction() as inner:
            inner.append_audit(2.0, me, "b", "t", {})
            raise RuntimeError("undo the savepoint")
    assert heads == [(1, first.hash)]
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.append_audit(3.0, me, "c", "t", {})
        raise RuntimeError("roll back")
    with store.transaction() as tx:
        tx.set_kv("k", 1, 4.0)  # no audit event: nothing to anchor
    assert heads == [(1, first.hash)]
    store.close()


def test_out_of_order_anchors_and_a_torn_last_line_are_read_correctly(ws: Path) -> None:
    """Two processes may anchor in the opposite order of their commits, and a crash may tear the
    last line: neither is a broken chain."""
    rows = chain(ws)
    with open(ws / ANCHOR, "a") as fh:
        fh.write(f"3 {rows[2][1]} 2026-01-01T00:00:00.000Z\n")  # a late writer's older head
        fh.write("6 0123")  # torn: no newline
    p = cli("audit", "--verify", *w(ws))
    assert p.returncode == 0, p.stderr
    assert "anchored at event 5" in p.stdout, p.stdout
