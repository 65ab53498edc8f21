"""One active rollout per Docker service, as per flag. Seen by hand: a second plan's blue_green
phase deployed v1 to blue while the first plan's rollout, awaiting approval, measured v2 on green;
its checks and a rollback would each have acted on what the other deployed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from opsconsole.engine import Actor, open_engine
from opsconsole.engine.resources import Resource, plan_resources
from opsconsole.engine.rollout import Rejected
from tests.docker.dockerd import workspace_config

PLAN = """\
name: {name}
phases:
  - name: staging
    environment: production
    flags: {{{flag}: true}}
  - name: production
    environment: production
    strategy: {{kind: {kind}, service: {service}, image: v2}}
"""


def test_a_second_plan_deploying_the_same_service_is_refused_naming_the_first(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "plan.yaml").write_text(
        PLAN.format(name="ship", flag="phase_4_deployment", kind="blue_green", service="web")
    )
    (tmp_path / "plans" / "other.yaml").write_text(
        PLAN.format(name="ship-again", flag="enable_new_checkout", kind="recreate", service="web")
    )
    docker = SimpleNamespace(host="unix:///nonexistent/docker.sock")
    extra = 'blue_green: {ports: {blue: [18081], green: [18091]}, switch: {command: "true"}}'
    flags = str(Path(__file__).resolve().parents[2] / "config" / "flags.yaml")
    cfg = tmp_path / "opsconsole.yaml"
    text = workspace_config(tmp_path, docker, 18081, flags, extra)  # type: ignore[arg-type]
    cfg.write_text(text.replace(f'plans: ["{tmp_path}/plan.yaml"]', f'plans: ["{tmp_path}/plans/*.yaml"]'))
    engine = open_engine(str(cfg), tmp_path / "ws", actor=Actor("root", "test"))
    try:
        plans = engine.config.plans
        assert Resource("service", "", "web") in plan_resources(plans["ship"])
        first = engine.start_rollout("ship", "first")
        with pytest.raises(
            Rejected, match=rf"rollout {first.id} .* drives service web; one active rollout per service"
        ):
            engine.start_rollout("ship-again", "second")
        engine.command(first.id, "abort", "make room")
        assert engine.start_rollout("ship-again", "now free").plan == "ship-again"
    finally:
        engine.close()
