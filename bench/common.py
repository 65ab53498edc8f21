"""Setup shared by the benchmark scripts: machine facts, percentiles, temporary workspaces, engine
configuration written the way a user would write it, and the demo service in a process of its own.

Every script prints one JSON document (see `emit`), so `run_all.py` can put them side by side and a
later run can be compared figure by figure. Workspaces live in the system temp directory, which is on
the same disk as everything else here: the kill switch's fsyncs must be real fsyncs, not tmpfs no-ops.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsconsole.engine.config import load_config
from opsconsole.engine.model import Actor, Config
from opsconsole.engine.store import StoreError

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
) -> tuple[Path, Config]:
    """A workspace under `root` with its opsconsole.yaml, the given plans (name -> YAML) and flag files
    per environment; returns (workspace, loaded config). Store: SQLite in the workspace (WAL, FULL)."""
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
        f"environments:\n{envs}"
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
    """Start `count` rollouts of `plan`; returns their ids. Ids carry the second and 4 random hex
    digits, so many starts within one second can collide: such a start is simply retried."""
    ids: list[str] = []
    while len(ids) < count:
        try:
            ids.append(engine.start_rollout(plan, reason).id)
        except StoreError as exc:
            if "already exists" not in str(exc):
                raise
    return ids
