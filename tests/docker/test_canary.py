"""A canary phase on Docker: the new version starts on the other colour's ports beside the live one,
the canary flag's percentage moves step by step as for any canary, and when the rollout completes the
old colour goes (rolled back: the new one goes, the flag back at 0). Real dockerd, store and runner."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from opsconsole.engine import Actor, Engine, Runner, deploy_service, open_engine
from opsconsole.engine.model import RolloutState

from .conftest import APP, DockerEngine, free_port, http_get

S = RolloutState
pytestmark = pytest.mark.timeout(150)

FLAGS = """\
flags:
  emergency_shutdown: {type: boolean, default: false, risk: high, kind: kill-switch}
  web_canary: {type: percentage, default: 0, risk: low, description: share of traffic to the new colour}
"""


def make_engine(
    tmp: Path,
    docker: DockerEngine,
    blue: int,
    green: int,
    image: str,
    gate_port: int,
    want: str = "ok",
    role: str = "gates",
) -> Engine:
    (tmp / "flags.yaml").write_text(FLAGS)
    (tmp / "plan.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: ship
            phases:
              - name: canary
                environment: production
                strategy: {{kind: canary, flag: web_canary, service: web, image: {image}, steps: [25, 100], step_wait: 1s}}
                {role}:
                  - {{kind: health, url: "http://127.0.0.1:{gate_port}/health", body_contains: "{want}", timeout: 1s}}
            """
        )
    )
    (tmp / "opsconsole.yaml").write_text(
        textwrap.dedent(
            f"""\
            interval: 1s
            roles: {{default: operator}}
            environments:
              production: {{flags: {{kind: file, path: "${{WORKSPACE}}/flags/production.json"}}}}
            plans: ["{tmp}/plan.yaml"]
            flags: "{tmp}/flags.yaml"
            kill_switch: {{flags_on: [emergency_shutdown]}}
            services:
              web:
                image: {APP}
                ports: [{blue}]
                health: {{url: "http://127.0.0.1:{{port}}/health", interval: 200ms, timeout: 500ms, failure_limit: 3}}
                docker: {{host: "{docker.host}"}}
                stop_timeout: 2s
                blue_green: {{ports: {{blue: [{blue}], green: [{green}]}}, switch: {{command: "true"}}, keep_old: 200ms}}
            """
        )
    )
    return open_engine(str(tmp / "opsconsole.yaml"), tmp / "ws", actor=Actor("root", "test"))


def percent(engine: Engine) -> Any:
    return engine.flag_states("production")["web_canary"].value


def colours(docker: DockerEngine) -> dict[str, str]:
    """Running colour -> its version (the image's tag other than `rollback`)."""
    return {
        c.labels["io.opsconsole.colour"]: next(t for t in sorted(c.image.tags) if not t.endswith(":rollback"))
        for c in docker.managed("web")
        if c.status == "running"
    }


def drive(engine: Engine, rid: str, seen: list[tuple[int, dict[str, str]]], docker: DockerEngine) -> None:
    runner = Runner(engine)

    async def loop() -> None:
        deadline = time.monotonic() + 60
        while engine.rollout(rid).state not in (S.COMPLETED, S.ROLLED_BACK):
            assert time.monotonic() < deadline, engine.rollout(rid).reason
            await runner.tick()
            seen.append((percent(engine), colours(docker)))
            await asyncio.sleep(0.1)
        assert runner._phase_deploys is not None
        await runner._phase_deploys.close()  # waits for the canary to be settled

    asyncio.run(loop())


def first_on_blue(tmp: Path, docker: DockerEngine, blue: int, green: int) -> None:
    (tmp / "first").mkdir()
    first = make_engine(tmp / "first", docker, blue, green, "v1", blue)
    try:
        assert deploy_service(first.config, first.workspace, "web", "v1", strategy="blue_green").code == 0
    finally:
        first.close()


def test_the_canary_runs_beside_the_old_version_while_the_flag_moves_then_the_old_goes(
    docker_clean: DockerEngine, tmp_path: Path
) -> None:
    blue, green = free_port(), free_port()
    first_on_blue(tmp_path, docker_clean, blue, green)
    engine = make_engine(tmp_path, docker_clean, blue, green, "v2", green)
    try:
        rid = engine.start_rollout("ship", "test").id
        seen: list[tuple[int, dict[str, str]]] = []
        drive(engine, rid, seen, docker_clean)
        assert engine.rollout(rid).state is S.COMPLETED, engine.rollout(rid).reason
        # at 25% both versions served, side by side
        assert (25, {"blue": f"{APP}:v1", "green": f"{APP}:v2"}) in seen, seen
        # the flag stayed at 0 until the new version ran (steps [25, 100] start at 0 on Docker)
        assert seen[0][0] == 0 and all("green" in c for p, c in seen if p > 0), seen
        assert percent(engine) == 100
        assert colours(docker_clean) == {"green": f"{APP}:v2"}  # the old colour went
        assert http_get(f"http://127.0.0.1:{green}/version") == "v2"
        with engine.store.read() as tx:
            [record] = [d for d in tx.list_deploys("web") if d.get("rollout") == f"{rid}:0"]
        assert record["phase"] == "done" and record["outcome"] == "ok" and record["strategy"] == "canary"
    finally:
        engine.close()


def test_a_canary_rolled_back_removes_the_new_version_and_the_flag_goes_to_0(
    docker_clean: DockerEngine, tmp_path: Path
) -> None:
    blue, green = free_port(), free_port()
    first_on_blue(tmp_path, docker_clean, blue, green)
    engine = make_engine(tmp_path, docker_clean, blue, green, "v2", green, "v9", "guards")  # fails
    try:
        rid = engine.start_rollout("ship", "test").id
        seen: list[tuple[int, dict[str, str]]] = []
        drive(engine, rid, seen, docker_clean)
        assert engine.rollout(rid).state is S.ROLLED_BACK, engine.rollout(rid).reason
        assert any(len(c) == 2 for _, c in seen), seen  # the canary ran beside the old version
        assert percent(engine) == 0
        assert colours(docker_clean) == {"blue": f"{APP}:v1"}
        assert http_get(f"http://127.0.0.1:{blue}/version") == "v1"
    finally:
        engine.close()
