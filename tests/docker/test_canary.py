"""A canary phase on Docker: the new version starts on the other colour's ports beside the live one,
the canary flag's percentage moves step by step as for any canary, and when the rollout completes the
old colour goes (rolled back: the new one goes, the flag back at 0). Real dockerd, store and runner."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from opsconsole.engine import Engine, Runner
from opsconsole.engine.model import RolloutState

from .canaries import cli, colours, first_on_blue, make_engine, percent, write_config
from .conftest import APP, DockerEngine, free_port, http_get

S = RolloutState
pytestmark = pytest.mark.timeout(150)


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


@pytest.mark.parametrize("given", ["switch", "no-switch", "canary"])
def test_the_canary_runs_beside_the_old_version_while_the_flag_moves_then_the_old_goes(
    docker_clean: DockerEngine, tmp_path: Path, given: str
) -> None:
    """Whether the service gives its colours' ports in `blue_green:` with a switch, without one (a
    canary never switches), or in `canary:`, the canary runs the same way."""
    blue, green = free_port(), free_port()
    first_on_blue(tmp_path, docker_clean, blue, green)
    engine = make_engine(tmp_path, docker_clean, blue, green, "v2", green, colours=given)
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
    engine = make_engine(tmp_path, docker_clean, blue, green, "v2", green, want="v9", role="guards")  # fails
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


def test_blue_green_refuses_a_service_whose_colours_have_no_switch(
    docker_clean: DockerEngine, tmp_path: Path
) -> None:
    """Ports without a switch serve canaries only: `config check` refuses a blue_green phase of such a
    service at the phase's file:line, and `deploy --strategy blue_green` ends with exit 3 before
    anything is touched (the live colour's container is the same one, still serving)."""
    blue, green = free_port(), free_port()
    first_on_blue(tmp_path, docker_clean, blue, green)
    live = {c.id for c in docker_clean.managed("web")}
    ws = tmp_path / "ws"
    cfg = write_config(
        tmp_path, docker_clean, blue, green, "v2", green, colours="no-switch", kind="blue_green"
    )
    p = cli(cfg, ws, "config", "check")
    out = p.stdout + p.stderr
    assert p.returncode == 2, out
    assert f"{tmp_path}/plan.yaml:5" in out and "phases[0].strategy.service" in out, out
    assert "service 'web' has no switch" in out and f"{tmp_path}/opsconsole.yaml:" in out, out
    cfg = write_config(tmp_path, docker_clean, blue, green, "v2", green, colours="no-switch")  # a canary plan
    assert cli(cfg, ws, "config", "check").returncode == 0
    p = cli(cfg, ws, "deploy", "web", "--image", "v2", "--strategy", "blue_green")
    out = p.stdout + p.stderr
    assert p.returncode == 3, out
    assert "blue_green needs a switch" in out and "nothing was changed" in out, out
    assert {c.id for c in docker_clean.managed("web")} == live
    assert colours(docker_clean) == {"blue": f"{APP}:v1"}
    assert http_get(f"http://127.0.0.1:{blue}/version") == "v1"
