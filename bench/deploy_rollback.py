"""Rollback time, recreate and blue-green: from the new version failing to the previous version
serving again, seen from outside.

A dockerd of its own (tests/docker/dockerd.py: own socket, networking off, busybox images made with
`docker import`), service `web` on a loopback port with an HTTP health check (interval 500 ms,
failure limit 3). Each run deploys v1 (untimed), then `broken` (its /health answers 404) with the real
`opsconsole deploy` command. A watcher thread polls /version and /health every 10 ms: t0 is the first
poll that sees `broken` serving with its health failing, t1 the first poll after it that sees v1
answering again. Target: t1 - t0 <= interval x failure limit + 5 s, every deploy exiting 4.

Blue-green: nginx (Debian) on a loopback port as the switch, keep_old 30 s. Each run deploys v1 (live
on one colour), then v2 with `--strategy blue_green --json`; once nginx serves v2 the bench kills the
new colour's container. Figures: `switch_back_s`, the switch command's own time after the decision
(the report's switch-back step), and `kill_to_served_s`, from the kill to nginx serving v1 again (the
three failed checks 200 ms apart included). Target: switch_back_s <= 1 s, every deploy exiting 4.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import emit, summary, temp_dir

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.docker.dockerd import APP, free_port, http_get, running_dockerd  # noqa: E402
from tests.docker.nginx import running_nginx  # noqa: E402

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


def blue_green_config(root: Path, host: str, blue: int, green: int, switch: str, keep: str) -> Path:
    path = root / f"bg-{keep}.yaml"
    switch = switch.replace('"', '\\"')
    path.write_text(
        f"""\
roles: {{default: operator}}
services:
  web:
    image: {APP}
    health: {{url: "http://127.0.0.1:{{port}}/health", interval: 200ms, timeout: 500ms, failure_limit: 3}}
    docker: {{host: "{host}"}}
    stop_timeout: 2s
    strategy: blue_green
    blue_green: {{ports: {{blue: [{blue}], green: [{green}]}}, switch: {{command: "{switch}"}}, keep_old: {keep}}}
"""
    )
    return path


def blue_green_run(engine: object, quick: Path, slow: Path, ws: Path, url: str) -> dict[str, object]:
    if deploy(quick, ws, "v1") != 0:
        return {"error": "v1 did not deploy"}
    argv = [sys.executable, "-m", "opsconsole", "deploy", "web", "--image", "v2", "--json"]
    proc = subprocess.Popen(
        [*argv, "--config", str(slow), "--workspace", str(ws)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while http_get(f"{url}/version", timeout=0.5) != "v2":
        if time.monotonic() > deadline:
            proc.kill()
            return {"error": "nginx never served v2"}
        time.sleep(POLL)
    client = engine.client  # type: ignore[attr-defined]
    live = [
        c
        for c in client.containers.list()
        if c.labels.get("io.opsconsole.deploy") and c.image.tags == [f"{APP}:v2"]
    ]
    killed = time.monotonic()
    for c in live:
        c.kill()
    while http_get(f"{url}/version", timeout=0.5) != "v1":
        if time.monotonic() > killed + 30:
            break
        time.sleep(POLL)
    served = time.monotonic()
    out, _ = proc.communicate(timeout=60)
    report = json.loads(out)
    [back] = [s for s in report["steps"] if s["name"].startswith("switch-back")] or [{"seconds": None}]
    return {
        "exit_code": proc.returncode,
        "switch_back_s": back["seconds"],
        "kill_to_served_s": round(served - killed, 3),
    }


def main() -> None:
    target = INTERVAL * FAILURE_LIMIT + 5.0
    with running_dockerd() as engine, temp_dir("opsc-bench-deploy-") as root:
        port = free_port()
        cfg = config(root, engine.host, port)
        runs = [one_run(cfg, root / "ws", port) for _ in range(RUNS)]
        blue, green = free_port(), free_port()
        with running_nginx(root / "nginx", blue) as nginx:
            quick = blue_green_config(root, engine.host, blue, green, nginx.switch_command(), "200ms")
            slow = blue_green_config(root, engine.host, blue, green, nginx.switch_command(), "30s")
            bg_runs = [
                blue_green_run(engine, quick, slow, root / f"bg-ws-{i}", nginx.url) for i in range(RUNS)
            ]
    recoveries = [float(r["recovery_s"]) for r in runs if isinstance(r.get("recovery_s"), float)]
    ok = len(recoveries) == RUNS and all(r.get("exit_code") == 4 for r in runs)
    figures: dict[str, object] = {"runs": runs}
    if recoveries:
        figures["recovery_s"] = summary(recoveries)
        ok = ok and max(recoveries) <= target
    switches = [float(r["switch_back_s"]) for r in bg_runs if isinstance(r.get("switch_back_s"), float)]
    figures["blue_green_runs"] = bg_runs
    ok = ok and len(switches) == RUNS and all(r.get("exit_code") == 4 for r in bg_runs)
    if switches:
        figures["switch_back_s"] = summary(switches)
        figures["kill_to_served_s"] = summary(
            [float(str(r["kill_to_served_s"])) for r in bg_runs if "kill_to_served_s" in r]
        )
        ok = ok and max(switches) <= 1.0
    emit(
        "deploy_rollback",
        target=f"recreate: recovery_s <= {target:g} s (health interval {INTERVAL:g} s x failure limit {FAILURE_LIMIT} "
        "+ 5 s); blue-green: switch_back_s <= 1 s after the decision; every deploy exiting 4",
        ok=ok,
        figures=figures,
        setup={
            "runs": RUNS,
            "strategy": "recreate, 1 replica, host networking on 127.0.0.1; blue_green with nginx (Debian) as the "
            "switch (upstream file rewritten, nginx -s reload), health interval 200 ms, failure limit 3",
            "fault": "the new image's /health answers 404",
            "engine": "dockerd (Debian docker.io) on its own socket, networking off",
            "poll_ms": POLL * 1000,
        },
    )


if __name__ == "__main__":
    main()
