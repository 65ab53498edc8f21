"""`opsconsole deploy --strategy rolling`: three replicas replaced one at a time (read back from the
Docker engine's own event stream), and a failing replica stops the rollout there and restores."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import APP, DockerEngine, free_port, http_get
from .test_deploy import deploy

pytestmark = pytest.mark.timeout(120)


def write_config(tmp: Path, host: str, ports: list[int]) -> Path:
    cfg = tmp / "opsconsole.yaml"
    cfg.write_text(
        f"""\
roles: {{default: operator}}
services:
  web:
    image: {APP}
    replicas: {len(ports)}
    ports: {ports}
    health: {{url: "http://127.0.0.1:{{port}}/health", interval: 200ms, timeout: 500ms, failure_limit: 3}}
    docker: {{host: "{host}"}}
    stop_timeout: 2s
    strategy: rolling
"""
    )
    return cfg


def events(engine: DockerEngine, since: float, old: set[str], deploy_id: str) -> list[tuple[str, str, str]]:
    """(action, replica, image tag) of the engine's container start and die events, in order: the
    `old` containers' ends and what deploy `deploy_id` started and ended (the engine is shared by the
    session's tests)."""
    tags = {v: k.split(":")[-1] for k, v in engine.images().items() if not k.endswith(":rollback")}
    stream: Any = engine.client.events(
        since=int(since),
        until=int(time.time()) + 1,
        decode=True,
        filters={"type": "container", "event": ["start", "die"]},
    )
    out = []
    for e in stream:
        attrs = e["Actor"]["Attributes"]
        ours = attrs.get("io.opsconsole.deploy") == deploy_id
        if not ours and not (e["id"] in old and e["Action"] == "die"):
            continue
        image_id = engine.client.images.get(attrs["image"]).id
        out.append((e["Action"], attrs["io.opsconsole.replica"], tags.get(image_id, "?")))
    return out


def versions(ports: list[int]) -> list[str | None]:
    return [http_get(f"http://127.0.0.1:{p}/version") for p in ports]


def test_three_replicas_are_replaced_one_at_a_time(docker_clean, tmp_path):
    ports = [free_port() for _ in range(3)]
    cfg = write_config(tmp_path, docker_clean.host, ports)
    ws = tmp_path / "ws"
    assert deploy(cfg, ws, "v1").returncode == 0
    assert versions(ports) == ["v1", "v1", "v1"]
    first = {c.id for c in docker_clean.managed("web")}
    since = time.time() - 1
    p = deploy(cfg, ws, "v2", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert versions(ports) == ["v2", "v2", "v2"]
    deploy_id = json.loads((ws / "deploys" / "web.json").read_text())["id"]
    seen = events(docker_clean, since, first, deploy_id)
    assert seen == [
        ("die", "0", "v1"),
        ("start", "0", "v2"),
        ("die", "1", "v1"),
        ("start", "1", "v2"),
        ("die", "2", "v1"),
        ("start", "2", "v2"),
    ], seen
    names = [s["name"] for s in json.loads(p.stdout)["steps"]]
    assert names[-3:] == ["replace replica 0", "replace replica 1", "replace replica 2"]


def test_a_failing_replica_stops_the_rollout_and_the_old_ones_are_restored(docker_clean, tmp_path):
    ports = [free_port() for _ in range(3)]
    cfg = write_config(tmp_path, docker_clean.host, ports)
    ws = tmp_path / "ws"
    assert deploy(cfg, ws, "v1").returncode == 0
    untouched = {c.labels["io.opsconsole.replica"]: c.id for c in docker_clean.managed("web")}
    p = deploy(cfg, ws, "broken")
    assert p.returncode == 4, p.stdout + p.stderr
    assert "unhealthy" in p.stderr and f"replicas 0 rolled back to {APP}:rollback" in p.stderr
    assert versions(ports) == ["v1", "v1", "v1"]
    now = {c.labels["io.opsconsole.replica"]: c.id for c in docker_clean.managed("web")}
    assert now["1"] == untouched["1"] and now["2"] == untouched["2"]  # never reached: never touched
    assert now["0"] != untouched["0"]
    assert len(now) == 3
