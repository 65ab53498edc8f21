"""Improvement sync: 5,000 proposals from a proposals file into the queue. Target: <= 1 s of engine
time per sync.

`first_sync_s` is a sync into an empty queue (5,000 inserts, one audit event); `resync_s` the same
file again (every stored item read back and compared, nothing written but the source's state);
`changed_sync_s` a sync where a tenth of the proposals changed their text. Each is the median of RUNS,
with the parts measured on their own: reading and checking the file (`read_s`) and the store merge
(`merge_s`). `list_s` is `Engine.improvements()` for all 5,000 (what the pane and the CLI load).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

from common import ACTOR, emit, temp_dir, write_config

from opsconsole.engine.core import Engine
from opsconsole.engine.improvements.filesource import FileSource

PROPOSALS = 5_000
RUNS = 5
TARGET_S = 1.0
NOOP_PLAN = (
    "name: noop\nphases:\n  - name: one\n    environment: production\n    gates: [{kind: soak, min: 1s}]\n"
)


def proposals(changed_every: int = 0, generation: int = 0) -> list[dict[str, object]]:
    out = []
    for i in range(PROPOSALS):
        changed = changed_every and i % changed_every == 0
        out.append(
            {
                "id": f"imp-{i:05d}",
                "title": f"Tune component {i % 97} (batch size {i % 13 + 1})"
                + (f" rev {generation}" if changed else ""),
                "description": "Observed queueing at peak; raising the batch size halves round trips. " * 3,
                "component": f"component-{i % 97}",
                "tenant": ("meetmind-prod", "agent-svea-prod", "felicias-finance-prod")[i % 3],
                "kind": "new_component" if i % 20 == 0 else "tuning",
                "predicted_impact": {
                    "metric": "quantile(0.95, http_request_duration_seconds) * 1000",
                    "expected_change": -((i % 30) / 100),
                    "better": "lower",
                },
                "quality_score": round(0.8 + (i % 20) / 100, 2),
                "risk": round((i % 10) / 100, 2),
                "created_at": 1_700_000_000 + i,
            }
        )
    return out


def timed_sync(engine: Engine) -> float:
    started = time.perf_counter()
    result = engine.sync_improvements("production")
    took = time.perf_counter() - started
    assert not result.errors, result.errors
    return took


def main() -> None:
    with temp_dir("opsconsole-bench-imp-") as root:
        props = root / "proposals.json"
        extra = f"""
        improvements:
          production:
            proposals: {props}
            quality_threshold: 0.95
            max_concurrent: 1
        """
        firsts, resyncs, changed, reads, merges, lists = [], [], [], [], [], []
        for run in range(RUNS):
            run_root = root / f"run{run}"
            ws, config = write_config(run_root, {"noop": NOOP_PLAN}, extra=extra)
            props.write_text(json.dumps({"improvements": proposals()}))
            engine = Engine(config, ws, ACTOR)
            try:
                firsts.append(timed_sync(engine))
                resyncs.append(timed_sync(engine))
                props.write_text(json.dumps({"improvements": proposals(changed_every=10, generation=run)}))
                changed.append(timed_sync(engine))
                source = FileSource(config.improvements["production"])
                started = time.perf_counter()
                items = asyncio.run(source.list_improvements()).improvements
                reads.append(time.perf_counter() - started)
                started = time.perf_counter()
                engine.improvement_queue.merge("production", list(items), "file", ACTOR, source.name)
                merges.append(time.perf_counter() - started)
                started = time.perf_counter()
                listed = engine.improvements("production")
                lists.append(time.perf_counter() - started)
                assert len(listed) == PROPOSALS
            finally:
                engine.close()
        worst = max(statistics.median(firsts), statistics.median(resyncs), statistics.median(changed))
        emit(
            "improvements_sync",
            target=f"sync of {PROPOSALS} proposals <= {TARGET_S:g} s",
            ok=worst <= TARGET_S,
            figures={
                "proposals": PROPOSALS,
                "runs": RUNS,
                "first_sync_s": round(statistics.median(firsts), 3),
                "resync_s": round(statistics.median(resyncs), 3),
                "changed_sync_s": round(statistics.median(changed), 3),
                "read_s": round(statistics.median(reads), 3),
                "merge_s": round(statistics.median(merges), 3),
                "list_s": round(statistics.median(lists), 3),
                "file_bytes": Path(props).stat().st_size,
            },
        )


if __name__ == "__main__":
    main()
