"""Leader failover on a shared PostgreSQL store (issue 15): engines as separate processes on one
database; the leader is SIGKILLed, and the time until another engine holds leadership is measured
(the server frees a killed session's advisory lock when its socket closes; followers try every
second). Also measured: the hand-over on SIGTERM (the leader unlocks before it exits).

A throwaway PostgreSQL 15 server on 127.0.0.1 (started as bench/backup_pg.py starts its own), one
database, a workspace whose store is that database. ROUNDS rounds: two engines running, the leader
killed, the survivor's takeover timed by polling pg_locks every 10 ms; a fresh follower is then
started for the next round. Target: failover max <= 5 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from backup_pg import start_server, stop_server
from common import REPO, canary_plan, emit, free_port, summary, temp_dir, write_config

from opsconsole.engine.leader import current_holder

ROUNDS = int(os.environ.get("BENCH_FAILOVER_ROUNDS", "8"))
TARGET_S = 5.0


def engine(ws: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "opsconsole", "engine", "--workspace", str(ws)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def leader(url: str, env: dict[str, str]) -> int | None:
    try:
        h = current_holder(url, None, env)
    except Exception:  # noqa: BLE001 - the server is busy: not a leader seen
        return None
    if h is None:
        return None
    tail = h.name.rsplit("pid ", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else -1


def wait(predicate: object, seconds: float) -> float:
    """Seconds until predicate() is true (polled every 10 ms); raises after `seconds`."""
    assert callable(predicate)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if predicate():
            return time.monotonic() - t0
        time.sleep(0.01)
    raise TimeoutError(f"not reached within {seconds:g} s")


def main() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    with temp_dir("opsconsole-bench-failover-") as root:
        port = free_port()
        data = start_server(root, port)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            ws, _ = write_config(root, {"idle": canary_plan("idle")}, extra=f"store: {url}\n")
            kills: list[float] = []
            terms: list[float] = []
            procs.append(engine(ws, env))
            wait(lambda: leader(url, env) == procs[0].pid, 60)
            for i in range(ROUNDS):
                procs.append(engine(ws, env))
                time.sleep(3.0)  # the new one is up and following (its start is not what is timed)
                old, new = procs[-2], procs[-1]
                assert leader(url, env) == old.pid
                sig = signal.SIGKILL if i % 2 == 0 else signal.SIGTERM
                old.send_signal(sig)
                took = wait(lambda n=new: leader(url, env) == n.pid, 30)
                (kills if sig == signal.SIGKILL else terms).append(took)
                old.wait(30)
                print(f"round {i + 1}/{ROUNDS}: {sig.name} {took:.3f} s", file=sys.stderr, flush=True)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(30)
            stop_server(data)
    worst = max(kills + terms)
    emit(
        "team_failover",
        target=f"failover max <= {TARGET_S:g} s",
        ok=worst <= TARGET_S,
        figures={"sigkill_failover_s": summary(kills), "sigterm_handover_s": summary(terms)},
        setup={
            "rounds": ROUNDS,
            "engines": 2,
            "follower_retry_s": 1.0,
            "store": "postgresql 15, throwaway server on 127.0.0.1",
            "measured": "signal sent to the leader -> pg_locks shows the other engine holding the leader lock",
        },
    )


if __name__ == "__main__":
    main()
