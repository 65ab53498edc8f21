"""A Docker canary whose rollout leaves its phase while no runner runs (the command line aborts, rolls
back or promotes it, or pulls the kill switch) is settled by the next runner: the colour no longer
needed is removed within seconds of its start and the deploy's journal says done. A canary whose
rollout is still in its phase is never touched. Real dockerd, store, runners and command line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from opsconsole.engine import Actor, open_engine
from opsconsole.engine.model import RolloutState

from .canaries import cli, colours, first_on_blue, make_engine, run_runner
from .conftest import APP, DockerEngine, free_port

S = RolloutState
pytestmark = pytest.mark.timeout(150)

OLD = {"blue": f"{APP}:v1"}
NEW = {"green": f"{APP}:v2"}
BOTH = {**OLD, **NEW}
SETTLE_WITHIN = 10.0
"""Seconds from a runner's start to the colour removed (it looks at once, then every 2 s)."""


def journal(tmp: Path) -> dict[str, Any]:
    path = tmp / "ws" / "deploys" / "web.json"
    return json.loads(path.read_text()) if path.exists() else {}


def canary_left_running(tmp: Path, docker: DockerEngine) -> tuple[Path, str]:
    """v1 on blue, then a rollout whose canary phase (no switch: `blue_green:` has only ports) runs
    v2 on green beside it, its first step waiting an hour; then its runner stops. Returns the config
    and the rollout's id."""
    blue, green = free_port(), free_port()
    first_on_blue(tmp, docker, blue, green)
    engine = make_engine(tmp, docker, blue, green, "v2", green, role="", colours="no-switch", step_wait="1h")
    try:
        rid = engine.start_rollout("ship", "test").id
        run_runner(engine, lambda: journal(tmp).get("phase") == "canary_running", 60)
        r = engine.rollout(rid)
        assert (r.state, r.phase_index) == (S.PROGRESSING, 0), r.reason
    finally:
        engine.close()
    assert colours(docker) == BOTH  # the stopped runner left the canary as it was: still in its phase
    assert journal(tmp)["rollout"] == f"{rid}:0"
    return tmp / "opsconsole.yaml", rid


def restart(cfg: Path, tmp: Path, docker: DockerEngine, left: dict[str, str]) -> float:
    """A new runner on the workspace, until only `left` runs; returns the seconds it took."""
    engine = open_engine(str(cfg), tmp / "ws", actor=Actor("root", "test"))
    try:
        t = time.monotonic()
        run_runner(engine, lambda: colours(docker) == left, 30)
        return time.monotonic() - t
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("how", "state", "left", "outcome"),
    [
        (("rollout", "abort", "{rid}", "--reason", "not now"), S.ABORTED, OLD, "rolled_back"),
        (("rollout", "rollback", "{rid}", "--reason", "bad"), None, OLD, "rolled_back"),
        (("kill", "--reason", "incident"), S.ABORTED, OLD, "rolled_back"),
        (("rollout", "promote", "{rid}", "--reason", "looks good"), S.COMPLETED, NEW, "ok"),
    ],
    ids=["abort", "rollback", "kill-switch", "promote"],
)
def test_a_canary_whose_rollout_moved_while_no_runner_ran_is_settled_by_the_next(
    docker_clean: DockerEngine,
    tmp_path: Path,
    how: tuple[str, ...],
    state: S | None,
    left: dict[str, str],
    outcome: str,
) -> None:
    cfg, rid = canary_left_running(tmp_path, docker_clean)
    ws = tmp_path / "ws"
    args = [a.format(rid=rid) for a in how]
    # promote: 0% -> 25% -> 100% -> the phase (the plan's only one) is over: completed
    for _ in range(3 if "promote" in args else 1):
        p = cli(cfg, ws, *args)
        assert p.returncode == 0, p.stdout + p.stderr
    assert colours(docker_clean) == BOTH  # the command line never touches Docker
    took = restart(cfg, tmp_path, docker_clean, left)
    assert took < SETTLE_WITHIN, took
    done = journal(tmp_path)
    assert (done["phase"], done["outcome"], done["rollout"]) == ("done", outcome, f"{rid}:0"), done
    engine = open_engine(str(cfg), ws, actor=Actor("root", "test"))
    try:
        r = engine.rollout(rid)
        assert r.state in ((state,) if state else (S.ROLLING_BACK, S.ROLLED_BACK)), r.state
        with engine.store.read() as tx:
            [record] = [d for d in tx.list_deploys("web") if d.get("rollout") == f"{rid}:0"]
        assert (record["phase"], record["outcome"]) == ("done", outcome), record
    finally:
        engine.close()


def test_the_kill_switch_pulled_beside_a_running_runner_has_the_new_colour_removed(
    docker_clean: DockerEngine, tmp_path: Path
) -> None:
    """The kill switch (in the runner's own process, as the console's key pulls it) aborts the
    rollout; the runner then removes the canary's colour, the live one serving on."""
    blue, green = free_port(), free_port()
    first_on_blue(tmp_path, docker_clean, blue, green)
    engine = make_engine(
        tmp_path, docker_clean, blue, green, "v2", green, role="", colours="canary", step_wait="1h"
    )
    try:
        rid = engine.start_rollout("ship", "test").id
        pulled: list[float] = []

        def kill_once_running() -> bool:
            if not pulled and journal(tmp_path).get("phase") == "canary_running":
                assert colours(docker_clean) == BOTH
                t = time.monotonic()
                engine.kill("incident")
                pulled.append(time.monotonic())
                assert pulled[0] - t < 5.0
            return bool(pulled) and colours(docker_clean) == OLD

        run_runner(engine, kill_once_running, 60)
        assert time.monotonic() - pulled[0] < SETTLE_WITHIN
        assert engine.rollout(rid).state is S.ABORTED
        assert (journal(tmp_path)["phase"], journal(tmp_path)["outcome"]) == ("done", "rolled_back")
    finally:
        engine.close()
