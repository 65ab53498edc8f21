"""Fixtures that start real components on 127.0.0.1: the demo's sample service and a workspace whose
configuration points at it."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconsole.demo.service import DemoService
from opsconsole.engine.config import load_config
from opsconsole.engine.core import Engine
from opsconsole.engine.model import Actor, Config

REPO = Path(__file__).resolve().parents[2]

FAST_PLAN = """
name: fast
phases:
  - name: staging
    environment: staging
    flags: {enable_new_checkout: true}
    gates:
      - {kind: health, url: "http://127.0.0.1:${DEMO_PORT}/health", timeout: 1s}
    approval: {required: true, role: approver}
  - name: canary
    environment: production
    strategy: {kind: canary, flag: new_checkout, steps: [0, 50, 100], step_wait: 1s}
    guards:
      - {kind: metric, name: error_rate, query: 'ratio(http_requests_total{version="v2",code=~"5.."}, http_requests_total{version="v2"})', max: 0.01, unit: "%", failure_limit: 2}
"""


def write_workspace(tmp_path: Path, port: int, plan: str = FAST_PLAN, extra: str = "") -> Path:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    (tmp_path / "plans").mkdir(exist_ok=True)
    (tmp_path / "plans" / "plan.yaml").write_text(plan.replace("${DEMO_PORT}", str(port)))
    main = f"""
    interval: 1s
    roles:
      default: viewer
      users: {{alice: approver, bob: operator, carol: viewer, root: admin, demo: approver}}
    environments:
      staging:
        metrics: {{kind: scrape, url: "http://127.0.0.1:{port}/metrics", timeout: 1s, window: 10s}}
        flags: {{kind: file, path: "${{WORKSPACE}}/flags/staging.json"}}
      production:
        metrics: {{kind: scrape, url: "http://127.0.0.1:{port}/metrics", timeout: 1s, window: 10s}}
        flags: {{kind: file, path: "${{WORKSPACE}}/flags/production.json"}}
    plans: ["{tmp_path}/plans/*.yaml"]
    flags: "{REPO}/config/flags.yaml"
    kill_switch:
      flags_off: [phase_4_deployment, enable_autonomous_improvements, enable_component_generation, aatc_system_enabled]
      flags_on: [emergency_shutdown]
    """
    (ws / "opsconsole.yaml").write_text(textwrap.dedent(main) + textwrap.dedent(extra))
    return ws


def load_ws(ws: Path) -> Config:
    return load_config(ws / "opsconsole.yaml", {"WORKSPACE": str(ws)})


def engine_as(ws: Path, user: str, config: Config | None = None) -> Engine:
    return Engine(config or load_ws(ws), ws, Actor(user, "test"))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[DemoService]:
    svc = DemoService(tmp_path / "ws" / "flags" / "production.json", flag="new_checkout", port=0)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()
