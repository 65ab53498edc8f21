"""Team mode on PostgreSQL: how fast a change reaches the other consoles, and how many commands a
second the shared store takes while ten consoles are attached.

A throwaway PostgreSQL 15 server on 127.0.0.1 (started as bench/backup_pg.py starts it) holds one
database; every process has a workspace (its own flag files: its own host) on it.

- CONSOLES console processes (multiprocessing, spawn) each open an `Engine` on the shared store and a
  `LiveFeed` (live.py, as a console's Session does: own connection and thread, application_name
  `opsconsole console ...`); on each `flags` event on their bus they read the flag's value from the
  store, as the Flags pane does when it reloads, and report (value, wall time). No Textual app: ten
  of them would measure the two cores' Textual rendering, not the store; tests/team/test_live.py
  checks the real console (pilot) shows a change within a second.
- latency: a writer process sets a percentage flag to 1, 2, ... CHANGES every GAP seconds, noting
  the wall time just before each command. A console has seen change i when it first read a value
  >= i (a burst coalesced into one reload counts for every change in it). Figure: p50/p99/max of
  (seen - before) over every console and change. Target: p99 <= 1 s.
- commands/s: one writer process issuing `set_flag` (a transaction with its audit event, its own flag
  files exported) back to back for SECONDS, first with no console attached, then with the CONSOLES
  attached (each refreshing and exporting its own files on every notice).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import textwrap
import time
from pathlib import Path
from typing import Any

from backup_pg import start_server, stop_server
from common import emit, free_port, summary, temp_dir

CONSOLES = int(os.environ.get("BENCH_TEAM_CONSOLES", "10"))
CHANGES = int(os.environ.get("BENCH_TEAM_CHANGES", "100"))
GAP = 0.05
SECONDS = float(os.environ.get("BENCH_TEAM_SECONDS", "5"))
TARGET_P99_S = 1.0
DB = "live"

FLAGS = """
flags:
  pct: {type: percentage, default: 0, owner: bench}
  toggle: {default: false, owner: bench}
"""
MAIN = """
store: {store}
interval: 1s
roles:
  default: viewer
  users: {{bench: operator}}
environments:
  staging:
    flags: {{kind: file, path: "${{WORKSPACE}}/flags/staging.json"}}
flags: flags.yaml
"""


def workspace(root: Path, name: str, store: str) -> Path:
    ws = root / name
    ws.mkdir(parents=True)
    (ws / "flags.yaml").write_text(textwrap.dedent(FLAGS))
    (ws / "opsconsole.yaml").write_text(textwrap.dedent(MAIN.format(store=store)))
    return ws


def open_engine(ws: Path) -> Any:
    from opsconsole.engine.config import load_config
    from opsconsole.engine.core import Engine
    from opsconsole.engine.model import Actor

    return Engine(load_config(ws / "opsconsole.yaml", {"WORKSPACE": str(ws)}), ws, Actor("bench", "bench"))


def console_process(ws: str, ready: Any, stop: Any, out: Any) -> None:
    """One attached console: the live feed, and a read of the flag on every `flags` event."""
    from opsconsole.engine import live

    engine = open_engine(Path(ws))
    seen: list[tuple[float, float]] = []

    def on_event(event: Any) -> None:
        if event.kind == "flags":
            value = engine.flag_states("staging")["pct"].value
            seen.append((float(value), time.time()))

    engine.bus.subscribe(on_event)
    feed = live.start(engine)
    assert feed is not None
    feed.connected.wait(30)
    ready.put(os.getpid())
    stop.wait(600)
    feed.stop()
    out.put({"seen": seen, "stats": vars(feed.stats), "consoles": feed.status.consoles})
    engine.close()


def writer_latency(ws: str, out: Any) -> None:
    engine = open_engine(Path(ws))
    befores = []
    for i in range(1, CHANGES + 1):
        time.sleep(GAP)
        befores.append(time.time())
        engine.set_flag("staging", "pct", i, "bench")
    engine.close()
    out.put(befores)


def writer_rate(ws: str, seconds: float, out: Any) -> None:
    engine = open_engine(Path(ws))
    done = 0
    value = False
    end = time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < end:
        value = not value
        engine.set_flag("staging", "toggle", value, "bench")
        done += 1
    out.put(done / (time.monotonic() - start))
    engine.close()


def run_child(ctx: Any, target: Any, *args: Any) -> Any:
    out = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, out))
    proc.start()
    try:
        return out.get(timeout=600)
    finally:
        proc.join(30)


def main() -> int:
    ctx = multiprocessing.get_context("spawn")
    with temp_dir("bench-team-live-") as root:
        port = free_port()
        data = start_server(root, port)
        try:
            import psycopg

            with psycopg.connect(
                host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True
            ) as c:
                c.execute(f"CREATE DATABASE {DB} TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
            store = f"postgresql://postgres@127.0.0.1:{port}/{DB}"
            writer_ws = workspace(root, "writer", store)
            open_engine(writer_ws).close()  # migrations, before anyone else opens it

            alone = run_child(ctx, writer_rate, str(writer_ws), SECONDS)

            ready, stop, out = ctx.Queue(), ctx.Event(), ctx.Queue()
            procs = [
                ctx.Process(
                    target=console_process,
                    args=(str(workspace(root, f"console{i}", store)), ready, stop, out),
                )
                for i in range(CONSOLES)
            ]
            for p in procs:
                p.start()
            try:
                for _ in procs:
                    ready.get(timeout=120)
                time.sleep(3.5)  # every feed's status read once more, now that all are attached
                befores = run_child(ctx, writer_latency, str(writer_ws))
                time.sleep(1.5)  # the last change's reads
                attached = run_child(ctx, writer_rate, str(writer_ws), SECONDS)
                time.sleep(1.0)
            finally:
                stop.set()
                reports = []
                for _ in procs:
                    try:
                        reports.append(out.get(timeout=60))
                    except queue.Empty:
                        break
                for p in procs:
                    p.join(30)
                    if p.is_alive():
                        p.kill()
        finally:
            stop_server(data)

    latencies: list[float] = []
    missed = 0
    for report in reports:
        seen = sorted(report["seen"], key=lambda s: s[1])
        for i, before in enumerate(befores, start=1):
            first = next((t for v, t in seen if v >= i), None)
            if first is None:
                missed += 1
            else:
                latencies.append(first - before)
    lat = summary([x * 1000 for x in latencies], digits=1) if latencies else {}
    p99 = lat.get("p99", float("inf"))
    ok = bool(latencies) and missed == 0 and len(reports) == CONSOLES and p99 <= TARGET_P99_S * 1000
    emit(
        "team_live",
        target=f"change-to-other-console latency p99 <= {TARGET_P99_S * 1000:.0f} ms with {CONSOLES} consoles",
        ok=ok,
        figures={
            "latency_ms": lat,
            "samples": len(latencies),
            "missed": missed,
            "commands_per_s_alone": round(alone, 1),
            "commands_per_s_with_consoles": round(attached, 1),
            "consoles_reporting": len(reports),
            "consoles_counted_by_header": max((r["consoles"] for r in reports), default=0),
            "notices_handled": sum(r["stats"]["notices"] for r in reports),
            "exports": sum(r["stats"]["exports"] for r in reports),
        },
        setup={"consoles": CONSOLES, "changes": CHANGES, "gap_s": GAP, "rate_seconds": SECONDS},
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
