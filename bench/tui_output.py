"""Bytes per second the console writes to its terminal: idle, and on every pane and screen with the
demo rollout waiting for approval and then progressing, at 80x24 and at 160x48.

Every run spawns the real entry point in a pseudo-terminal of the given size and counts every byte
read from the pty master (Textual writes the screen to stderr; stdout and stderr are both the pty).

(a) Idle: `python -m opsconsole --workspace W` on the demo's configuration, the demo service and its
traffic running in a process of their own, no rollout: the runner scrapes the service every second
but nothing the Rollouts pane shows changes. After the first frame and SETTLE_S, IDLE_S seconds are
counted. Target: 0 B/s.

(b) Views: `python -m opsconsole demo --workspace W` (service, traffic and the demo rollout in the
console's process, the runner at the 1 s interval, metrics scraped at 1 Hz). The demo plan is the
shipped one with a longer step wait in the production canary (STEP_WAIT), so the rollout stays
progressing while every view is measured. First while the rollout waits for approval (after the
staging soak): each pane (keys 1-5), the rollout detail screen (Enter on the rollout) and the
approval screen (a); then the approval is given on that screen and, while the rollout progresses
through the production canary (its "next step in Ns" counting down every second, metrics and
sparklines moving), each pane and the detail screen again. For each view, SETTLE_S seconds after
switching to it, then MEASURE_S seconds are counted. Target: <= 1,000 B/s each. The Backups pane is
measured with a target (DEMO_BACKUPS when the demo configuration has none) and one backup taken with
its `b` key before the first measurement.

For each figure, `top_rows` says which screen rows took the bytes (everything after a cursor move
counts for the row moved to) and what was last written there: what dominates.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from common import (
    REPO,
    PtyProcess,
    demo_service,
    emit,
    free_port,
    opsconsole_argv,
    row_texts,
    rows_written,
    temp_dir,
)

from opsconsole.demo.run import pin_port, write_demo_config

SIZES = ((80, 24), (160, 48))
SETTLE_S = 2.5
MEASURE_S = 8.0
IDLE_S = 12.0
STEP_WAIT = "120s"
TARGET_IDLE_BPS = 0.0
TARGET_VIEW_BPS = 1000.0
FIRST_FRAME = ("opsconsole │", "Rollouts")
PANES = (
    ("rollouts", "1", "Rollout"),
    ("metrics", "2", "DemoHighErrorRate"),
    ("flags", "3", "orchestration"),
    ("improvements", "4", " · mode: "),
    ("backups", "5", "Started (UTC)"),
)
"""Pane, its key, and text on screen once it is shown."""
DEMO_BACKUPS = """
backups:
  demo-workspace:
    kind: files
    state: true
"""
"""Added to the demo configuration when it has no `backups:` section of its own: the Backups pane is
measured showing a target and its history (one backup, taken with `b` on the pane), not its empty state."""


def measure(term: PtyProcess, seconds: float, rows: int) -> dict[str, Any]:
    """Count what the program writes over `seconds` from now."""
    start = len(term.data)
    chunks_before = len(term.chunks)
    term.pump(seconds)
    window = bytes(term.data[start:])
    per_row = rows_written(window, rows)
    texts = row_texts(window)
    top = sorted(per_row.items(), key=lambda kv: -kv[1])[:4]
    return {
        "bytes_per_s": round(len(window) / seconds, 1),
        "writes": len(term.chunks) - chunks_before,
        "top_rows": [
            {"row": row, "bytes_per_s": round(n / seconds, 1), "text": texts.get(row, "")[:60]}
            for row, n in top
        ],
    }


def progress(cols: int, rows: int, view: str, out: dict[str, dict[str, Any]]) -> None:
    """One line per figure on stderr while the run goes on (stdout is the JSON document)."""
    f = out[view]
    top = "; ".join(f"row {t['row']} {t['bytes_per_s']} B/s {t['text'][:30]!r}" for t in f["top_rows"][:2])
    print(f"{cols}x{rows} {view}: {f['bytes_per_s']} B/s ({top})", file=sys.stderr, flush=True)


def show(term: PtyProcess, keys: str, marker: str) -> None:
    shown = len(term.data)
    term.send(keys)
    term.wait_for_text(marker, since=shown, timeout=15)
    term.pump(SETTLE_S)


def idle(root: Path, cols: int, rows: int) -> dict[str, Any]:
    ws = root / f"idle-{cols}x{rows}"
    ws.mkdir()
    with demo_service(ws / "flags" / "production.json", rps=40.0, seconds=90.0) as service:
        write_demo_config(ws, service.port)
        with PtyProcess(opsconsole_argv("--workspace", str(ws)), cols=cols, rows=rows) as term:
            term.wait_for_text(*FIRST_FRAME, timeout=30)
            term.pump(SETTLE_S + 2.0)
            result = measure(term, IDLE_S, rows)
            term.close("q")
    return result


def slow_demo_template(root: Path, port: int) -> Path:
    """The shipped demo configuration, its plan's canary waiting STEP_WAIT between steps."""
    plan = pin_port((REPO / "config" / "plans" / "demo.yaml").read_text(), port)
    plan, n = re.subn(r"step_wait: \w+", f"step_wait: {STEP_WAIT}", plan)
    assert n == 1, "the demo plan has no step_wait to lengthen"
    (root / "demo-plan.yaml").write_text(plan)
    text = (REPO / "config" / "demo.yaml").read_text()
    text, n = re.subn(r'"\$\{DEMO_CONFIG_DIR\}/plans/demo.yaml"', f'"{root / "demo-plan.yaml"}"', text)
    assert n == 1, "the demo configuration no longer names plans/demo.yaml"
    if not re.search(r"^backups:", text, re.M):
        text += DEMO_BACKUPS
    (root / "demo-template.yaml").write_text(text)
    return root / "demo-template.yaml"


def views(root: Path, cols: int, rows: int, only: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every pane and screen while the demo rollout waits for approval, then while it progresses
    (or only the views named in `only`: panes by name, "detail", "approval")."""
    size = root / f"demo-{cols}x{rows}"
    size.mkdir()
    port = free_port()
    template = slow_demo_template(size, port)
    argv = opsconsole_argv(
        "demo", "--workspace", str(size / "ws"), "--config", str(template), "--port", str(port)
    )
    out: dict[str, dict[str, Any]] = {}
    with PtyProcess(argv, cols=cols, rows=rows) as term:
        term.wait_for_text(*FIRST_FRAME, timeout=30)
        term.wait_for_text("awaiting_approval", timeout=40)
        for state in ("waiting", "progressing"):
            for pane, key, marker in PANES:
                if only is not None and pane not in only:
                    continue
                show(term, key, marker)
                if pane == "backups" and state == "waiting":
                    # One real backup (the pane's `b`), so the history has a row; measured after it.
                    shown = len(term.data)
                    term.send("b")
                    term.wait_for_text("Backed up", since=shown, timeout=60)
                    term.pump(SETTLE_S + 5.0)  # its toast (5 s) gone: not counted as the pane's output
                out[f"{state}/{pane}"] = measure(term, MEASURE_S, rows)
                progress(cols, rows, f"{state}/{pane}", out)
            show(term, "1", "Rollout")
            if only is None or "detail" in only:
                show(term, "\r", "Esc back")
                out[f"{state}/detail"] = measure(term, MEASURE_S, rows)
                progress(cols, rows, f"{state}/detail", out)
                show(term, "\x1b", "Rollout")
            if state == "waiting":
                show(term, "a", "Enter approves")
                if only is None or "approval" in only:
                    out["waiting/approval"] = measure(term, MEASURE_S, rows)
                    progress(cols, rows, "waiting/approval", out)
                term.send("benchmark approval")
                show(term, "\r", "production")
                term.pump(SETTLE_S)
        term.close("q")
    return out


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Bytes per second the console writes to its terminal.")
    parser.add_argument(
        "--only",
        help="comma-separated views to measure (panes by name, detail, approval; idle); default all",
    )
    parser.add_argument("--sizes", help="comma-separated sizes such as 160x48; default 80x24,160x48")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    only = set(args.only.split(",")) if args.only else None
    sizes = [tuple(int(n) for n in s.split("x")) for s in args.sizes.split(",")] if args.sizes else SIZES
    figures: dict[str, Any] = {}
    with temp_dir("opsconsole-bench-output-") as root:
        for cols, rows in sizes:
            size = f"{cols}x{rows}"
            if only is None or "idle" in only:
                figures[f"{size}/idle"] = idle(root, cols, rows)
            if only is None or only - {"idle"}:
                figures.update({f"{size}/{view}": f for view, f in views(root, cols, rows, only).items()})
    for name, f in figures.items():
        target = TARGET_IDLE_BPS if name.endswith("/idle") else TARGET_VIEW_BPS
        f["target_bytes_per_s"] = target
        f["ok"] = f["bytes_per_s"] <= target
    worst = max(
        (f for n, f in figures.items() if not n.endswith("/idle")),
        key=lambda f: f["bytes_per_s"],
        default={"bytes_per_s": 0.0},
    )
    emit(
        "tui_output",
        target=f"idle {TARGET_IDLE_BPS:g} B/s; every pane and screen <= {TARGET_VIEW_BPS:g} B/s (80x24 and 160x48)",
        ok=all(f["ok"] for f in figures.values()),
        worst_view_bytes_per_s=worst["bytes_per_s"],
        figures=figures,
        setup={
            "terminal": "pty, TERM=xterm-256color",
            "sizes": [f"{c}x{r}" for c, r in sizes],
            "only": sorted(only) if only else "all",
            "idle": "python -m opsconsole --workspace W: demo config, demo service running, no rollout",
            "views": "python -m opsconsole demo --workspace W (plan step_wait "
            f"{STEP_WAIT}): panes 1-5, detail (Enter), approval (a) while awaiting approval; "
            "approved there, then panes 1-5 and detail while progressing",
            "settle_s": SETTLE_S,
            "measure_s": MEASURE_S,
            "idle_s": IDLE_S,
        },
    )


if __name__ == "__main__":
    main()
