"""deploys in every store kind: a deploy's record written step by step (insert, then replace),
read back whole, listed newest first per service."""

from __future__ import annotations

import pytest

from opsconsole.engine.store import Store, StoreError


def test_deploy_record_round_trip_and_listing(store: Store) -> None:
    first = {"id": "d1", "service": "web", "phase": "stopping_old", "started_at": 10.0, "image": "x:v2"}
    with store.transaction() as tx:
        tx.save_deploy(first, 10.5)
        tx.save_deploy({"id": "d2", "service": "api", "phase": "done", "started_at": 20.0}, 20.0)
    steps = [{"name": "image", "ok": True, "seconds": 0.1, "at": 10.2, "detail": "sha256:ab"}]
    with store.transaction() as tx:
        tx.save_deploy({**first, "phase": "done", "outcome": "ok", "steps": steps}, 12.0)
        tx.save_deploy({"id": "d3", "service": "web", "phase": "prepared", "started_at": 30.0}, 30.0)
    with store.read() as tx:
        got = tx.get_deploy("d1")
        assert got is not None
        assert got["phase"] == "done" and got["outcome"] == "ok" and got["steps"] == steps
        assert got["updated_at"] == 12.0 and got["started_at"] == 10.0 and got["image"] == "x:v2"
        assert [d["id"] for d in tx.list_deploys("web")] == ["d3", "d1"]
        assert [d["id"] for d in tx.list_deploys(limit=2)] == ["d3", "d2"]
        assert tx.get_deploy("nope") is None
        with pytest.raises(StoreError, match="write transaction"):
            tx.save_deploy(first, 1.0)


def test_deploy_record_needs_its_keys(store: Store) -> None:
    with store.transaction() as tx, pytest.raises(StoreError, match="needs id, service and phase"):
        tx.save_deploy({"service": "web", "phase": "done"}, 1.0)


def test_another_store_sees_a_deploy_as_it_goes(opener: object, store: Store) -> None:
    other = opener()  # type: ignore[operator]
    with store.transaction() as tx:
        tx.save_deploy({"id": "d1", "service": "web", "phase": "started_new", "started_at": 1.0}, 1.0)
    with other.read() as tx:
        assert [d["phase"] for d in tx.list_deploys("web")] == ["started_new"]
