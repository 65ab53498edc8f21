"""Run every benchmark, one after another, each in its own process, and print one combined JSON document.

One at a time because the machine has two cores: two benchmarks side by side would measure each other.
Exit status 0 when every benchmark ran and met its target, 1 otherwise (the document says which).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from common import machine_facts

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "kill_switch",
    "kill_switch_faults",
    "flag_export",
    "flag_eval",
    "improvements_sync",
    "gate_eval",
    "engine_cpu",
    "reaction",
    "tui_first_frame",
    "tui_output",
    "tui_keypress",
    "improvements_pane",
    "backups_pane",
    "metrics_pane",
    "tui_memory",
    "backup_pg",
    "deploy_rollback",
    "team_live",
    "team_failover",
    "kill_switch_pg",
)
TIMEOUT_S = 180
LONGER = {"tui_output": 600}
"""Benchmarks that measure many views one after another and need longer than TIMEOUT_S."""


def run(name: str) -> dict[str, object]:
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, str(HERE / f"{name}.py")],
            capture_output=True,
            text=True,
            timeout=LONGER.get(name, TIMEOUT_S),
            cwd=HERE.parent,
        )
    except subprocess.TimeoutExpired:
        return {
            "benchmark": name,
            "ok": False,
            "error": f"did not finish within {LONGER.get(name, TIMEOUT_S)} s",
        }
    seconds = round(time.monotonic() - t0, 1)
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"benchmark": name, "ok": False, "error": f"exit {proc.returncode}: " + " | ".join(tail)}
    doc.pop("machine", None)  # reported once, below
    return doc | {"seconds": seconds}


def main() -> int:
    results = {}
    for name in BENCHMARKS:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = run(name)
    ok = all(r.get("ok") is True for r in results.values())
    summary = {
        name: ("ok" if r.get("ok") else "MISSED" if "error" not in r else "ERROR")
        for name, r in results.items()
    }
    print(
        json.dumps(
            {"ok": ok, "summary": summary, "machine": machine_facts(), "benchmarks": results}, indent=2
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
