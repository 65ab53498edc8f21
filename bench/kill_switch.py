"""Kill switch latency with the store healthy: 50 active rollouts and 500 flags.

The target is the kill itself: the flag files durable (atomic, fsynced), every rollout aborted and
the audit event written (SQLite WAL, synchronous=FULL); the re-export and the whole call are reported
beside it. bench/kill_switch_faults.py measures the store locked and the disk full. Each run starts from the same state: 50 canaries at 10% in
production, restored untimed by copying the closed database and flag files back, then a new Engine
on it, warmed by one read as a running console would be. Target: p99 <= 50 ms.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

from common import ACTOR, KILL_FLAGS_OFF, KILL_FLAGS_ON, canary_plan, emit, summary, temp_dir, write_config

from opsconsole.engine.core import Engine
from opsconsole.engine.killswitch import KillResult
from opsconsole.engine.model import Config, RolloutState
from opsconsole.engine.runner import Runner
from opsconsole.engine.store.sqlite import SqliteStore

RUNS = 200
ROLLOUTS = 50
FLAGS = 500
TARGET_P99_MS = 50.0


def flags_yaml() -> str:
    """500 flag definitions: the kill switch's own, one canary flag per plan, and a mix of boolean and
    percentage feature flags, some depending on a parent."""
    lines = ["flags:"]
    for name in KILL_FLAGS_ON + KILL_FLAGS_OFF:
        parent = "phase_4_deployment" if name == "aatc_system_enabled" else None
        lines += [f"  {name}:", "    default: false", "    risk: high"]
        lines += [f"    depends_on: {parent}"] if parent else []
    for i in range(ROLLOUTS):
        lines += [f"  canary_{i:03d}:", "    type: percentage", "    default: 0", "    risk: medium"]
    for i in range(FLAGS - len(KILL_FLAGS_ON + KILL_FLAGS_OFF) - ROLLOUTS):
        lines += [f"  feature_{i:03d}:", f"    description: generated feature flag {i}"]
        if i % 5 == 4:
            lines += ["    type: percentage", f"    default: {i % 100}"]
        else:
            lines += [f"    default: {'true' if i % 2 else 'false'}"]
        if i % 10 == 3:
            lines += [f"    depends_on: feature_{i - i % 50:03d}"]  # a boolean group leader
    return "\n".join(lines) + "\n"


def build(root: Path) -> tuple[Path, Config]:
    flags_file = root / "flags.yaml"
    flags_file.write_text(flags_yaml())
    plans = {f"kill-{i:03d}": canary_plan(f"kill-{i:03d}", flag=f"canary_{i:03d}") for i in range(ROLLOUTS)}
    ws, config = write_config(root, plans, flags_file=flags_file)
    assert len(config.flags) == FLAGS, len(config.flags)
    return ws, config


def activate(engine: Engine) -> None:
    """50 rollouts progressing at 10% in production, and stored values for a third of the flags."""
    now = time.time()
    with engine.store.transaction() as tx:
        for env in engine.config.environments:
            for i, (name, defn) in enumerate(engine.config.flags.items()):
                if name.startswith("feature_") and i % 3 == 0:
                    value = 25 if defn.type == "percentage" else not defn.default
                    tx.set_flag(env, name, value, ACTOR, "benchmark setup", now)
    ids = [engine.start_rollout(plan, "benchmark").id for plan in sorted(engine.config.plans)]

    async def first_tick() -> None:  # pending -> progressing at the first step (0%)
        runner = Runner(engine)
        try:
            await runner.tick()
        finally:
            await runner.observer.close()

    asyncio.run(first_tick())
    for rid in ids:
        engine.command(rid, "promote", "benchmark: expose 10%")
    active = engine.rollouts(active_only=True)
    assert len(active) == ROLLOUTS and all(
        r.state is RolloutState.PROGRESSING and r.step_index == 1 for r in active
    ), [(r.state, r.step_index) for r in active]


def files_of(ws: Path) -> list[Path]:
    return [ws / "state.db", *sorted((ws / "flags").glob("*.json"))]


def restore(ws: Path, saved: Path) -> None:
    for suffix in ("-wal", "-shm"):
        (ws / f"state.db{suffix}").unlink(missing_ok=True)
    (ws / "kill-journal.jsonl").unlink(missing_ok=True)  # the last run's engagement, recorded
    for path in files_of(saved):
        shutil.copyfile(path, ws / path.relative_to(saved))


def check(result: KillResult, ws: Path) -> None:
    """The kill really did its job (untimed): recorded, 50 aborted, safe state in both files."""
    assert result.recorded and not result.already_engaged, result
    assert len(result.aborted) == ROLLOUTS and len(result.files) == 2, result
    doc = json.loads((ws / "flags" / "production.json").read_text())
    assert doc["emergency_shutdown"] is True
    assert all(doc["flags"][f"canary_{i:03d}"]["rollout_percentage"] == 0 for i in range(ROLLOUTS))
    assert all(doc["flags"][name]["enabled"] is False for name in KILL_FLAGS_OFF)


def main() -> None:
    with temp_dir("opsconsole-bench-kill-") as root:
        ws, config = build(root)
        engine = Engine(config, ws, ACTOR)
        activate(engine)
        engine.close()  # the last connection checkpoints the WAL into state.db
        saved = root / "saved"
        (saved / "flags").mkdir(parents=True)
        for path in files_of(ws):
            shutil.copyfile(path, saved / path.relative_to(ws))
        pragmas: dict[str, object] = {}
        total: list[float] = []
        kill: list[float] = []
        split: dict[str, list[float]] = {"files": [], "store": [], "after_store": []}
        for i in range(RUNS):
            restore(ws, saved)
            engine = Engine(config, ws, ACTOR)
            assert isinstance(engine.store, SqliteStore)
            pragmas = engine.store.pragmas()
            assert len(engine.rollouts(active_only=True)) == ROLLOUTS
            t0 = time.perf_counter()
            result = engine.kill(f"benchmark run {i}")
            total.append((time.perf_counter() - t0) * 1000)
            engine.close()
            check(result, ws)
            t = result.timings_ms
            split["files"].append(t["files"])
            split["store"].append(t["store"])
            split["after_store"].append(t["after_store"])
            kill.append(t["files"] + t["store"])
    figures = {"kill_ms": summary(kill), "call_ms": summary(total)} | {
        f"{k}_ms": summary(v) for k, v in split.items()
    }
    p99 = figures["kill_ms"]["p99"]
    emit(
        "kill_switch",
        target=f"p99 <= {TARGET_P99_MS:g} ms",
        ok=p99 <= TARGET_P99_MS,
        figures=figures,
        setup={
            "runs": RUNS,
            "active_rollouts": ROLLOUTS,
            "flags": FLAGS,
            "environments": 2,
            "store": "sqlite",
            "store_pragmas": pragmas,
            "split": "kill = files + store, the target: files: journal line and safe state patched into "
            "both flag files (fsync); store: one transaction recording the engagement, aborting every "
            "rollout and appending the audit event; after_store: flag files re-exported from the store, "
            "notifications queued, event published; call: the whole Engine.kill()",
        },
    )


if __name__ == "__main__":
    main()
