"""Resident memory of the console process with 10,000 flags, after it has shown the Flags pane.

The real entry point, `python -m opsconsole --workspace W`, runs in an 80x24 pseudo-terminal on a
workspace defining 10,000 flags with stored values for a third of them (`common.many_flags_workspace`;
its runner runs, with no metrics source and no rollout). RSS is VmRSS from /proc/<pid>/status:
after the first frame (Rollouts pane), then after pressing 3 once the Flags pane shows its rows and
SETTLE_S has passed (the figure the target is about; VmHWM is the peak so far), then after SWITCHES
more round trips between the Rollouts and Flags panes (what a session of use adds). For scale, the
same console on the shipped flag file (18 flags) and a minimal Textual app (one Static) are measured
the same way. Target: <= 200 MB (MiB here) with the Flags pane loaded.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from common import (
    MANY_FLAGS,
    PtyProcess,
    canary_plan,
    emit,
    many_flags_workspace,
    opsconsole_argv,
    temp_dir,
    write_config,
)

TARGET_MIB = 200.0
SETTLE_S = 3.0
SWITCHES = 20
FIRST_FRAME = ("opsconsole │", "Rollouts")
FLAGS_PANE = "Flags in"
MINIMAL_TEXT = "minimal textual app ready"
MINIMAL_APP = f"""
from textual.app import App
from textual.widgets import Static


class Minimal(App[None]):
    def compose(self):
        yield Static("{MINIMAL_TEXT}")


Minimal().run()
"""


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


def console_memory(ws: Path, switches: int) -> dict[str, Any]:
    """RSS of the console on `ws`: first frame, Flags pane loaded, after `switches` round trips."""
    with PtyProcess(opsconsole_argv("--workspace", str(ws)), cols=80, rows=24) as term:
        term.wait_for_text(*FIRST_FRAME, timeout=30)
        term.pump(SETTLE_S)
        first = term.rss_kib()
        shown = len(term.data)
        term.send("3")
        term.wait_for_text(FLAGS_PANE, since=shown, timeout=30)
        term.pump(SETTLE_S)
        flags = term.rss_kib()
        out: dict[str, Any] = {
            "first_frame_mib": mib(first["VmRSS"]),
            "flags_pane_mib": mib(flags["VmRSS"]),
            "flags_pane_peak_mib": mib(flags["VmHWM"]),
        }
        for _ in range(switches):
            for key in ("1", "3"):
                term.send(key)
                term.pump(0.5)  # the tab underline's animation is over by then
        if switches:
            term.pump(SETTLE_S)
            after = term.rss_kib()
            out[f"after_{switches}_round_trips_mib"] = mib(after["VmRSS"])
            out[f"after_{switches}_round_trips_peak_mib"] = mib(after["VmHWM"])
        code = term.close("q")
    if code != 0:
        raise RuntimeError(f"the console on {ws} exited with {code}")
    return out


def minimal_memory(root: Path) -> float:
    script = root / "minimal_app.py"
    script.write_text(MINIMAL_APP)
    with PtyProcess([sys.executable, str(script)], cols=80, rows=24) as term:
        term.wait_for_text(MINIMAL_TEXT, timeout=30)
        term.pump(SETTLE_S)
        rss = term.rss_kib()["VmRSS"]
        term.close("\x11")
    return mib(rss)


def main() -> None:
    with temp_dir("opsconsole-bench-memory-") as root:
        many_ws, _ = many_flags_workspace(root / "many")
        few_ws, few = write_config(root / "few", {"canary": canary_plan("canary")})
        figures: dict[str, Any] = {
            f"console_{MANY_FLAGS}_flags": console_memory(many_ws, SWITCHES),
            "console_shipped_flags": console_memory(few_ws, 0) | {"flags": len(few.flags)},
            "minimal_textual_app_mib": minimal_memory(root),
        }
    loaded = figures[f"console_{MANY_FLAGS}_flags"]["flags_pane_mib"]
    emit(
        "tui_memory",
        target=f"console RSS <= {TARGET_MIB:g} MiB with {MANY_FLAGS} flags, Flags pane loaded",
        ok=loaded <= TARGET_MIB,
        figures={"rss_flags_pane_mib": loaded} | figures,
        setup={
            "terminal": "pty 80x24, TERM=xterm-256color",
            "console": "python -m opsconsole --workspace W (runner on, no metrics, no rollout)",
            "flags": MANY_FLAGS,
            "stored_values": "a third of the generated flags, staging and production",
            "rss": "VmRSS (VmHWM for peak) from /proc/<pid>/status",
            "settle_s": SETTLE_S,
        },
    )


if __name__ == "__main__":
    main()
