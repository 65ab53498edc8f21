"""Recreate rollback time: from the new version's first failing health check to the previous version
serving again, seen from outside.

A dockerd of its own (tests/docker/dockerd.py: own socket, networking off, busybox images made with
`docker import`), service `web` on a loopback port with an HTTP health check (interval 500 ms,
failure limit 3). Each run deploys v1 (untimed), then `broken` (its /health answers 404) with the real
`opsconsole deploy` command. A watcher thread polls /version and /health every 10 ms: t0 is the first
poll that sees `broken` serving with its health failing, t1 the first poll after it that sees v1
answering again. Target: t1 - t0 <= interval x failure limit + 5 s, every deploy exiting 4.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from common import emit, summary, temp_dir

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.docker.dockerd import APP, free_port, http_get, running_dockerd  # noqa: E402

RUNS = 5
INTERVAL = 0.5
FAILURE_LIMIT = 3
POLL = 0.01


def config(root: Path, host: str, port: int) -> Path:
    path = root / "opsconsole.yaml"
    path.write_text(
        f"""\
roles: {{default: operator}}
services:
  web:
    image: {APP}
    ports: [{port}]
    health: {{url: "http://127.0.0.1:{{port}}/health", interval: {int(INTERVAL * 1000)}ms, timeout: 500ms, failure_limit: {FAILURE_LIMIT}}}
    docker: {{host: "{host}"}}
    stop_timeout: 2s
"""
    )
    return path


def deploy(cfg: Path, ws: Path, image: str) -> int:
    argv = [sys.executable, "-m", "opsconsole", "deploy", "web", "--image", image, "--config", str(cfg)]
    return subprocess.run([*argv, "--workspace", str(ws)], capture_output=True, timeout=120).returncode


def one_run(cfg: Path, ws: Path, port: int) -> dict[str, object]:
    if deploy(cfg, ws, "v1") != 0:
        return {"error": "v1 did not deploy"}
    seen: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            version = http_get(f"http://127.0.0.1:{port}/version", timeout=0.2)
            now = time.monotonic()
            if "t0" not in seen and version == "broken":
                if http_get(f"http://127.0.0.1:{port}/health", timeout=0.2) is None:
                    seen["t0"] = now
            elif "t0" in seen and version == "v1":
                seen["t1"] = now
                return
            time.sleep(POLL)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    code = deploy(cfg, ws, "broken")
    finished = time.monotonic()
    watcher.join(5.0)
    stop.set()
    recovery = seen["t1"] - seen["t0"] if "t0" in seen and "t1" in seen else None
    return {
        "exit_code": code,
        "recovery_s": round(recovery, 3) if recovery is not None else None,
        "deploy_s": round(finished - started, 3),
    }


def main() -> None:
    target = INTERVAL * FAILURE_LIMIT + 5.0
    with running_dockerd() as engine, temp_dir("opsc-bench-deploy-") as root:
        port = free_port()
        cfg = config(root, engine.host, port)
        runs = [one_run(cfg, root / "ws", port) for _ in range(RUNS)]
    recoveries = [float(r["recovery_s"]) for r in runs if isinstance(r.get("recovery_s"), float)]
    ok = len(recoveries) == RUNS and all(r.get("exit_code") == 4 for r in runs)
    figures: dict[str, object] = {"runs": runs}
    if recoveries:
        figures["recovery_s"] = summary(recoveries)
        ok = ok and max(recoveries) <= target
    emit(
        "deploy_rollback",
        target=f"recovery_s <= {target:g} s (health interval {INTERVAL:g} s x failure limit {FAILURE_LIMIT} + 5 s), "
        "every deploy exiting 4",
        ok=ok,
        figures=figures,
        setup={
            "runs": RUNS,
            "strategy": "recreate, 1 replica, host networking on 127.0.0.1",
            "fault": "the new image's /health answers 404",
            "engine": "dockerd (Debian docker.io) on its own socket, networking off",
            "poll_ms": POLL * 1000,
        },
    )


if __name__ == "__main__":
    main()
