"""`opsconsole sources check` reaches each Docker engine the services use, once per engine: ok with
its latency and version against the real dockerd, the error (exit 1) for one that is not there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_cli import cli

from .conftest import APP, DockerEngine

pytestmark = pytest.mark.timeout(60)


def test_sources_check_reaches_each_docker_engine(docker_engine: DockerEngine, tmp_path: Path) -> None:
    cfg = tmp_path / "opsconsole.yaml"
    gone = f"unix://{tmp_path}/no-docker.sock"
    cfg.write_text(
        f"""\
services:
  web: {{image: {APP}, docker: {{host: "{docker_engine.host}", timeout: 5s}}}}
  api: {{image: {APP}, docker: {{host: "{docker_engine.host}"}}}}
  old: {{image: {APP}, docker: {{host: "{gone}"}}}}
"""
    )
    p = cli("sources", "check", "--json", "--config", str(cfg), "--workspace", str(tmp_path / "ws"))
    assert p.returncode == 1, p.stdout + p.stderr
    checks = {c["environment"]: c for c in json.loads(p.stdout)["checks"] if c["kind"] == "docker"}
    assert set(checks) == {"services:api,web", "services:old"}  # one check per engine
    ok = checks["services:api,web"]
    assert ok["ok"] and ok["role"] == "deploy" and ok["error"] is None
    assert ok["where"].startswith(docker_engine.host) and "API 1." in ok["where"]
    assert 0 < ok["latency_ms"] < 5000
    bad = checks["services:old"]
    assert not bad["ok"] and f"no engine socket at {tmp_path}/no-docker.sock" in bad["error"]
    text = cli("sources", "check", "--config", str(cfg), "--workspace", str(tmp_path / "ws"))
    assert (
        text.returncode == 1 and "FAIL services:old" in text.stdout and "2 of 3 reachable" not in text.stdout
    )
    assert "1 of 2 reachable" in text.stdout, text.stdout
