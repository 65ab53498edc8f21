"""The `%` of a stopped rollout whose phase deployed a Docker service (recreate, rolling, blue_green):
what its new version gets now, from the service's deploy records: "0% (was 100%)" once the previous
version serves again or when the deploy never moved traffic; the step's 100% while it may still serve
(in flight, a revert pending or failed, nothing to go back to). The console's first frame
(engine/firstlook.py, the SQLite file read directly) says the same as the engine (views.py)."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from opsconsole.engine import config_path, open_engine, read_first_look, save_first_look
from opsconsole.engine.firstlook import deploy_traffic
from opsconsole.engine.model import Actor, RolloutState
from opsconsole.engine.views import rollout_row, stopped_traffic, traffic_text

NOW = 1_900_000_000.0
KEY = "r1:0"


def deploy(phase: str = "done", outcome: str | None = "ok", **more: Any) -> dict[str, Any]:
    return {"rollout": KEY, "phase": phase, "outcome": outcome, "strategy": "recreate", **more}


def revert(phase: str = "done", outcome: str | None = "ok", **more: Any) -> dict[str, Any]:
    return {"revert_of": KEY, "phase": phase, "outcome": outcome, "strategy": "recreate", **more}


OTHER_OK = {"rollout": "r2:0", "phase": "done", "outcome": "ok", "strategy": "recreate"}
OTHER_FAILED = {"phase": "done", "outcome": "deploy_failed"}


@pytest.mark.parametrize(
    ("records", "now"),
    [
        ([], 0),  # never deployed (aborted before its deploy began)
        ([OTHER_OK], 0),
        ([deploy("started_new", None)], 100),  # stopped while it ran: at its next safe point
        ([deploy("bg_started", None, strategy="blue_green")], 0),  # before its switch
        ([deploy("bg_switched", None, strategy="blue_green")], 100),
        ([deploy(outcome="rolled_back")], 0),  # went back by itself (exit 4)
        ([deploy(outcome="failed")], 0),  # first deploy failed: nothing serves
        ([deploy(outcome="deploy_failed", strategy="blue_green", new="blue", serving="blue")], 100),
        ([deploy(outcome="deploy_failed", strategy="blue_green", new="green", serving="blue")], 0),
        ([deploy(outcome="rollback_failed", strategy="rolling")], 100),  # some replicas may be new
        ([deploy()], 100),  # revert pending (or nothing to go back to)
        ([OTHER_FAILED, deploy()], 100),  # a failed deploy since changed nothing
        ([revert("started_new", None), deploy()], 100),
        ([revert("bg_started", None, strategy="blue_green"), deploy(strategy="blue_green")], 100),
        ([revert("bg_switched", None, strategy="blue_green"), deploy(strategy="blue_green")], 0),
        ([revert(), deploy()], 0),
        ([revert(outcome="rolled_back"), deploy()], 100),  # the revert failed: the new one again
        ([revert(), revert(outcome="rolled_back"), deploy()], 0),  # a cut revert, then a whole one
        ([revert(outcome="deploy_failed"), revert(), deploy()], 100),  # the newest attempt counts
        ([OTHER_OK, deploy()], 0),  # replaced by a later deploy
    ],
)
def test_deploy_traffic(records: list[dict[str, Any]], now: int) -> None:
    assert deploy_traffic(records, KEY, 100) == now


def _config(tmp: Path) -> Path:
    (tmp / "plans").mkdir()
    (tmp / "flags.yaml").write_text(
        "flags:\n  emergency_shutdown: {type: boolean, default: false, risk: high, kind: kill-switch}\n"
    )
    for kind in ("recreate", "rolling", "blue_green"):
        (tmp / "plans" / f"{kind}.yaml").write_text(
            textwrap.dedent(
                f"""\
                name: {kind}
                phases:
                  - name: deploy
                    environment: production
                    strategy: {{kind: {kind}, service: web, image: v2}}
                """
            )
        )
    cfg = tmp / "opsconsole.yaml"
    cfg.write_text(
        textwrap.dedent(
            f"""\
            roles: {{default: operator}}
            environments:
              production: {{flags: {{kind: file, path: "${{WORKSPACE}}/flags/production.json"}}}}
            plans: ["{tmp}/plans/*.yaml"]
            flags: "{tmp}/flags.yaml"
            kill_switch: {{flags_on: [emergency_shutdown]}}
            services:
              web:
                image: registry.local/web
                ports: [18080]
                health: {{url: "http://127.0.0.1:{{port}}/health"}}
                blue_green:
                  ports: {{blue: [18080], green: [18081]}}
                  switch: {{command: "true"}}
            """
        )
    )
    return cfg


def test_the_first_frame_and_the_engine_agree_on_docker_rows(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    ws = tmp_path / "ws"
    engine = open_engine(str(cfg), ws, actor=Actor("root", "test"))
    engine.clock = lambda: NOW
    try:
        base = engine.start_rollout("recreate", "test")
        stopped = {
            # id: (plan, state, the web deploy records for it, newest first, what the row says)
            "reverted": ("recreate", RolloutState.ROLLED_BACK, [revert(), deploy()], "0% (was 100%)"),
            "refused": (
                "blue_green",
                RolloutState.ROLLED_BACK,
                [deploy(outcome="rolled_back", strategy="blue_green", new="green", serving="blue")],
                "0% (was 100%)",
            ),
            "never": ("rolling", RolloutState.ABORTED, [], "0% (was 100%)"),
            "cut": ("rolling", RolloutState.ROLLED_BACK, [revert("stopping_old", None), deploy()], "100%"),
            # The service's latest deploy (every plan here deploys `web`: a later one that went well
            # would have replaced it, as it did the others').
            "pending": ("recreate", RolloutState.ABORTED, [deploy()], "100%"),
        }
        records: list[dict[str, Any]] = []
        with engine.store.transaction() as tx:
            for i, (rid, (plan, state, mine, _)) in enumerate(stopped.items()):
                tx.insert_rollout(replace(base, id=rid, plan=plan, state=state, created_at=NOW - 100 + i))
                for j, d in enumerate(reversed(mine)):  # oldest first, each rollout after the last
                    key = f"{rid}:0"
                    d = {**d, **({"rollout": key} if "rollout" in d else {"revert_of": key})}
                    records.append(
                        {**d, "id": f"{rid}-{j}", "service": "web", "started_at": NOW - 100 + i + j / 10}
                    )
            for d in records:
                tx.save_deploy(d, NOW)
        rollouts = [r for r in engine.rollouts() if r.id in stopped]
        traffic = stopped_traffic(engine, rollouts)
        rows = {r.id: rollout_row(engine, r, traffic) for r in rollouts}
        save_first_look(engine)
    finally:
        engine.close()
    look = read_first_look(config_path(str(cfg), ws), ws, clock=lambda: NOW)
    assert look is not None
    first = {row["id"]: row for row in look.rows if row["id"] in stopped}
    assert {rid: traffic_text(row) for rid, row in rows.items()} == {
        rid: text for rid, (_, _, _, text) in stopped.items()
    }
    assert {rid: (row["percent"], row["traffic"]) for rid, row in first.items()} == {
        rid: (row["percent"], row["traffic"]) for rid, row in rows.items()
    }


def test_an_older_cache_is_not_read(tmp_path: Path) -> None:
    """A cache written before it said which phases deploy a Docker service cannot word their rows:
    the first frame waits for the engine rather than claim the step's percentage."""
    import json

    cfg = _config(tmp_path)
    ws = tmp_path / "ws"
    engine = open_engine(str(cfg), ws, actor=Actor("root", "test"))
    try:
        engine.start_rollout("recreate", "test")
        save_first_look(engine)
    finally:
        engine.close()
    assert read_first_look(config_path(str(cfg), ws), ws) is not None
    look = ws / "console-look.json"
    body = json.loads(look.read_text())
    body["version"] = 1
    for phases in body["plans"].values():
        for phase in phases:
            del phase["service"]
    look.write_text(json.dumps(body))
    assert read_first_look(config_path(str(cfg), ws), ws) is None
