"""The why line of a rollout whose phase deploys a Docker service: while the deploy runs (the gates
are checked once it is done) it says what the deploy has done so far, from its record in the store.
Seen by hand: during a blue-green deploy's keep_old the list said "started phase production" for
the whole 20 s, with traffic already on green."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

from opsconsole.engine import Actor, open_engine
from opsconsole.engine.views import why
from tests.docker.dockerd import workspace_config


def _engine(tmp: Path):  # type: ignore[no-untyped-def]
    (tmp / "plan.yaml").write_text(
        textwrap.dedent(
            """\
            name: ship
            phases:
              - name: production
                environment: production
                strategy: {kind: blue_green, service: web, image: v2}
                guards:
                  - {kind: health, url: "http://127.0.0.1:9/health"}
            """
        )
    )
    docker = SimpleNamespace(host="unix:///nonexistent/docker.sock")
    extra = 'blue_green: {ports: {blue: [18081], green: [18091]}, switch: {command: "true"}}'
    cfg = tmp / "opsconsole.yaml"
    flags = str(Path(__file__).resolve().parents[2] / "config" / "flags.yaml")
    cfg.write_text(workspace_config(tmp, docker, 18081, flags, extra))  # type: ignore[arg-type]
    return open_engine(str(cfg), tmp / "ws", actor=Actor("root", "test"))


def _record(engine, rid: str, phase: str, steps: list[dict[str, object]], **more: object) -> None:  # type: ignore[no-untyped-def]
    with engine.store.transaction() as tx:
        tx.save_deploy(
            {
                "id": "d1",
                "service": "web",
                "phase": phase,
                "started_at": time.time(),
                "rollout": f"{rid}:0",
                "image": "opsc-test/app:v2",
                "strategy": "blue_green",
                "steps": steps,
                **more,
            },
            time.time(),
        )


def test_the_why_line_follows_the_phase_deploy_until_it_is_done(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    try:
        r = engine.start_rollout("ship", "test")
        from opsconsole.engine.rollout import Evaluate, decide

        plan = engine.config.plans["ship"]
        d = decide(plan, r, Evaluate(), time.time())
        engine.commit(plan, r, d, time.time())
        r = engine.rollout(r.id)
        assert str(r.state) == "progressing"
        assert why(engine, r) == "deploying web: starting"
        switched = {"name": "switch-green", "ok": True, "detail": "traffic to green", "seconds": 0.02}
        _record(engine, r.id, "bg_started", [switched | {"name": "gates-green", "detail": "they pass"}])
        assert why(engine, r) == "deploying v2 to web (blue_green): gates-green ok: they pass"
        _record(engine, r.id, "bg_switched", [switched], live="blue", new="green", switched_at=3600.0)
        assert why(engine, r) == (
            "deploying v2 to web (blue_green): traffic on green since 01:00:00 UTC, watched, blue kept meanwhile"
        )
        _record(engine, r.id, "done", [switched])
        assert why(engine, r) == r.reason  # done: the gates (none judged yet) speak from now on
    finally:
        engine.close()
