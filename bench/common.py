"""Setup shared by the benchmark scripts: machine facts, percentiles, temporary workspaces, engine
configuration written the way a user would write it, and the demo service in a process of its own.

Every script prints one JSON document (see `emit`), so `run_all.py` can put them side by side and a
later run can be compared figure by figure. Workspaces live in the system temp directory, which is on
the same disk as everything else here: the kill switch's fsyncs must be real fsyncs, not tmpfs no-ops.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import math
import os
import platform
import re
import select
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsconsole.engine.config import load_config
from opsconsole.engine.model import Actor, Config

REPO = Path(__file__).resolve().parents[1]
SHIPPED_FLAGS = REPO / "config" / "flags.yaml"
ACTOR = Actor("bench", "bench")
"""Admin in every benchmark config: the benchmarks start, promote, kill and give all-clear."""
KILL_FLAGS_OFF = (
    "phase_4_deployment",
    "enable_autonomous_improvements",
    "enable_component_generation",
    "aatc_system_enabled",
)
KILL_FLAGS_ON = ("emergency_shutdown",)

# Guards as the demo plan writes them (config/plans/demo.yaml): the canary's v2 traffic only.
ERROR_RATE_QUERY = 'ratio(http_requests_total{version="v2",code=~"5.."}, http_requests_total{version="v2"})'
P95_QUERY = 'quantile(0.95, http_request_duration_seconds{version="v2"}) * 1000'


# ------------------------------------------------------------------------------------------ report


def machine_facts() -> dict[str, Any]:
    """What a figure depends on besides the code: cores, interpreter, SQLite, the temp filesystem."""
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "tmp_dir": tempfile.gettempdir(),
        "tmp_filesystem": filesystem_type(Path(tempfile.gettempdir())),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def filesystem_type(path: Path) -> str:
    """The type of the mount holding `path` (ext4, tmpfs, ...), from /proc/mounts; "" if unknown."""
    target = str(path.resolve())
    best, kind = "", ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            mount = parts[1]
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best):
                best, kind = mount, parts[2]
    return kind


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100): a value that was really measured, never interpolated."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float], digits: int = 3) -> dict[str, float | int]:
    return {
        "n": len(values),
        "min": round(min(values), digits),
        "p50": round(percentile(values, 50), digits),
        "p99": round(percentile(values, 99), digits),
        "max": round(max(values), digits),
        "mean": round(sum(values) / len(values), digits),
    }


def emit(name: str, *, target: str, ok: bool, figures: Mapping[str, Any], **extra: Any) -> None:
    """Print the benchmark's one JSON document on stdout."""
    doc = {"benchmark": name, "ok": ok, "target": target, "figures": dict(figures), **extra}
    doc["machine"] = machine_facts()
    print(json.dumps(doc, indent=2))


def p95(values: Sequence[float]) -> float:
    return round(percentile(values, 95), 3)


# ------------------------------------------------------------------------------------------ keypress
# Shared by the console's keypress benchmarks (tui_keypress.py, improvements_pane.py,
# backups_pane.py): `watch` is tui_keypress.FrameWatch (or a subclass), `pilot` Textual's.


def measure_closed(
    engine: Any, measure: Callable[[Any], Coroutine[Any, Any, dict[str, Any]]]
) -> dict[str, Any]:
    """Run `measure(engine)` in its own event loop; the engine is closed whatever happened."""
    try:
        return asyncio.run(measure(engine))
    finally:
        engine.close()


def timed_ms(work: Callable[[], Any]) -> tuple[Any, float]:
    """`work()`'s result and how long it took, in milliseconds."""
    t0 = time.perf_counter()
    result = work()
    return result, (time.perf_counter() - t0) * 1000


def keypress_figures(timings: Mapping[str, list[float]], frame_bytes: Sequence[int]) -> dict[str, Any]:
    """Each action's summary with its p95, and the sizes of the updates that showed the effects."""
    figures: dict[str, Any] = {name: summary(v) | {"p95": p95(v)} for name, v in timings.items()}
    figures["frame_bytes"] = summary([float(n) for n in frame_bytes], digits=0)
    return figures


def full_gc_figures(watch: Any) -> dict[str, Any]:
    """The generation-2 collections the watch saw, and how many presses had one."""
    return {
        "full_collections": len(watch.full_gcs),
        "full_collection_ms": summary([ms for _, ms in watch.full_gcs]) if watch.full_gcs else {},
        "presses_with_a_full_collection": watch.presses_with_full_gc,
    }


def measure_list_pane(
    engine: Any,
    fill: Callable[[], object],
    count: Callable[[], int],
    measure: Callable[[Any], Coroutine[Any, Any, dict[str, Any]]],
    actions: Sequence[str],
) -> tuple[dict[str, Any], int]:
    """A pane over a long list: `fill()` the store and `count()` the list through the engine (both
    timed), then `measure(engine)` (the engine closed after). The figures, headed by the worst p95
    of `actions` and those two times; and how many rows `count()` found."""
    _, insert_ms = timed_ms(fill)
    listed, list_ms = timed_ms(count)
    figures = measure_closed(engine, measure)
    head = {
        "worst_p95_ms": worst_p95(figures, actions),
        "store_insert_ms": round(insert_ms, 1),
        "list_ms": round(list_ms, 1),
    }
    return head | figures, listed


def emit_list_pane(
    name: str,
    *,
    what: str,
    rows: int,
    listed: int,
    figures: Mapping[str, Any],
    target_ms: float,
    **setup: Any,
) -> None:
    """measure_list_pane's report: ok when the worst p95 is within `target_ms` and the engine listed
    all `rows` (`what` words them in the target)."""
    emit(
        name,
        target=f"p95 keypress -> updated screen <= {target_ms:g} ms for every action, {what}",
        ok=figures["worst_p95_ms"] <= target_ms and listed == rows,
        figures=figures,
        setup=setup
        | {"units": "ms (frame_bytes: bytes of the terminal update that showed the key's effect)"},
    )


def worst_p95(figures: Mapping[str, Any], actions: Sequence[str]) -> float:
    return max(float(figures[name]["p95"]) for name in actions)


async def wait_for_rows(pilot: Any, pane: Any, rows: int, what: str) -> None:
    """Until `pane.table` holds `rows` rows (30 s at the most), then half a second more."""
    deadline = time.perf_counter() + 30
    while len(pane.table.keys) < rows:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the {type(pane).__name__} did not load {what} within 30 s")
        await asyncio.sleep(0.05)
    await pilot.pause(0.5)


async def wait_for_engine(app: Any, pilot: Any) -> None:
    """Until the console's engine session has started (2 s at the most)."""
    for _ in range(100):
        if app.session.mode != "stopped":
            break
        await pilot.pause(0.02)


async def time_cursor(
    watch: Any, pilot: Any, table: Any, line: Any, presses: int, timings: dict[str, list[float]]
) -> None:
    """`down` until the cursor moved and `line` names the row (cursor_down), then from the top
    `pagedown` until the cursor moved (page_down); `presses` of each."""
    for _ in range(presses):
        expected = table.cursor + 1
        key = table.keys[expected]
        ms = await watch.press(
            pilot, "down", lambda e=expected, k=key: table.cursor == e and k in str(line.render())
        )
        timings["cursor_down"].append(ms["effect"])
    await pilot.press("home")
    for _ in range(presses):
        before = table.cursor
        ms = await watch.press(pilot, "pagedown", lambda b=before: table.cursor > b)
        timings["page_down"].append(ms["effect"])


async def time_down_after(watch: Any, pilot: Any, pane: Any, timings: list[float]) -> None:
    """`down` pressed at once after an engine event that makes `pane` read its list again, until its
    effect is on screen; then until that read ended."""
    table = pane.table
    expected = table.cursor + 1
    ms = await watch.press(pilot, "down", lambda e=expected: table.cursor == e)
    timings.append(ms["effect"])
    while pane._loading:
        await asyncio.sleep(0.01)


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------------ config


def write_config(
    root: Path,
    plans: Mapping[str, str],
    *,
    metrics_url: str | None = None,
    flags_file: Path = SHIPPED_FLAGS,
    environments: Sequence[str] = ("staging", "production"),
    extra: str = "",
    logins: Mapping[str, str] | None = None,
) -> tuple[Path, Config]:
    """A workspace under `root` with its opsconsole.yaml, the given plans (name -> YAML) and flag files
    per environment; returns (workspace, loaded config). Store: SQLite in the workspace (WAL, FULL).
    `logins` maps PostgreSQL logins to people (roles.logins), for a PostgreSQL store in `extra`."""
    ws = root / "ws"
    plans_dir = root / "plans"
    ws.mkdir(parents=True, exist_ok=True)
    plans_dir.mkdir(parents=True, exist_ok=True)
    for name, text in plans.items():
        (plans_dir / f"{name}.yaml").write_text(text)
    metrics = ""
    if metrics_url is not None:
        metrics = f'metrics: {{kind: scrape, url: "{metrics_url}", timeout: 1s, window: 10s}}\n    '
    envs = "".join(
        f'  {env}:\n    {metrics}flags: {{kind: file, path: "${{WORKSPACE}}/flags/{env}.json"}}\n'
        for env in environments
    )
    main = (
        "interval: 1s\n"
        f"roles:\n  default: viewer\n  users: {{{ACTOR.user}: admin}}\n"
        + (f"  logins: {{{', '.join(f'{k}: {v}' for k, v in logins.items())}}}\n" if logins else "")
        + f"environments:\n{envs}"
        f'plans: ["{plans_dir}/*.yaml"]\n'
        f'flags: "{flags_file}"\n'
        "kill_switch:\n"
        f"  flags_off: [{', '.join(KILL_FLAGS_OFF)}]\n"
        f"  flags_on: [{', '.join(KILL_FLAGS_ON)}]\n"
        "  abort_rollouts: true\n"
        "  pause_improvements: true\n"
    ) + textwrap.dedent(extra)
    path = ws / "opsconsole.yaml"
    path.write_text(main)
    return ws, load_config(path, {"WORKSPACE": str(ws)})


def canary_plan(
    name: str,
    *,
    flag: str = "new_checkout",
    steps: str = "[0, 10, 50, 100]",
    step_wait: str = "1h",
    guards: str = "",
    gates: str = "",
) -> str:
    """A one-phase plan: a canary in production, no approval (nothing waits for a person)."""
    text = (
        f"name: {name}\n"
        "phases:\n"
        "  - name: production-canary\n"
        "    environment: production\n"
        f"    strategy: {{kind: canary, flag: {flag}, steps: {steps}, step_wait: {step_wait}}}\n"
        "    approval: {required: false}\n"
    )
    if guards:
        text += "    guards:\n" + textwrap.indent(textwrap.dedent(guards).strip() + "\n", "      ")
    if gates:
        text += "    gates:\n" + textwrap.indent(textwrap.dedent(gates).strip() + "\n", "      ")
    return text


def demo_guards(failure_limit: int = 2, p95: bool = True) -> str:
    """The demo plan's guards on the canary's v2 traffic: error rate > 1%, optionally P95 > 500 ms."""
    text = f"""
    - {{kind: metric, name: error_rate, query: '{ERROR_RATE_QUERY}', max: 0.01, unit: "%", failure_limit: {failure_limit}}}
    """
    if p95:
        text += f"""
    - {{kind: metric, name: p95_ms, query: '{P95_QUERY}', max: 500, unit: ms, failure_limit: {failure_limit}}}
    """
    return text


# ------------------------------------------------------------------------------------------ demo service

_SERVICE_SCRIPT = """
import json, sys
from pathlib import Path
from opsconsole.demo.service import DemoService
from opsconsole.demo.traffic import TrafficGenerator

flag_file, fault, rps, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
service = DemoService(Path(flag_file), flag="new_checkout", fault=fault).start()
traffic = TrafficGenerator(service.url, rps=rps, max_seconds=seconds).start()
print(service.port, flush=True)
sys.stdin.read()  # serve until the benchmark closes our stdin (or dies, which closes it too)
traffic.stop()
service.stop()
print(json.dumps({"sent": traffic.sent, "failed": traffic.failed, "by_version": traffic.by_version}))
"""


@dataclass
class ServiceProcess:
    port: int
    pid: int
    traffic: dict[str, Any] = field(default_factory=dict)
    """What the traffic generator sent, filled in when the process has ended."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def demo_service(
    flag_file: Path, fault: str = "none", rps: float = 40.0, seconds: float = 120.0
) -> Iterator[ServiceProcess]:
    """The demo service plus its traffic generator in a separate Python process, so their CPU is not
    the engine's. It reads `flag_file` (the engine's production flag file) to route users to v2."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVICE_SCRIPT, str(flag_file), fault, str(rps), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    handle = None
    try:
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            raise RuntimeError(f"demo service process did not report its port (got {line!r})")
        handle = ServiceProcess(int(line), proc.pid)
        yield handle
    finally:
        try:
            out, _ = proc.communicate(timeout=10)  # closes its stdin: the process stops and reports
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        if handle is not None:
            with contextlib.suppress(ValueError, IndexError):
                handle.traffic = json.loads(out.strip().splitlines()[-1])


def start_rollouts(engine: Any, plan: str, count: int, reason: str = "benchmark") -> list[str]:
    """Start `count` rollouts of `plan`; returns their ids. The first goes through start_rollout; the
    others are inserted as it inserts them, because it allows one active rollout per flag and these
    benchmarks measure the runner's cost per rollout, not what the rollouts do to their flag."""
    from opsconsole.engine.rollout import new_rollout

    ids = [engine.start_rollout(plan, reason).id]
    while len(ids) < count:
        now = engine.clock()
        d = new_rollout(engine.plan(plan), f"{plan}-{len(ids):05d}-{os.getpid()}", engine.actor, now, reason)
        with engine.store.transaction() as tx:
            tx.insert_rollout(d.rollout)
            for rec in d.records:
                tx.append_audit(now, rec.actor, rec.action, f"rollout:{d.rollout.id}", rec.data)
        ids.append(d.rollout.id)
    return ids


# ------------------------------------------------------------------------------------------ terminal

CSI_OR_ESC = re.compile(
    rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[@-Z\\-_])"
)
"""Escape sequences a terminal interprets rather than shows: CSI, OSC, DCS/SOS/PM/APC and two-byte ones."""
CURSOR_TO = re.compile(rb"\x1b\[(\d+);(\d+)H")


def screen_text(data: bytes) -> str:
    """What `data` puts on a screen as text, escape sequences removed (cursor moves included, so a
    line's segments run together as they do on screen, but different lines may too)."""
    return CSI_OR_ESC.sub(b"", data).decode("utf-8", "replace")


class PtyProcess:
    """A program in a real pseudo-terminal of a fixed size, as a terminal emulator runs it: its
    controlling terminal, stdin, stdout and stderr are the pty's slave side; everything it writes
    is read from the master side, with the time each chunk arrived (seconds since the spawn)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cols: int = 80,
        rows: int = 24,
        cwd: Path = REPO,
        env_changes: Mapping[str, str | None] | None = None,
    ) -> None:
        """`env_changes`: variables set for the program (None: removed)."""
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTUAL")}
        env |= {"TERM": "xterm-256color", "COLORTERM": "truecolor", "PYTHONUNBUFFERED": "1"}
        env.pop("NO_COLOR", None)
        env.pop("COLUMNS", None)
        env.pop("LINES", None)
        for key, value in (env_changes or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        self.data = bytearray()
        self.chunks: list[tuple[float, int]] = []
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_take_controlling_terminal,  # noqa: PLW1509 - setsid first, then the pty is ours
        )
        os.close(slave)
        self.eof = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def pump(self, timeout: float) -> None:
        """Read whatever arrives within `timeout` seconds (at least one wait on the pty)."""
        deadline = time.perf_counter() + timeout
        while not self.eof:
            left = deadline - time.perf_counter()
            ready, _, _ = select.select([self.master], [], [], max(0.0, left))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the slave side is closed, the program has ended
                    chunk = b""
                if not chunk:
                    self.eof = True
                    break
                self.chunks.append((self.elapsed(), len(chunk)))
                self.data += chunk
            if left <= 0:
                break

    def wait_for_text(self, *markers: str, since: int = 0, timeout: float = 30.0) -> float:
        """Seconds since the spawn at which every marker had appeared on screen (in what was written
        after byte offset `since`); the time is when the chunk completing them was read."""
        deadline = time.perf_counter() + timeout
        while True:
            text = screen_text(bytes(self.data[since:]))
            if all(m in text for m in markers):
                return self.chunks[-1][0] if self.chunks else self.elapsed()
            if self.eof or time.perf_counter() > deadline:
                tail = text[-400:].replace("\n", " ")
                state = "ended" if self.eof else f"still running after {timeout:g} s"
                raise RuntimeError(f"{list(markers)} never appeared on screen ({state}); last text: {tail!r}")
            self.pump(0.05)

    def time_of(self, offset: int) -> float:
        """When the byte at `offset` of the output was read (seconds since the spawn)."""
        seen = 0
        for t, n in self.chunks:
            seen += n
            if seen > offset:
                return t
        raise ValueError(f"only {seen} bytes were read, not {offset + 1}")

    def send(self, keys: bytes | str) -> None:
        os.write(self.master, keys.encode() if isinstance(keys, str) else keys)

    def bytes_between(self, t0: float, t1: float) -> int:
        return sum(n for t, n in self.chunks if t0 <= t < t1)

    def rss_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) of the program, in KiB, from /proc/<pid>/status."""
        out: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
        return out

    def close(self, quit_keys: bytes | str = b"", timeout: float = 5.0) -> int | None:
        """Quit the program the way a user does (`quit_keys`), else terminate it; close the pty."""
        try:
            if quit_keys and self.proc.poll() is None:
                with contextlib.suppress(OSError):
                    self.send(quit_keys)
            deadline = time.perf_counter() + timeout
            while self.proc.poll() is None and time.perf_counter() < deadline:
                self.pump(0.05)  # keep reading: a program blocked on a full pty never exits
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            return self.proc.returncode
        finally:
            os.close(self.master)
            self.master = -1

    def __enter__(self) -> PtyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.master >= 0:
            self.close()


def _take_controlling_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def opsconsole_argv(*args: str) -> list[str]:
    """The real entry point, as `opsconsole ...` runs it (imports and all)."""
    return [sys.executable, "-m", "opsconsole", *args]


def free_port() -> int:
    """A port nothing listens on (for a config whose metrics must fail fast, not hang)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rows_written(data: bytes, rows: int = 24) -> dict[int, int]:
    """Bytes written per screen row (1-based), attributing everything after a cursor move to the row
    it moved to: what dominates a terminal's traffic. Bytes before any move count as row 0."""
    per_row = dict.fromkeys(range(rows + 1), 0)
    row, pos = 0, 0
    for m in CURSOR_TO.finditer(data):
        per_row[row] = per_row.get(row, 0) + m.start() - pos
        row, pos = int(m.group(1)), m.start()
    per_row[row] = per_row.get(row, 0) + len(data) - pos
    return {r: n for r, n in per_row.items() if n}


def row_texts(data: bytes) -> dict[int, str]:
    """The last text written to each row (1-based), escapes removed: which widget a row belongs to."""
    texts: dict[int, str] = {}
    moves = list(CURSOR_TO.finditer(data))
    for i, m in enumerate(moves):
        end = moves[i + 1].start() if i + 1 < len(moves) else len(data)
        text = screen_text(data[m.end() : end]).strip()
        if text:
            texts[int(m.group(1))] = text
    return texts


# ------------------------------------------------------------------------------------------ many flags

MANY_FLAGS = 10_000
TEAMS = ("checkout", "payments", "search", "growth", "platform", "mobile", "data", "infra")


def many_flags_yaml(count: int = MANY_FLAGS) -> str:
    """`count` flag definitions, as a large organisation's file would hold them: the kill switch's
    own, then generated feature flags with descriptions and owners — four in five boolean, one in
    five a percentage, one in ten depending on a group leader, risks mixed."""
    lines = ["flags:"]
    for name in KILL_FLAGS_ON + KILL_FLAGS_OFF:
        parent = "phase_4_deployment" if name == "aatc_system_enabled" else None
        lines += [f"  {name}:", "    default: false", "    risk: high", "    owner: platform"]
        lines += [f"    depends_on: {parent}"] if parent else []
    lines += ["  new_checkout:", "    type: percentage", "    default: 0", "    risk: high"]
    generated = count - len(KILL_FLAGS_ON + KILL_FLAGS_OFF) - 1
    for i in range(generated):
        team = TEAMS[i % len(TEAMS)]
        lines += [
            f"  {team}_feature_{i:05d}:",
            f"    description: {team} experiment {i} (generated for the benchmark)",
            f"    owner: {team}",
            f"    risk: {('low', 'low', 'medium', 'high')[i % 4]}",
        ]
        if i % 5 == 4:
            lines += ["    type: percentage", f"    default: {i % 101}"]
        else:
            lines += [f"    default: {'true' if i % 2 else 'false'}"]
        if i % 10 == 3:
            leader = i - i % 50
            lines += [f"    depends_on: {TEAMS[leader % len(TEAMS)]}_feature_{leader:05d}"]
    return "\n".join(lines) + "\n"


def many_flags_workspace(root: Path, count: int = MANY_FLAGS) -> tuple[Path, Config]:
    """A workspace whose config defines `count` flags (staging and production, each with a flag file,
    no metrics source, one canary plan), stored values for a third of them in both environments and
    the flag files exported: what a console opens on a large installation."""
    from opsconsole.engine.core import Engine

    root.mkdir(parents=True, exist_ok=True)
    flags_file = root / "flags.yaml"
    flags_file.write_text(many_flags_yaml(count))
    ws, config = write_config(root, {"canary": canary_plan("canary")}, flags_file=flags_file)
    if len(config.flags) != count:
        raise RuntimeError(f"{flags_file}: {len(config.flags)} flags loaded, {count} written")
    engine = Engine(config, ws, ACTOR)
    now = time.time()
    with engine.store.transaction() as tx:
        for env in config.environments:
            for i, (name, defn) in enumerate(config.flags.items()):
                if "_feature_" in name and i % 3 == 0:
                    value = 25 if defn.type == "percentage" else not defn.default
                    tx.set_flag(env, name, value, ACTOR, "benchmark setup", now)
    engine.export_flags()
    engine.close()
    return ws, config
