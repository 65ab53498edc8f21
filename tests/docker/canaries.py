"""What the Docker canary tests share: a workspace whose plan runs a canary of the service `web` (its
colours' ports given with a switch, without one, or as `canary:`), the running colours, the flag's
percentage, the command line, and a runner driven in one event loop."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsconsole.engine import Actor, Engine, Runner, deploy_service, open_engine

from .conftest import DockerEngine
from .dockerd import workspace_config

REPO = Path(__file__).resolve().parents[2]

FLAGS = """\
flags:
  emergency_shutdown: {type: boolean, default: false, risk: high, kind: kill-switch}
  web_canary: {type: percentage, default: 0, risk: low, description: share of traffic to the new colour}
"""

COLOURS = {
    "switch": 'blue_green: {{ports: {{blue: [{blue}], green: [{green}]}}, switch: {{command: "true"}}, keep_old: 200ms}}',
    "no-switch": "blue_green: {{ports: {{blue: [{blue}], green: [{green}]}}}}",
    "canary": "canary: {{ports: {{blue: [{blue}], green: [{green}]}}}}",
}
"""How the service gives its colours' ports: `blue_green:` with a switch, without one, or `canary:`."""


def write_config(
    tmp: Path,
    docker: DockerEngine,
    blue: int,
    green: int,
    image: str,
    gate_port: int,
    want: str = "ok",
    role: str = "gates",
    colours: str = "switch",
    step_wait: str = "1s",
    kind: str = "canary",
) -> Path:
    """`role`: whether the health check on `gate_port` is one of the phase's gates or guards ("": the
    phase has neither, and ends when its last step's wait is over or it is promoted)."""
    (tmp / "flags.yaml").write_text(FLAGS)
    strategy = (
        f"{{kind: canary, flag: web_canary, service: web, image: {image}, steps: [25, 100], step_wait: {step_wait}}}"
        if kind == "canary"
        else f"{{kind: {kind}, service: web, image: {image}}}"
    )
    check = (
        f'{{kind: health, url: "http://127.0.0.1:{gate_port}/health", body_contains: "{want}", timeout: 1s}}'
    )
    (tmp / "plan.yaml").write_text(
        "name: ship\n"
        "phases:\n"
        "  - name: canary\n"
        "    environment: production\n"
        f"    strategy: {strategy}\n" + (f"    {role}:\n      - {check}\n" if role else "")
    )
    cfg = tmp / "opsconsole.yaml"
    colour_ports = COLOURS[colours].format(blue=blue, green=green)
    cfg.write_text(workspace_config(tmp, docker, blue, f"{tmp}/flags.yaml", colour_ports))
    return cfg


def make_engine(
    tmp: Path, docker: DockerEngine, blue: int, green: int, image: str, gate_port: int, **kw: Any
) -> Engine:
    cfg = write_config(tmp, docker, blue, green, image, gate_port, **kw)
    return open_engine(str(cfg), tmp / "ws", actor=Actor("root", "test"))


def percent(engine: Engine) -> Any:
    return engine.flag_states("production")["web_canary"].value


def colours(docker: DockerEngine) -> dict[str, str]:
    """Running colour -> its version (the image's tag other than `rollback`)."""
    return {
        c.labels["io.opsconsole.colour"]: next(t for t in sorted(c.image.tags) if not t.endswith(":rollback"))
        for c in docker.managed("web")
        if c.status == "running"
    }


def first_on_blue(tmp: Path, docker: DockerEngine, blue: int, green: int) -> None:
    """v1 live on blue, deployed by blue_green from a workspace of its own (its service has a switch)."""
    (tmp / "first").mkdir()
    first = make_engine(tmp / "first", docker, blue, green, "v1", blue)
    try:
        assert deploy_service(first.config, first.workspace, "web", "v1", strategy="blue_green").code == 0
    finally:
        first.close()


def run_runner(engine: Engine, done: Callable[[], bool], seconds: float) -> Runner:
    """A runner's own loop (Runner.run, as `opsconsole engine` runs it) until `done()`, then stopped
    as a stopped engine stops: its deploys and settles waited for, its lock released."""
    runner = Runner(engine)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        deadline = time.monotonic() + seconds
        try:
            while not done():
                assert not task.done(), task.exception() if not task.cancelled() else "cancelled"
                assert time.monotonic() < deadline, "condition not reached"
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)

    asyncio.run(main())
    return runner


def cli(cfg: Path, ws: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsconsole", *args, "--config", str(cfg), "--workspace", str(ws)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(ws.parent),
            "PYTHONPATH": str(REPO),
            "USER": "root",
        },
    )
