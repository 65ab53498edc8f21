"""Time to first frame: the console versus a minimal Textual app with a Footer, both in a real 80x24
pseudo-terminal, side by side in one run.

Each program is spawned the way a terminal emulator spawns it (the pty is its controlling terminal,
stdin, stdout and stderr); the clock starts just before the spawn and stops when the chunk that
completes a frame has been read from the pty master. The minimal app (an App with one Static and
Textual's Footer showing a key) is done when the Static's text and the Footer's key are on screen.
The console has three frames of interest, each reported:

- the header frame ("opsconsole │ ..." and the key bar);
- the rollouts frame, the figure judged: the Rollouts table holds the demo rollout, read from the
  store (by the store reader, engine/firstlook.py, before the engine is open, when it vouches for
  the rows: it does here from the second start on, once a console has left its cache; else by the
  engine);
- the engine frame: the header says "engine: local" (configuration read, store open, the runner's
  lock taken, kill-switch state read) and the table is the engine's.

The console is the real entry point, `python -m opsconsole --workspace W`, on a workspace holding
the demo's configuration (a metrics port nothing listens on, so nothing waits on the demo service)
and one demo rollout started with `opsconsole rollout start demo`. One untimed run of each warms the
page cache (and leaves the console's first-look cache, as any earlier console on the workspace
would); then the two alternate, RUNS times each. Target: median(console rollouts frame) /
median(minimal app with Footer) <= 1.3.

Besides the totals, `to_alt_screen_s` is the time to the alternate-screen switch (interpreter start,
imports, app construction: everything before Textual's driver starts), and `import_ms` the
cumulative import times (`python -X importtime`, one run, outside the pty) of what each program
imports before its first frame: where the difference comes from.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from statistics import median

from common import PtyProcess, emit, free_port, opsconsole_argv, summary, temp_dir

from opsconsole.demo.run import write_demo_config

RUNS = 10
TARGET_RATIO = 1.3
ALT_SCREEN = b"\x1b[?1049h"
CONSOLE_MARKERS = ("opsconsole │",)
ENGINE_MARKER = "engine: local"
MINIMAL_TEXT = "minimal textual app ready"
MINIMAL_KEY = "Quit"
MINIMAL_APP = f"""
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static


class Minimal(App[None]):
    BINDINGS = [Binding("q", "quit", "{MINIMAL_KEY}")]

    def compose(self) -> ComposeResult:
        yield Static("{MINIMAL_TEXT}")
        yield Footer()


Minimal().run()
"""
CONSOLE_IMPORTS = "import opsconsole.cli, opsconsole.engine, opsconsole.tui.app, opsconsole.tui.layout"
MINIMAL_IMPORTS = "import textual.app, textual.widgets; textual.widgets.Footer, textual.widgets.Static"


def bytecode_env(root: Path) -> dict[str, str | None]:
    """Both programs run with compiled bytecode, as an installed package does (pip compiles it):
    written on the warm-up run into `root` (PYTHONPYCACHEPREFIX, for textual's modules and ours
    alike), even where the environment says PYTHONDONTWRITEBYTECODE. Without this, a development
    shell with that variable set compiles every opsconsole module on every start (about 110 ms of
    the console's time to its frame; textual's modules come precompiled from site-packages)."""
    return {"PYTHONDONTWRITEBYTECODE": None, "PYTHONPYCACHEPREFIX": str(root / "pycache")}


def first_frame(
    argv: list[str],
    markers: tuple[str, ...],
    quit_keys: str,
    then: tuple[tuple[str, ...], ...] = (),
    env: dict[str, str | None] | None = None,
) -> tuple[float, float, list[float]]:
    """(seconds to the first frame, to the alternate-screen switch, to the frame showing each of
    the `then` sets of markers) of one spawn."""
    with PtyProcess(argv, cols=80, rows=24, env_changes=env) as term:
        ready = term.wait_for_text(*markers, timeout=30)
        later = [term.wait_for_text(*each, timeout=30) for each in then]
        alt = bytes(term.data).find(ALT_SCREEN)
        to_alt = term.time_of(alt) if alt >= 0 else float("nan")
        code = term.close(quit_keys)
    if code != 0:
        raise RuntimeError(f"{argv} exited with {code} after its first frame")
    return ready, to_alt, later


def import_ms(statement: str, env: dict[str, str | None] | None = None) -> dict[str, float]:
    """Import time of `statement` (`python -X importtime`): the total, and the self time summed per
    top-level package, largest first (ms)."""
    environ = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    subprocess.run([sys.executable, "-c", statement], env=environ, timeout=60, check=True)  # bytecode
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )
    per_package: dict[str, float] = {}
    total = 0.0
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if m is None:
            continue
        package = m.group(4).split(".")[0]
        per_package[package] = per_package.get(package, 0.0) + int(m.group(1)) / 1000
        if not m.group(3):
            total += int(m.group(2)) / 1000
    ordered = sorted(per_package.items(), key=lambda kv: -kv[1])
    return {"total": round(total, 1)} | {k: round(v, 1) for k, v in ordered[:10]}


def start_demo_rollout(ws: Path) -> str:
    """The demo rollout, as `opsconsole rollout start demo` creates it: its id."""
    proc = subprocess.run(
        opsconsole_argv("rollout", "start", "demo", "--workspace", str(ws)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="leave PYTHONDONTWRITEBYTECODE as the environment has it (no cache for modules without one)",
    )
    args = parser.parse_args()
    with temp_dir("opsconsole-bench-frame-") as root:
        env = None if args.no_bytecode else bytecode_env(root)
        ws = root / "ws"
        ws.mkdir()
        write_demo_config(ws, free_port())
        rollout_id = start_demo_rollout(ws)
        then = ((rollout_id,), (ENGINE_MARKER, rollout_id))
        minimal = root / "minimal_app.py"
        minimal.write_text(MINIMAL_APP)
        programs = {
            "console": (opsconsole_argv("--workspace", str(ws)), CONSOLE_MARKERS, "q", then),
            "minimal": ([sys.executable, str(minimal)], (MINIMAL_TEXT, MINIMAL_KEY), "q", ()),
        }
        for argv, markers, quit_keys, then in programs.values():
            first_frame(argv, markers, quit_keys, then, env)  # warm-up: page cache, .pyc files
        ready: dict[str, list[float]] = {name: [] for name in programs}
        to_alt: dict[str, list[float]] = {name: [] for name in programs}
        rollouts_frame: list[float] = []
        engine_frame: list[float] = []
        for _ in range(RUNS):
            for name, (argv, markers, quit_keys, stages) in programs.items():
                r, a, later = first_frame(argv, markers, quit_keys, stages, env)
                ready[name].append(r)
                to_alt[name].append(a)
                if later:
                    rollouts_frame.append(later[0])
                    engine_frame.append(later[1])
        console_import = import_ms(CONSOLE_IMPORTS, env)
        minimal_import = import_ms(MINIMAL_IMPORTS, env)
    minimal_median = median(ready["minimal"])
    ratio = median(rollouts_frame) / minimal_median
    figures = {
        "rollouts_frame_ratio_of_medians": round(ratio, 2),
        "header_frame_ratio_of_medians": round(median(ready["console"]) / minimal_median, 2),
        "engine_frame_ratio_of_medians": round(median(engine_frame) / minimal_median, 2),
        "console_rollouts_frame_s": summary(rollouts_frame),
        "console_engine_frame_s": summary(engine_frame),
        "console_header_frame_s": summary(ready["console"]),
        "minimal_with_footer_s": summary(ready["minimal"]),
        "console_to_alt_screen_s": summary(to_alt["console"]),
        "minimal_to_alt_screen_s": summary(to_alt["minimal"]),
        "console_import_ms": console_import,
        "minimal_import_ms": minimal_import,
    }
    emit(
        "tui_first_frame",
        target=f"median console rollouts frame / median minimal Textual app with Footer <= {TARGET_RATIO}",
        ok=ratio <= TARGET_RATIO,
        figures=figures,
        setup={
            "terminal": "pty 80x24, TERM=xterm-256color",
            "console": "python -m opsconsole --workspace W (the demo's configuration, no service, "
            "one demo rollout)",
            "minimal": "App with one Static and a Footer showing one key",
            "header_frame_markers": list(CONSOLE_MARKERS),
            "rollouts_frame_markers": ["<the demo rollout's id>"],
            "engine_frame_markers": [ENGINE_MARKER, "<the demo rollout's id>"],
            "runs_each": RUNS,
            "python": Path(sys.executable).name,
            "bytecode": "as the environment has it" if args.no_bytecode else "compiled on the warm-up run",
        },
    )


if __name__ == "__main__":
    main()
