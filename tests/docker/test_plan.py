"""A plan phase with `strategy: {kind: recreate, service: web, image: TAG}`: the real runner deploys
the service in a thread, then checks the phase's gates; a deploy that fails (rolled back to
`:rollback`) rolls the rollout back. Real dockerd, store and runner."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from opsconsole.engine import Actor, Engine, Runner, deploy_service, open_engine
from opsconsole.engine.deploy.phase import PhaseDeploy, PhaseDeploys
from opsconsole.engine.model import RolloutState

from .conftest import APP, DockerEngine, free_port, http_get
from .dockerd import workspace_config
from .nginx import running_nginx

REPO = Path(__file__).resolve().parents[2]
S = RolloutState
pytestmark = pytest.mark.timeout(120)


def make_engine(
    tmp: Path,
    docker: DockerEngine,
    port: int,
    image: str,
    kind: str = "recreate",
    extra: str = "",
    gate: str | None = None,
    flags: str = f"{REPO}/config/flags.yaml",
) -> Engine:
    (tmp / "plan.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: ship
            phases:
              - name: deploy
                environment: production
                strategy: {{kind: {kind}, service: web, image: {image}}}
                gates:
                  - {gate or f'{{kind: health, url: "http://127.0.0.1:{port}/health", retries: 2, timeout: 1s}}'}
            """
        )
    )
    cfg = tmp / "opsconsole.yaml"
    cfg.write_text(workspace_config(tmp, docker, port, flags) + extra)
    return open_engine(str(cfg), tmp / "ws", actor=Actor("root", "test"))


def run_until(runner: Runner, done: Callable[[], bool], seconds: float = 40.0) -> None:
    """Ticks in ONE event loop (the deploy's task lives in it) until `done()`."""

    async def loop() -> None:
        deadline = time.monotonic() + seconds
        while not done():
            assert time.monotonic() < deadline, "condition not reached"
            await runner.tick()
            await asyncio.sleep(0.05)
        if runner._phase_deploys is not None:
            await runner._phase_deploys.close()

    asyncio.run(loop())


def deploy_v1(tmp: Path, docker: DockerEngine, port: int) -> None:
    """The version running before the rollout, deployed as `opsconsole deploy web --image v1` would."""
    (tmp / "first").mkdir()
    engine = make_engine(tmp / "first", docker, port, "v1")
    try:
        report = deploy_service(engine.config, engine.workspace, "web", "v1")
    finally:
        engine.close()
    assert report.code == 0, report.message


def test_a_recreate_phase_deploys_the_service_then_checks_its_gates(docker_clean, tmp_path):
    port = free_port()
    deploy_v1(tmp_path, docker_clean, port)
    engine = make_engine(tmp_path, docker_clean, port, "v2")
    try:
        rid = engine.start_rollout("ship", "test").id
        runner = Runner(engine)
        run_until(runner, lambda: engine.rollout(rid).state in (S.COMPLETED, S.ROLLED_BACK, S.PAUSED))
        r = engine.rollout(rid)
        assert r.state is S.COMPLETED, r.reason
        assert http_get(f"http://127.0.0.1:{port}/version") == "v2"
        assert docker_clean.images()[f"{APP}:rollback"] == docker_clean.images()[f"{APP}:v1"]
        # a restarted runner asking again finds the outcome in the journal: no second deploy
        [before] = [c for c in docker_clean.managed("web") if c.status == "running"]

        async def ask() -> PhaseDeploy | None:
            return PhaseDeploys(engine).poll((rid, 0), "web", "v2")

        found = asyncio.run(ask())
        assert found is not None and found.ok and "(recorded)" in found.reason
        [after] = [c for c in docker_clean.managed("web") if c.status == "running"]
        assert after.id == before.id
    finally:
        engine.close()


def test_a_failing_deploy_rolls_the_rollout_back_and_the_previous_version_serves(docker_clean, tmp_path):
    port = free_port()
    deploy_v1(tmp_path, docker_clean, port)
    engine = make_engine(tmp_path, docker_clean, port, "broken")
    try:
        rid = engine.start_rollout("ship", "test").id
        runner = Runner(engine)
        run_until(runner, lambda: engine.rollout(rid).state in (S.COMPLETED, S.ROLLED_BACK, S.PAUSED))
        r = engine.rollout(rid)
        assert r.state is S.ROLLED_BACK, r.reason
        assert f"rolled back to {APP}:rollback" in r.reason and "unhealthy" in r.reason
        assert http_get(f"http://127.0.0.1:{port}/version") == "v1"
    finally:
        engine.close()


def test_a_blue_green_phase_switches_nginx_to_green(docker_clean, tmp_path):
    blue, green = free_port(), free_port()
    with running_nginx(tmp_path / "nginx", blue) as n:
        switch = n.switch_command().replace('"', chr(92) + '"')
        extra = (
            f"    blue_green: {{ports: {{blue: [{blue}], green: [{green}]}}, "
            f'switch: {{command: "{switch}"}}, keep_old: 300ms}}\n'
        )
        (tmp_path / "first").mkdir()
        first = make_engine(tmp_path / "first", docker_clean, green, "v1", "blue_green", extra)
        try:  # v1 live on blue, as `opsconsole deploy web --image v1` leaves it
            assert deploy_service(first.config, first.workspace, "web", "v1", strategy="blue_green").code == 0
        finally:
            first.close()
        engine = make_engine(tmp_path, docker_clean, green, "v2", "blue_green", extra)
        try:
            rid = engine.start_rollout("ship", "test").id
            run_until(
                Runner(engine), lambda: engine.rollout(rid).state in (S.COMPLETED, S.ROLLED_BACK, S.PAUSED)
            )
            assert engine.rollout(rid).state is S.COMPLETED, engine.rollout(rid).reason
        finally:
            engine.close()
        deadline = time.monotonic() + 5
        while http_get(f"{n.url}/version") != "v2":
            assert time.monotonic() < deadline, "nginx does not serve green"
            time.sleep(0.05)
        assert [c.labels["io.opsconsole.colour"] for c in docker_clean.managed("web")] == ["green"]
