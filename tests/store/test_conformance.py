"""The store conformance suite: every test runs against every store kind in conftest.STORE_KINDS
(SQLite and PostgreSQL), each on a fresh database, plus a few SQLite specifics (pragmas, the file)."""

from __future__ import annotations

import math
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsconsole.engine import audit
from opsconsole.engine.model import (
    Actor,
    ApprovalRecord,
    ChecklistTick,
    GateMemory,
    GateVerdict,
    Rollout,
    RolloutState,
    Verdict,
)
from opsconsole.engine.store import Store, StoreError, codec, open_store
from opsconsole.engine.store.schema import LATEST_VERSION, MIGRATIONS
from opsconsole.engine.store.sqlite import FlagChange
from tests.store.conftest import raw_execute, raw_rows

ALICE = Actor("alice", "ssh 192.0.2.10:50022")
BOB = Actor("bob")


def sqlite_file(store_url: str) -> str:
    assert store_url.startswith("sqlite:///"), store_url
    return store_url.removeprefix("sqlite:///")


def rollout(
    rid: str = "r1", created_at: float = 1000.0, state: RolloutState = RolloutState.PROGRESSING
) -> Rollout:
    return Rollout(
        id=rid,
        plan="checkout-canary",
        state=state,
        started_by="alice",
        created_at=created_at,
        phase_index=1,
        step_index=2,
        phase_started_at=created_at + 0.5,
        paused_from=RolloutState.PROGRESSING,
        reason="error rate 0.4% over 0.2% for 3 checks",
        approvals=(
            ApprovalRecord(
                "bob", "local", "approver", "looks fine", 1010.25, True, ({"gate": "e", "v": 0.1},)
            ),
        ),
        checklist=(ChecklistTick("dashboards checked", "bob", 1009.0),),
        memory={"gate:errors": GateMemory(failures=2, unknowns=1, unknown_since=1001.5, baseline=0.002)},
        verdicts=(GateVerdict("errors", "metric", Verdict.FAIL, "0.4% > 0.2%", 0.004, inconclusive=True),),
        flag_restore={"staging": {"new_checkout": False, "checkout_pct": 5}},
        updated_at=created_at + 1,
    )


def typed(value: Any) -> Any:
    """A view that tells True from 1 and 1.0 from 1, for exact round-trip comparisons."""
    if isinstance(value, dict):
        return sorted((k, typed(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return (type(value).__name__, [typed(v) for v in value])
    if hasattr(value, "__dataclass_fields__"):
        return (type(value).__name__, typed(dict(vars(value))))
    return (type(value).__name__, repr(value))


# ------------------------------------------------------------------------------------ opening


def test_open_creates_the_schema_and_migrations_are_idempotent(
    store_url: str, opener: Callable[[], Store]
) -> None:
    first = opener()
    second = opener()  # a second process opening the same database applies nothing again
    if store_url.startswith("sqlite:///"):
        assert Path(sqlite_file(store_url)).is_file()  # directories created
    assert raw_rows(store_url, "SELECT version FROM schema_version ORDER BY version") == [
        (version,) for version, _ in MIGRATIONS
    ]
    with first.transaction() as tx:
        tx.set_kv("k", 1, 0.0)
    with second.read() as tx:
        assert tx.get_kv("k") == 1


def test_opening_a_new_database_from_many_processes_at_once_migrates_once(store_url: str) -> None:
    start = threading.Barrier(6)
    stores: list[Store] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        start.wait()
        try:
            stores.append(open_store(store_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for s in stores:
        s.close()
    assert errors == [] and len(stores) == 6
    assert raw_rows(store_url, "SELECT COUNT(*), MAX(version) FROM schema_version") == [
        (len(MIGRATIONS), LATEST_VERSION)
    ]


def test_relative_sqlite_path_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    open_store("sqlite:///.opsconsole/state.db").close()
    assert (tmp_path / ".opsconsole" / "state.db").is_file()


def test_database_from_a_newer_version_is_refused(store_url: str) -> None:
    open_store(store_url).close()
    raw_execute(store_url, "INSERT INTO schema_version VALUES (?, 0)", LATEST_VERSION + 1)
    with pytest.raises(StoreError, match="newer than this opsconsole knows"):
        open_store(store_url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://ops:secret@db/ops", "carries a password"),
        ("postgres://ops:secret@db:5432/ops?sslmode=disable", "carries a password"),
        ("postgresql://ops@db", "names no database"),
        ("mysql://ops:secret@db/ops", "scheme 'mysql'"),
        ("state.db", "without a scheme"),
        ("sqlite://relative.db", "sqlite:///relative/path.db"),
    ],
)
def test_bad_store_urls_say_what_is_wrong_without_leaking_passwords(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as info:
        open_store(url)
    assert "secret" not in str(info.value)


def test_unwritable_location_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot open the SQLite store"):
        open_store(f"sqlite:///{tmp_path}/file/sub/state.db")


def test_sqlite_wal_and_full_synchronous_are_set(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(f"sqlite:///{path}")
    pragmas = store.pragmas()  # type: ignore[attr-defined]
    store.close()
    assert pragmas == {"journal_mode": "wal", "synchronous": 2, "busy_timeout": 5000}
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # persisted in the file
    raw.close()


# ------------------------------------------------------------------------------------ transactions


def test_writing_through_a_read_transaction_raises_and_writes_nothing(store: Store) -> None:
    with store.read() as tx, pytest.raises(StoreError, match="needs a write transaction"):
        tx.insert_rollout(rollout())
    with store.read() as tx, pytest.raises(StoreError, match="needs a write transaction"):
        tx.append_audit(1.0, ALICE, "x", "t", {})
    with store.read() as tx:
        assert tx.get_rollout("r1") is None and tx.last_audit_seq() == 0


def test_exception_rolls_the_whole_transaction_back(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.insert_rollout(rollout())
        tx.append_audit(1.0, ALICE, "rollout.start", "rollout:r1", {})
        raise RuntimeError("decided against it")
    with store.read() as tx:
        assert tx.get_rollout("r1") is None and tx.list_audit() == []


def test_nested_transaction_is_a_savepoint(store: Store) -> None:
    with store.transaction() as tx:
        tx.set_kv("outer", 1, 0.0)
        with pytest.raises(RuntimeError), store.transaction() as inner:
            inner.set_kv("inner", 2, 0.0)
            raise RuntimeError
        with store.read() as view:
            assert view.get_kv("outer") == 1 and view.get_kv("inner") is None
        with pytest.raises(StoreError, match="needs a write transaction"):
            view.set_kv("late", 3, 0.0)
    with (
        store.read() as tx,
        pytest.raises(StoreError, match="inside a read transaction"),
        store.transaction(),
    ):
        pass


def test_tx_used_after_its_transaction_ended_raises(store: Store) -> None:
    with store.read() as tx:
        pass
    with pytest.raises(StoreError, match="after it ended"):
        tx.get_kv("k")


def test_closed_store_says_so(store_url: str) -> None:
    s = open_store(store_url)
    s.close()
    with pytest.raises(StoreError, match="is closed"), s.read():
        pass


# ------------------------------------------------------------------------------------ rollouts


def test_rollout_insert_get_list(store: Store) -> None:
    old = rollout("old", 100.0, RolloutState.COMPLETED)
    new = rollout("new", 200.0)
    with store.transaction() as tx:
        tx.insert_rollout(old)
        tx.insert_rollout(new)
    with store.read() as tx:
        assert tx.get_rollout("new") == new and tx.get_rollout("missing") is None
        assert [r.id for r in tx.list_rollouts()] == ["new", "old"]
        assert [r.id for r in tx.list_rollouts(active_only=True)] == ["new"]
        assert [r.id for r in tx.list_rollouts(limit=1)] == ["new"]
    with pytest.raises(StoreError, match="already exists"), store.transaction() as tx:
        tx.insert_rollout(new)


def test_update_rollouts_writes_only_the_expected_versions(store: Store) -> None:
    with store.transaction() as tx:
        for rid in ("r1", "r2", "r3"):
            tx.insert_rollout(rollout(rid))
        assert tx.update_rollouts([]) == 0
        aborted = [replace(rollout(rid), state=RolloutState.ABORTED) for rid in ("r1", "r2", "r3")]
        assert tx.update_rollouts([(aborted[0], 0), (aborted[1], 0), (aborted[2], 7)]) == 2
    with store.read() as tx:
        states = {r.id: (r.state, r.version) for r in tx.list_rollouts()}
        assert states == {
            "r1": (RolloutState.ABORTED, 1),
            "r2": (RolloutState.ABORTED, 1),
            "r3": (RolloutState.PROGRESSING, 0),
        }


def test_update_rollout_is_optimistic(store: Store) -> None:
    r = rollout()
    with store.transaction() as tx:
        tx.insert_rollout(r)
    paused = replace(r, state=RolloutState.PAUSED, reason="operator paused")
    aborted = replace(r, state=RolloutState.ABORTED, reason="operator aborted")
    with store.transaction() as tx:
        assert tx.update_rollout(paused, expected_version=0) is True
    with store.transaction() as tx:
        assert tx.update_rollout(aborted, expected_version=0) is False  # based on a stale read
    with store.read() as tx:
        stored = tx.get_rollout("r1")
    assert stored == replace(paused, version=1)


def test_two_processes_updating_from_the_same_version_exactly_one_wins(opener: Callable[[], Store]) -> None:
    a, b = opener(), opener()
    with a.transaction() as tx:
        tx.insert_rollout(rollout())
    with a.read() as tx_a, b.read() as tx_b:
        seen = [tx_a.get_rollout("r1"), tx_b.get_rollout("r1")]
    assert all(r is not None and r.version == 0 for r in seen)
    start = threading.Barrier(2)
    results: dict[str, bool] = {}

    def promote(name: str, s: Store) -> None:
        start.wait()
        with s.transaction() as tx:
            results[name] = tx.update_rollout(
                replace(rollout(), reason=f"promoted by {name}"), expected_version=0
            )

    threads = [threading.Thread(target=promote, args=(n, s)) for n, s in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(results.values()) == [False, True]
    winner = next(n for n, won in results.items() if won)
    with b.read() as tx:
        final = tx.get_rollout("r1")
    assert final is not None and final.version == 1 and final.reason == f"promoted by {winner}"


# ------------------------------------------------------------------------------------ codec


floats = st.floats(allow_nan=False, width=64)
times = st.floats(min_value=0, max_value=1e12, allow_nan=False)  # column times: SQLite folds -0.0 into 0.0
names = st.text(st.characters(blacklist_characters="\x00"), max_size=8)
"""No NUL: PostgreSQL refuses it in a text column, and the store says so (tests/store/test_postgres.py);
a NUL in a name is no part of the round trip both stores promise."""
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | floats | names
rollouts = st.builds(
    Rollout,
    id=st.uuids().map(str),
    plan=names,
    state=st.sampled_from(RolloutState),
    started_by=names,
    created_at=times,
    phase_index=st.integers(0, 50),
    step_index=st.integers(0, 50),
    phase_started_at=floats,
    step_started_at=floats,
    paused_from=st.none() | st.sampled_from(RolloutState),
    reason=st.text(max_size=40),
    approvals=st.lists(
        st.builds(
            ApprovalRecord,
            user=names,
            origin=names,
            role=names,
            reason=names,
            at=floats,
            override=st.booleans(),
            verdicts=st.lists(
                st.dictionaries(names, json_scalars | st.lists(json_scalars, max_size=3), max_size=3),
                max_size=2,
            ).map(tuple),
        ),
        max_size=2,
    ).map(tuple),
    checklist=st.lists(st.builds(ChecklistTick, item=names, user=names, at=floats), max_size=2).map(tuple),
    memory=st.dictionaries(
        names,
        st.builds(
            GateMemory,
            failures=st.integers(0, 9),
            unknowns=st.integers(0, 9),
            unknown_since=st.none() | floats,
            baseline=st.none() | floats,
            last_checked=st.none() | floats,
        ),
        max_size=3,
    ),
    verdicts=st.lists(
        st.builds(
            GateVerdict,
            gate=names,
            kind=names,
            status=st.sampled_from(Verdict),
            reason=names,
            value=st.none() | floats,
            threshold=names,
            source=names,
            at=floats,
            failures=st.integers(0, 9),
            failure_limit=st.integers(1, 9),
            breached=st.booleans(),
            inconclusive=st.booleans(),
            escalate=st.booleans(),
        ),
        max_size=3,
    ).map(tuple),
    flag_restore=st.dictionaries(
        names, st.dictionaries(names, st.booleans() | st.integers(0, 100), max_size=3), max_size=2
    ),
    version=st.integers(0, 2**62),
    updated_at=times,
)


@settings(max_examples=60, deadline=None)
@given(rollouts)
def test_codec_round_trips_every_rollout_field_exactly(r: Rollout) -> None:
    row = (r.id, r.plan, str(r.state), r.started_by, r.created_at, r.updated_at, r.version)
    body = codec.rollout_to_body(r)
    assert codec.rollout_to_body(codec.rollout_from_row(*row, body)) == body  # canonical text
    assert typed(codec.rollout_from_row(*row, body)) == typed(r)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(r=rollouts)
def test_store_round_trips_every_rollout_field_exactly(store: Store, r: Rollout) -> None:
    r = replace(r, id=str(uuid.uuid4()))  # every example shares the store; shrinking repeats ids
    with store.transaction() as tx:
        tx.insert_rollout(r)
    with store.read() as tx:
        back = tx.get_rollout(r.id)
    assert typed(back) == typed(r)


def test_codec_keeps_non_finite_metric_values_and_tolerates_old_and_new_bodies() -> None:
    r = replace(rollout(), memory={"gate:x": GateMemory(baseline=math.inf)})
    cols = (r.id, r.plan, str(r.state), r.started_by, r.created_at, r.updated_at, r.version)
    assert codec.rollout_from_row(*cols, codec.rollout_to_body(r)).memory["gate:x"].baseline == math.inf
    # A body without newer fields loads with their defaults; unknown keys are ignored.
    back = codec.rollout_from_row(*cols, '{"phase_index": 3, "from_the_future": 1}')
    assert back.phase_index == 3 and back.approvals == () and back.memory == {}


# ------------------------------------------------------------------------------------ verdict history


def test_verdict_history_keeps_order_phase_and_every_field(store: Store) -> None:
    v1 = GateVerdict("errors", "metric", Verdict.PENDING, "soaking", inconclusive=True)
    v2 = GateVerdict("errors", "metric", Verdict.FAIL, "0.4% > 0.2%", 0.004, escalate=True, breached=True)
    v3 = GateVerdict("health", "health", Verdict.PASS, "200", 200.0)
    with store.transaction() as tx:
        tx.add_verdicts("r1", "staging", [v1, v2], 10.0)
        tx.add_verdicts("r1", "production", [v3], 20.0)
        tx.add_verdicts("r2", "staging", [v3], 20.0)
    with store.read() as tx:
        assert tx.list_verdicts("r1") == [("staging", v1), ("staging", v2), ("production", v3)]
        assert tx.list_verdicts("nope") == []


# ------------------------------------------------------------------------------------ flags


def test_flags_set_history_and_unchanged_is_a_no_op(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.set_flag("staging", "new_checkout", True, ALICE, "canary", 10.0) is None
        assert tx.set_flag("staging", "new_checkout", True, BOB, "again", 11.0) is True  # no-op
        assert tx.set_flag("staging", "new_checkout", False, BOB, "rollback", 12.0) is True
        assert tx.set_flag("staging", "checkout_pct", 25, BOB, "widen", 13.0) is None
        assert tx.set_flag("production", "new_checkout", False, BOB, "", 14.0) is None
    with store.read() as tx:
        rec = tx.get_flag("staging", "new_checkout")
        assert rec is not None and (rec.value, rec.updated_at, rec.updated_by) == (False, 12.0, "bob")
        assert tx.get_flag("staging", "missing") is None
        assert [(f.name, f.value) for f in tx.list_flags("staging")] == [
            ("checkout_pct", 25),
            ("new_checkout", False),
        ]
        assert len(tx.list_flags()) == 3
        pct = tx.get_flag("staging", "checkout_pct")
        assert pct is not None and type(pct.value) is int
        assert tx.flag_history("staging", "new_checkout") == [
            {
                "at": 10.0,
                "actor": "alice",
                "origin": ALICE.origin,
                "old": None,
                "new": True,
                "reason": "canary",
            },
            {"at": 12.0, "actor": "bob", "origin": "local", "old": True, "new": False, "reason": "rollback"},
        ]


def test_flag_changing_type_is_recorded_although_true_equals_one(store: Store) -> None:
    with store.transaction() as tx:
        tx.set_flag("dev", "f", 1, ALICE, "", 1.0)
        assert tx.set_flag("dev", "f", True, ALICE, "", 2.0) == 1
        assert len(tx.flag_history("dev", "f")) == 2
        with pytest.raises(StoreError, match="not a boolean or an integer"):
            tx.set_flag("dev", "f", "on", ALICE, "", 3.0)  # type: ignore[arg-type]


def test_set_flags_is_set_flag_in_order(store: Store) -> None:
    """The set-based write (the kill switch's) stores what set_flag one by one would: the values
    before, the no-ops, two changes of one flag as two history rows, new and existing flags."""
    with store.transaction() as tx:
        tx.set_flag("staging", "a", True, ALICE, "first", 1.0)
        tx.set_flag("staging", "pct", 10, ALICE, "first", 1.0)
        tx.set_flag("staging", "pct", 20, ALICE, "second", 2.0)
    changes = [
        FlagChange("staging", "pct", 0, BOB, "kill r1"),
        FlagChange("staging", "a", True, BOB, "unchanged"),
        FlagChange("staging", "new", 5, BOB, "new flag"),
        FlagChange("staging", "new", 0, ALICE, "again"),
        FlagChange("production", "a", False, BOB, "other env"),
        FlagChange("staging", "flip", 1, BOB, "int"),
        FlagChange("staging", "flip", True, BOB, "bool: a change"),
    ]
    with store.transaction() as tx:
        assert tx.set_flags(changes, 3.0) == [20, True, None, 5, None, None, 1]
        assert tx.set_flags([], 4.0) == []
        with pytest.raises(StoreError, match="staging/x: value 'on' is not a boolean or an integer"):
            tx.set_flags([FlagChange("staging", "x", "on", BOB, "")], 4.0)  # type: ignore[arg-type]
    with store.read() as tx:
        values = {(f.environment, f.name): (f.value, f.updated_at, f.updated_by) for f in tx.list_flags()}
        assert values == {
            ("production", "a"): (False, 3.0, "bob"),
            ("staging", "a"): (True, 1.0, "alice"),
            ("staging", "flip"): (True, 3.0, "bob"),
            ("staging", "new"): (0, 3.0, "alice"),
            ("staging", "pct"): (0, 3.0, "bob"),
        }
        assert [(h["old"], h["new"], h["reason"]) for h in tx.flag_history("staging", "pct")] == [
            (None, 10, "first"),
            (10, 20, "second"),
            (20, 0, "kill r1"),
        ]
        assert [(h["old"], h["new"], h["actor"]) for h in tx.flag_history("staging", "new")] == [
            (None, 5, "bob"),
            (5, 0, "alice"),
        ]
        assert [h["new"] for h in tx.flag_history("staging", "flip")] == [1, True]
        assert len(tx.flag_history("staging", "a")) == 1


def test_set_flags_reads_in_chunks(store: Store) -> None:
    changes = [FlagChange("staging", f"f{i:03d}", i, ALICE, "") for i in range(450)]
    with store.transaction() as tx:
        assert tx.set_flags(changes, 1.0) == [None] * 450
        assert tx.set_flags([c._replace(value=c.value + 1) for c in changes], 2.0) == list(range(450))
    with store.read() as tx:
        assert [f.value for f in tx.list_flags("staging")] == [i + 1 for i in range(450)]


# ------------------------------------------------------------------------------------ kv


def test_kv_round_trip(store: Store) -> None:
    value = {"engaged": True, "by": "alice", "at": 1700000000.123456, "aborted": ["r1"], "n": None}
    with store.transaction() as tx:
        assert tx.get_kv("kill_switch") is None and tx.get_kv("kill_switch", {}) == {}
        tx.set_kv("kill_switch", value, 1.0)
        tx.set_kv("kill_switch", {**value, "engaged": False}, 2.0)
        tx.set_kv("paused", False, 2.0)
    with store.read() as tx:
        assert tx.get_kv("kill_switch") == {**value, "engaged": False}
        assert tx.get_kv("paused") is False


# ------------------------------------------------------------------------------------ audit


def append_events(store: Store, n: int) -> None:
    for i in range(n):
        with store.transaction() as tx:
            tx.append_audit(
                1_700_000_000.0 + i * 0.1 + 1e-7,  # digits that must survive the database exactly
                ALICE if i % 2 else BOB,
                "rollout.transition",
                f"rollout:r{i % 2}",
                {"count": 12 + i, "note": "from progressing to paused", "ratio": 0.1 + 0.2, "who": "zoë"},
            )


def verify(store: Store) -> audit.VerifyResult:
    with store.read() as tx:
        return audit.verify_rows(tx.audit_rows())


def tamper(store_url: str, sql: str, *params: Any) -> None:
    assert raw_execute(store_url, sql, *params) == 1


def test_audit_append_list_and_verify(store: Store, opener: Callable[[], Store]) -> None:
    with store.transaction() as tx:
        first = tx.append_audit(5.0, ALICE, "rollout.start", "rollout:r1", {"plan": "p", "steps": (5, 25)})
    assert (first.seq, first.prev_hash, first.data) == (1, audit.GENESIS, {"plan": "p", "steps": [5, 25]})
    append_events(store, 6)
    with opener().read() as tx:  # another process reads the same chain back
        events = tx.list_audit()
        assert [e.seq for e in events] == list(range(1, 8)) and events[0] == first
        assert all(e.prev_hash == p.hash for p, e in zip(events, events[1:], strict=False))
        assert [e.seq for e in tx.list_audit(target="rollout:r1")] == [1, 3, 5, 7]
        assert [e.seq for e in tx.list_audit(since_seq=5)] == [6, 7]
        assert [e.seq for e in tx.list_audit(since_seq=1, limit=2)] == [2, 3]
        assert tx.last_audit_seq() == 7
        assert audit.verify(events).ok
    result = verify(store)
    assert (result.ok, result.checked, result.first_broken) == (True, 7, None)


@pytest.mark.parametrize(
    ("old", "new"),
    [('"count":14', '"count":15'), ('"count":14,', '"count":14, ')],
    ids=["digit", "space"],
)
def test_one_changed_byte_in_stored_data_breaks_the_chain_at_that_event(
    store: Store, store_url: str, old: str, new: str
) -> None:
    append_events(store, 5)
    tamper(store_url, "UPDATE audit SET data = replace(data, ?, ?) WHERE seq = 3", old, new)
    result = verify(store)
    assert (result.ok, result.first_broken, result.checked) == (False, 3, 2)
    assert result.problem == "event 3: hash does not match its content"


def test_changed_time_is_detected(store: Store, store_url: str) -> None:
    append_events(store, 3)
    tamper(store_url, "UPDATE audit SET at = at + 0.000001 WHERE seq = 2")
    assert verify(store).first_broken == 2


def test_deleted_middle_event_is_a_gap(store: Store, store_url: str) -> None:
    append_events(store, 5)
    tamper(store_url, "DELETE FROM audit WHERE seq = 3")
    result = verify(store)
    assert (result.ok, result.first_broken, result.problem) == (False, 4, "gap: event 4 follows 2")


def test_changed_prev_hash_is_detected(store: Store, store_url: str) -> None:
    append_events(store, 4)
    tamper(store_url, "UPDATE audit SET prev_hash = (SELECT hash FROM audit WHERE seq = 1) WHERE seq = 3")
    result = verify(store)
    assert (result.first_broken, result.problem) == (3, "event 3: prev_hash does not link to event 2")


def test_rolled_back_audit_event_leaves_no_hole(store: Store) -> None:
    append_events(store, 2)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.append_audit(1.0, ALICE, "x", "t", {})
        raise RuntimeError
    append_events(store, 1)
    assert verify(store) == audit.VerifyResult(True, 3)


@pytest.mark.parametrize("separate_stores", [False, True], ids=["one-store", "two-processes"])
def test_concurrent_appends_make_one_valid_chain(opener: Callable[[], Store], separate_stores: bool) -> None:
    shared = opener()
    stores = [shared, opener() if separate_stores else shared]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(s: Store, name: str) -> None:
        try:
            start.wait()
            for i in range(50):
                with s.transaction() as tx:
                    tx.append_audit(float(i), Actor(name), "test.append", f"writer:{name}", {"i": i})
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s, f"w{n}")) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    with shared.read() as tx:
        seqs = [e.seq for e in tx.list_audit()]
        assert len(tx.list_audit(target="writer:w0")) == len(tx.list_audit(target="writer:w1")) == 50
    assert seqs == list(range(1, 101))
    assert verify(shared) == audit.VerifyResult(True, 100)


def test_audit_rows_are_raw_stored_values(store: Store) -> None:
    uid = str(uuid.uuid4())
    with store.transaction() as tx:
        ev = tx.append_audit(-0.0, ALICE, "a", uid, {"b": 1})
    with store.read() as tx:
        (row,) = list(tx.audit_rows())
    assert row == (1, 0.0, "alice", ALICE.origin, "a", uid, '{"b":1}', audit.GENESIS, ev.hash)
