"""One deploy of a service at a time across a team's hosts: on a shared PostgreSQL store the deploy
holds the store's lock "deploy:SERVICE" (a session advisory lock), beside the host's own file lock.
Two workspaces here are two hosts: their file locks never meet, only the store's lock does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from opsconsole.engine.deploy.journal import Journal, lock_name
from opsconsole.engine.deploy.model import DeployError
from opsconsole.engine.store import Store, open_store

ROOT = Path(__file__).resolve().parents[2]


def test_a_shared_store_lets_one_holder_at_a_time_and_names_it(pg_url: str) -> None:
    with open_store(pg_url) as a, open_store(pg_url) as b:
        with a.exclusive("deploy:web") as first:
            assert first is None
            with b.exclusive("deploy:web") as second:
                assert second is not None and f"{socket.gethostname()}:{os.getpid()}" in second
            with b.exclusive("deploy:api") as other:
                assert other is None  # another service's lock is another lock
        with b.exclusive("deploy:web") as after:
            assert after is None  # released when the block ended


def test_sqlite_lives_on_one_host_and_leaves_it_to_the_file_locks(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/s.db") as a, a.exclusive("deploy:web") as first:
        assert first is None
        with a.exclusive("deploy:web") as again:
            assert again is None


def test_two_hosts_deploying_one_service_the_second_is_refused(pg_url: str, tmp_path: Path) -> None:
    with open_store(pg_url) as a, open_store(pg_url) as b:
        host_a, host_b = Journal(tmp_path / "a", "web", a), Journal(tmp_path / "b", "web", b)
        refused = pytest.raises(DeployError, match=r"another deploy of web is running \(.+\)")
        with host_a.locked(), refused, host_b.locked():
            pytest.fail("two hosts deployed web at once")
        with host_b.locked():  # the first deploy ended: the next one goes
            pass


def test_a_holder_that_dies_frees_the_lock(pg_url: str, opener_pg: Callable[[], Store]) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from opsconsole.engine.store import open_store\n"
            "s = open_store(sys.argv[1])\n"
            "with s.exclusive(sys.argv[2]) as h:\n"
            "    print('held' if h is None else 'refused', flush=True)\n"
            "    time.sleep(60)\n",
            pg_url,
            lock_name("web"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        store = opener_pg()
        with store.exclusive(lock_name("web")) as busy:
            assert busy is not None
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        deadline = time.monotonic() + 10  # the server notices the closed socket at once
        while True:
            with store.exclusive(lock_name("web")) as free:
                if free is None:
                    break
            assert time.monotonic() < deadline, "the dead holder's lock was never freed"
            time.sleep(0.1)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)


@pytest.fixture
def opener_pg(pg_url: str):  # type: ignore[no-untyped-def]
    opened: list[Store] = []

    def open_one() -> Store:
        opened.append(open_store(pg_url))
        return opened[-1]

    yield open_one
    for s in opened:
        s.close()


def test_a_phase_deploy_waits_while_another_host_deploys_the_service(pg_url: str) -> None:
    """The runner's phase deploy does nothing (and says why) while another host holds the lock; the
    phase is asked again next tick rather than rolled back for a deploy that is someone else's."""
    from types import SimpleNamespace

    from opsconsole.engine.deploy.phase import PhaseDeploys

    with open_store(pg_url) as other_host, open_store(pg_url) as ours:
        engine = SimpleNamespace(  # what PhaseDeploys reads before its deploy asks for the lock
            store=ours,
            bus=SimpleNamespace(subscribe=lambda fn: lambda: None),
            config=SimpleNamespace(plans={}, services={}),
        )
        deploys = PhaseDeploys(engine)  # type: ignore[arg-type]
        with other_host.exclusive(lock_name("web")) as held:
            assert held is None
            assert deploys._deploy(("r1", 0), "web", "v2", "recreate") is None
            assert "another deploy of web is running" in deploys.waiting[("r1", 0)]
