"""Kill switch latency with the PostgreSQL store: bench/kill_switch.py's world (50 active rollouts,
500 flags) on a throwaway PostgreSQL 15 server on 127.0.0.1 instead of SQLite.

Each run starts from the same state: a database made untimed from a template holding the world
(CREATE DATABASE ... TEMPLATE), the flag files copied back, a new Engine on it warmed by one read as
a running console would be; then the real `kill()` is timed and checked, and the database dropped.
The figure judged is `kill_ms` = files + store (the store part: one transaction through the pool,
the write lock, the engagement, 50 aborts and the audit event). Target: p99 <= 50 ms.
"""

from __future__ import annotations

import os
import shutil
import time

import psycopg
from backup_pg import start_server, stop_server
from common import ACTOR, canary_plan, emit, free_port, summary, temp_dir, write_config
from kill_switch import FLAGS, ROLLOUTS, TARGET_P99_MS, activate, check, flags_yaml

from opsconsole.engine.core import Engine
from opsconsole.engine.store import open_store

RUNS = int(os.environ.get("BENCH_KILL_PG_RUNS", "100"))


def main() -> None:
    env_pw = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    os.environ.clear()
    os.environ.update(env_pw)  # trust auth on the throwaway server: no password anywhere
    with temp_dir("opsconsole-bench-kill-pg-") as root:
        port = free_port()
        data = start_server(root, port)
        base = f"postgresql://postgres@127.0.0.1:{port}"
        try:
            admin = psycopg.connect(f"{base}/postgres", autocommit=True)
            admin.execute("CREATE DATABASE world TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
            flags_file = root / "flags.yaml"
            flags_file.write_text(flags_yaml())
            plans = {
                f"kill-{i:03d}": canary_plan(f"kill-{i:03d}", flag=f"canary_{i:03d}") for i in range(ROLLOUTS)
            }
            ws, config = write_config(
                root,
                plans,
                flags_file=flags_file,
                extra=f"store: {base}/world\n",
                logins={"postgres": ACTOR.user},
            )
            assert len(config.flags) == FLAGS
            engine = Engine(config, ws, ACTOR)
            activate(engine)
            engine.close()
            saved = root / "saved"
            shutil.copytree(ws / "flags", saved)
            kill: list[float] = []
            total: list[float] = []
            split: dict[str, list[float]] = {"files": [], "store": [], "after_store": []}
            for i in range(RUNS):
                name = f"run_{i}"
                admin.execute(f"CREATE DATABASE {name} TEMPLATE world")
                shutil.rmtree(ws / "flags")
                shutil.copytree(saved, ws / "flags")
                (ws / "kill-journal.jsonl").unlink(missing_ok=True)
                engine = Engine(config, ws, ACTOR, store=open_store(f"{base}/{name}"))
                assert len(engine.rollouts(active_only=True)) == ROLLOUTS
                t0 = time.perf_counter()
                result = engine.kill(f"benchmark run {i}")
                total.append((time.perf_counter() - t0) * 1000)
                engine.close()
                check(result, ws)
                t = result.timings_ms
                for k in split:
                    split[k].append(t[k])
                kill.append(t["files"] + t["store"])
                admin.execute(f"DROP DATABASE {name}")
            admin.close()
        finally:
            stop_server(data)
    figures = {"kill_ms": summary(kill), "call_ms": summary(total)} | {
        f"{k}_ms": summary(v) for k, v in split.items()
    }
    p99 = figures["kill_ms"]["p99"]
    emit(
        "kill_switch_pg",
        target=f"p99 <= {TARGET_P99_MS:g} ms",
        ok=p99 <= TARGET_P99_MS,
        figures=figures,
        setup={
            "runs": RUNS,
            "active_rollouts": ROLLOUTS,
            "flags": FLAGS,
            "environments": 2,
            "store": "postgresql 15, throwaway server on 127.0.0.1 (fsync on, default settings)",
            "split": "as bench/kill_switch.py: kill = files + store; the store part is one PostgreSQL "
            "transaction through the writers' pool under the write lock",
        },
    )


if __name__ == "__main__":
    main()
