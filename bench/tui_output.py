"""Bytes per second the console writes to an 80x24 terminal: idle, and with live metrics at 1 Hz.

Both runs spawn the real entry point in a pseudo-terminal of 80x24 and count every byte read from the
pty master (Textual writes the screen to stderr; stdout and stderr are both the pty).

(a) Idle: `python -m opsconsole --workspace W` on the demo's configuration, the demo service and its
traffic running in a process of their own, no rollout: the runner scrapes the service every second
but nothing the Rollouts pane shows changes. After the first frame and SETTLE_S, MEASURE_S seconds
are counted. Target: 0 B/s.

(b) Live metrics: `python -m opsconsole demo --workspace W` (service, traffic and the demo rollout in
the console's process, the runner at the 1 s interval), Metrics & Alarms pane shown by pressing 2 (its alarm
DemoHighErrorRate on screen);
after SETTLE_S, MEASURE_S seconds are counted. Target: <= 1,000 B/s.

For each, `top_rows` says which screen rows took the bytes (everything after a cursor move counts for
the row moved to) and what was last written there: what dominates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common import (
    PtyProcess,
    demo_service,
    emit,
    opsconsole_argv,
    row_texts,
    rows_written,
    temp_dir,
)

from opsconsole.demo.run import write_demo_config

SETTLE_S = 4.0
MEASURE_S = 20.0
TARGET_IDLE_BPS = 0.0
TARGET_LIVE_BPS = 1000.0
FIRST_FRAME = ("opsconsole │", "Rollouts")
METRICS_PANE = "DemoHighErrorRate"
"""The demo's alarm rule: on screen once the Metrics & Alarms pane is."""


def measure(term: PtyProcess) -> dict[str, Any]:
    """Count what the program writes over MEASURE_S seconds from now."""
    start = len(term.data)
    term.pump(MEASURE_S)
    window = bytes(term.data[start:])
    per_row = rows_written(window)
    texts = row_texts(window)
    top = sorted(per_row.items(), key=lambda kv: -kv[1])[:5]
    return {
        "bytes_per_s": round(len(window) / MEASURE_S, 1),
        "bytes": len(window),
        "seconds": MEASURE_S,
        "writes": sum(1 for _ in _chunks_after(term, start)),
        "top_rows": [
            {"row": row, "bytes_per_s": round(n / MEASURE_S, 1), "text": texts.get(row, "")[:60]}
            for row, n in top
        ],
    }


def _chunks_after(term: PtyProcess, offset: int) -> list[tuple[float, int]]:
    seen, out = 0, []
    for t, n in term.chunks:
        if seen >= offset:
            out.append((t, n))
        seen += n
    return out


def idle(root: Path) -> dict[str, Any]:
    ws = root / "idle-ws"
    ws.mkdir()
    with demo_service(ws / "flags" / "production.json", rps=40.0, seconds=90.0) as service:
        write_demo_config(ws, service.port)
        with PtyProcess(opsconsole_argv("--workspace", str(ws)), cols=80, rows=24) as term:
            term.wait_for_text(*FIRST_FRAME, timeout=30)
            term.pump(SETTLE_S)
            result = measure(term)
            term.close("q")
    return result


def live(root: Path) -> dict[str, Any]:
    ws = root / "live-ws"
    with PtyProcess(opsconsole_argv("demo", "--workspace", str(ws)), cols=80, rows=24) as term:
        term.wait_for_text(*FIRST_FRAME, timeout=30)
        term.pump(1.0)
        shown = len(term.data)
        term.send("2")
        term.wait_for_text(METRICS_PANE, since=shown, timeout=10)
        term.pump(SETTLE_S)
        result = measure(term)
        term.close("q")
    return result


def main() -> None:
    with temp_dir("opsconsole-bench-output-") as root:
        figures = {"idle": idle(root), "live_metrics": live(root)}
    ok = (
        figures["idle"]["bytes_per_s"] <= TARGET_IDLE_BPS
        and figures["live_metrics"]["bytes_per_s"] <= TARGET_LIVE_BPS
    )
    emit(
        "tui_output",
        target=f"idle <= {TARGET_IDLE_BPS:g} B/s; live metrics at 1 Hz <= {TARGET_LIVE_BPS:g} B/s (80x24)",
        ok=ok,
        figures=figures,
        setup={
            "terminal": "pty 80x24, TERM=xterm-256color",
            "idle": "python -m opsconsole --workspace W: demo config, demo service running, no rollout",
            "live_metrics": "python -m opsconsole demo --workspace W, then 2 (Metrics & Alarms)",
            "settle_s": SETTLE_S,
            "measure_s": MEASURE_S,
        },
    )


if __name__ == "__main__":
    main()
