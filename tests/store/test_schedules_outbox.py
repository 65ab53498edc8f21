"""Flag schedules, the notification outbox and flag history in every store kind: ids assigned under
the write lock, due lookups, compare-and-set endings, claims that no second sender takes."""

from __future__ import annotations

import threading
from collections.abc import Callable

from opsconsole.engine.model import Actor, ScheduleState, ScheduleStep
from opsconsole.engine.store import Store

ALICE = Actor("alice", "ssh 192.0.2.10:50022")
STEPS = (ScheduleStep(100.0, 5), ScheduleStep(200.0, 25), ScheduleStep(300.0, 100))


def test_schedule_insert_due_advance_to_done(store: Store) -> None:
    with store.transaction() as tx:
        first = tx.insert_schedule("prod", "pct", STEPS, ALICE, "ramp", 50.0)
        second = tx.insert_schedule("staging", "pct", STEPS[:1], ALICE, "once", 51.0)
    assert (first.id, second.id) == (1, 2)
    assert (
        first.steps == STEPS and first.state is ScheduleState.PENDING and first.created_origin == ALICE.origin
    )
    with store.read() as tx:
        assert [s.id for s in tx.due_schedules(99.0)] == []
        assert [s.id for s in tx.due_schedules(100.0)] == [1, 2]
        assert [s.id for s in tx.list_schedules(environment="prod")] == [1]
        assert [s.id for s in tx.list_schedules(flag="pct")] == [1, 2]
    with store.transaction() as tx:
        moved = tx.advance_schedule(1, 1, 101.0)
        assert (moved.next_index, moved.state) == (1, ScheduleState.PENDING)
        assert [s.id for s in tx.due_schedules(150.0)] == [2]
        done = tx.advance_schedule(1, 3, 301.0)
    assert done.state is ScheduleState.DONE and done.ended_reason == "all 3 steps applied"
    with store.read() as tx:
        assert [s.id for s in tx.list_schedules()] == [2]
        assert [s.id for s in tx.list_schedules(active_only=False)] == [1, 2]
        assert tx.get_schedule(1) == done


def test_schedule_end_is_compare_and_set_and_the_kill_switch_stops_the_rest(store: Store) -> None:
    with store.transaction() as tx:
        for flag in ("a", "b", "c"):
            tx.insert_schedule("prod", flag, STEPS, ALICE, "ramp", 1.0)
        assert tx.end_schedule(1, ScheduleState.CANCELED, "changed my mind", 2.0)
        assert not tx.end_schedule(1, ScheduleState.CANCELED, "again", 3.0)
        assert tx.stop_pending_schedules("kill switch", 4.0) == [2, 3]
        assert tx.stop_pending_schedules("kill switch", 5.0) == []
    with store.read() as tx:
        states = [(s.id, s.state, s.ended_reason) for s in tx.list_schedules(active_only=False)]
        assert tx.due_schedules(1e9) == []
    assert states == [
        (1, ScheduleState.CANCELED, "changed my mind"),
        (2, ScheduleState.STOPPED, "kill switch"),
        (3, ScheduleState.STOPPED, "kill switch"),
    ]


def test_concurrent_schedule_inserts_get_distinct_ids(opener: Callable[[], Store]) -> None:
    stores = [opener(), opener()]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def insert(s: Store, env: str) -> None:
        try:
            start.wait()
            for _ in range(15):
                with s.transaction() as tx:
                    tx.insert_schedule(env, "pct", STEPS, ALICE, "ramp", 1.0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=insert, args=(s, f"e{i}")) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    with stores[0].read() as tx:
        assert [s.id for s in tx.list_schedules()] == list(range(1, 31))


def test_first_flag_changes_date_each_flag(store: Store) -> None:
    with store.transaction() as tx:
        tx.set_flag("staging", "a", True, ALICE, "", 10.0)
        tx.set_flag("prod", "a", False, ALICE, "", 5.0)
        tx.set_flag("prod", "b", 3, ALICE, "", 7.5)
    with store.read() as tx:
        assert tx.first_flag_changes() == {"a": 5.0, "b": 7.5}
        assert [(f.environment, f.name, f.value) for f in tx.list_flags()] == [
            ("prod", "a", False),
            ("prod", "b", 3),
            ("staging", "a", True),
        ]
        assert [f.name for f in tx.list_flags("prod")] == ["a", "b"]


def test_outbox_enqueue_claim_finish_and_counts(store: Store) -> None:
    with store.transaction() as tx:
        ids = [tx.enqueue_notification("kill", f"http://127.0.0.1:9/{i}", "{}", 2.0, 10.0) for i in range(3)]
    assert ids == [1, 2, 3]
    with store.transaction() as tx:
        claimed = tx.claim_notifications(10.0, 1.0, limit=2)
        assert [(c.id, c.attempts, c.state) for c in claimed] == [(1, 1, "pending"), (2, 1, "pending")]
        # Claimed ones are out of reach until their timeout plus the margin has passed.
        assert [c.id for c in tx.claim_notifications(10.0, 1.0)] == [3]
        assert tx.claim_notifications(10.0, 1.0, ids=[]) == []
        tx.finish_notification(1, "delivered", "", 10.5, 10.5)
        tx.finish_notification(2, "pending", "connection refused", 20.0, 10.5)
        tx.finish_notification(3, "failed", "HTTP 500 " + "x" * 1000, 10.5, 10.5)
    with store.read() as tx:
        assert tx.notification_counts() == {"delivered": 1, "pending": 1, "failed": 1}
        troubles = tx.notification_troubles(since=10.0)
        assert [t.id for t in troubles] == [3, 2]
        assert len(troubles[0].last_error) == 500
        assert [n.id for n in tx.list_notifications(ids=[2, 3])] == [2, 3]
    with store.transaction() as tx:
        assert tx.claim_notifications(19.0, 1.0) == []
        (again,) = tx.claim_notifications(20.0, 1.0, ids=[2])
    assert (again.id, again.attempts, again.next_at) == (2, 2, 20.0)


def test_two_senders_never_claim_the_same_notification(opener: Callable[[], Store]) -> None:
    stores = [opener(), opener()]
    with stores[0].transaction() as tx:
        for i in range(40):
            tx.enqueue_notification("e", "http://127.0.0.1:9/", str(i), 5.0, 0.0)
    start = threading.Barrier(2)
    taken: list[list[int]] = [[], []]

    def sender(n: int) -> None:
        start.wait()
        for _ in range(10):
            with stores[n].transaction() as tx:
                taken[n].extend(c.id for c in tx.claim_notifications(1.0, 1.0, limit=3))

    threads = [threading.Thread(target=sender, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(taken[0] + taken[1]) == list(range(1, 41))
