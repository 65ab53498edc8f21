"""`opsconsole deploy --strategy blue_green` with nginx (Debian) as the switch on loopback: green
starts beside blue, is checked, traffic moves through nginx; a failing health check of green within
the keep delay switches nginx back to blue, which was never stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import APP, DockerEngine, free_port, http_get
from .dockerd import Missing
from .nginx import Nginx, running_nginx
from .test_deploy import REPO, SECRET, SECRET_ENV

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[Nginx, int, int]]:
    blue, green = free_port(), free_port()
    try:
        with running_nginx(tmp_path / "nginx", blue) as n:
            yield n, blue, green
    except Missing as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc} (CI=true: `make system-deps` installs it)")
        pytest.skip(str(exc))


def write_config(tmp: Path, docker: DockerEngine, n: Nginx, blue: int, green: int, keep: str) -> Path:
    cfg = tmp / "opsconsole.yaml"
    cfg.write_text(
        f"""\
roles: {{default: operator}}
services:
  web:
    image: {APP}
    health: {{url: "http://127.0.0.1:{{port}}/health", interval: 200ms, timeout: 500ms, failure_limit: 3}}
    docker: {{host: "{docker.host}"}}
    stop_timeout: 2s
    strategy: blue_green
    blue_green:
      ports: {{blue: [{blue}], green: [{green}]}}
      switch: {{command: "{n.switch_command().replace('"', chr(92) + '"')}", timeout: 10s}}
      keep_old: {keep}
"""
    )
    return cfg


def argv(cfg: Path, ws: Path, image: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "opsconsole",
        "deploy",
        "web",
        "--image",
        image,
        "--config",
        str(cfg),
        "--workspace",
        str(ws),
    ]


ENV = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "PYTHONPATH": str(REPO), SECRET_ENV: SECRET, "HOME": "/tmp"}


def served(n: Nginx) -> str | None:
    return http_get(f"{n.url}/version")


def wait_for(what: str, cond: object, seconds: float = 20.0) -> float:
    deadline = time.monotonic() + seconds
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)
    return time.monotonic()


def test_green_starts_beside_blue_and_nginx_switches_to_it(docker_clean, nginx, tmp_path):
    n, blue, green = nginx
    cfg = write_config(tmp_path, docker_clean, n, blue, green, "300ms")
    ws = tmp_path / "ws"
    first = subprocess.run(argv(cfg, ws, "v1"), capture_output=True, text=True, timeout=60, env=ENV)
    assert first.returncode == 0, first.stdout + first.stderr
    # `nginx -s reload` returns before the new workers serve: wait (bounded) for them
    wait_for("nginx serves blue", lambda: served(n) == "v1", 5)
    assert http_get(f"http://127.0.0.1:{blue}/version") == "v1"
    p = subprocess.run(argv(cfg, ws, "v2"), capture_output=True, text=True, timeout=60, env=ENV)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "traffic on green" in p.stdout
    wait_for("nginx serves green", lambda: served(n) == "v2", 5)
    assert http_get(f"http://127.0.0.1:{green}/version") == "v2"
    assert http_get(f"http://127.0.0.1:{blue}/version") is None  # blue removed after keep_old
    [c] = [c for c in docker_clean.managed("web") if c.status == "running"]
    assert c.labels["io.opsconsole.colour"] == "green"
    assert docker_clean.images()[f"{APP}:rollback"] == docker_clean.images()[f"{APP}:v1"]


def test_a_failing_guard_within_the_delay_switches_nginx_back_to_blue(docker_clean, nginx, tmp_path):
    n, blue, green = nginx
    cfg = write_config(tmp_path, docker_clean, n, blue, green, "20s")
    ws = tmp_path / "ws"
    (tmp_path / "first").mkdir()
    quick = write_config(tmp_path / "first", docker_clean, n, blue, green, "200ms")
    assert subprocess.run(argv(quick, ws, "v1"), capture_output=True, timeout=60, env=ENV).returncode == 0
    [blue_c] = [c for c in docker_clean.managed("web") if c.status == "running"]
    proc = subprocess.Popen(
        argv(cfg, ws, "v2"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )
    try:
        wait_for("nginx serves green", lambda: served(n) == "v2")
        [green_c] = [
            c for c in docker_clean.managed("web") if c.labels.get("io.opsconsole.colour") == "green"
        ]
        killed = time.monotonic()
        green_c.kill()
        back = wait_for("nginx serves blue again", lambda: served(n) == "v1")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 4, out + err
    assert "green failed after the switch" in err and "traffic switched back to blue" in err
    # 3 failed checks 200 ms apart, then the switch: well inside the interval x limit + 1 s
    assert back - killed < 0.2 * 3 + 1.0 + 0.5, back - killed
    blue_c.reload()
    assert blue_c.status == "running"  # blue was never stopped
    assert not [c for c in docker_clean.managed("web") if c.labels.get("io.opsconsole.colour") == "green"]


def test_a_deploy_killed_inside_the_switch_is_switched_back_by_the_next(docker_clean, nginx, tmp_path):
    """The switch command moves nginx to green, then kills the deploying process (SIGKILL): the next
    deploy switches traffic back to blue (never stopped) before anything else, and removes green."""
    n, blue, green = nginx
    (tmp_path / "first").mkdir()
    quick = write_config(tmp_path / "first", docker_clean, n, blue, green, "200ms")
    ws = tmp_path / "ws"
    assert subprocess.run(argv(quick, ws, "v1"), capture_output=True, timeout=60, env=ENV).returncode == 0
    cfg = tmp_path / "crash.yaml"
    crash = n.switch_command().replace('"', chr(92) + '"') + ' && { [ -z \\"$CRASH\\" ] || kill -9 $PPID; }'
    cfg.write_text(quick.read_text().replace(n.switch_command().replace('"', chr(92) + '"'), crash))
    crashed = subprocess.run(
        argv(cfg, ws, "v2"), capture_output=True, text=True, timeout=60, env={**ENV, "CRASH": "1"}
    )
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    wait_for("switched, then cut short: green is live", lambda: served(n) == "v2", 5)
    p = subprocess.run(
        [*argv(cfg, ws, "no-such-tag"), "--json"], capture_output=True, text=True, timeout=60, env=ENV
    )
    report = json.loads(p.stdout)
    assert report["resumed"] and "interrupted at bg_switched" in report["resumed"], report
    wait_for("switched back to blue", lambda: served(n) == "v1", 5)
    assert not [c for c in docker_clean.managed("web") if c.labels.get("io.opsconsole.colour") == "green"]
    assert p.returncode == 3 and "does not exist" in report["message"]
