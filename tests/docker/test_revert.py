"""A Docker phase whose rollout is rolled back or aborted once its deploy went well: the runner deploys
the previous version again (the revert: the service's `:rollback` image, the same strategy), recorded
as a deploy ("rollback of ROLLOUT"), finished by the next runner when one dies in the middle, and done
once; the rollout's reason says what the service runs and its row says "0% (was 100%)". A deploy
that never moved traffic, or went back by itself, is left alone. Real dockerd, nginx, store, runners
(in this process and as `opsconsole engine`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from opsconsole.engine import (
    Actor,
    Engine,
    Runner,
    config_path,
    deploy_service,
    open_engine,
    read_first_look,
    save_first_look,
)
from opsconsole.engine.model import RolloutState
from opsconsole.engine.views import rollout_row, traffic_text

from .canaries import REPO
from .conftest import APP, DockerEngine, free_port, http_get
from .nginx import running_nginx
from .test_plan import run_until

S = RolloutState
pytestmark = pytest.mark.timeout(150)

RESTORED = "previous version restored"
APPROVAL = "approval: {required: true, role: approver}"
"""Keeps the rollout in its phase once the deploy is done, for a person (or a guard) to act."""


def write_config(
    tmp: Path,
    docker: DockerEngine,
    port: int,
    image: str,
    kind: str = "recreate",
    phase: str = APPROVAL,
    service: str = "",
    more_ports: tuple[int, ...] = (),
) -> Path:
    """`more_ports`: replicas beyond the first, one port each."""
    (tmp / "plan.yaml").write_text(
        "name: ship\n"
        "phases:\n"
        "  - name: deploy\n"
        "    environment: production\n"
        f"    strategy: {{kind: {kind}, service: web, image: {image}}}\n"
        + textwrap.indent(textwrap.dedent(phase), "    ")
    )
    cfg = tmp / "opsconsole.yaml"
    cfg.write_text(
        textwrap.dedent(
            f"""\
            interval: 1s
            roles: {{default: operator, users: {{alice: approver}}}}
            environments:
              production: {{flags: {{kind: file, path: "${{WORKSPACE}}/flags/production.json"}}}}
            plans: ["{tmp}/plan.yaml"]
            flags: "{REPO}/config/flags.yaml"
            kill_switch: {{flags_on: [emergency_shutdown]}}
            services:
              web:
                image: {APP}
                replicas: {1 + len(more_ports)}
                ports: {[port, *more_ports]}
                health: {{url: "http://127.0.0.1:{{port}}/health", interval: 200ms, timeout: 500ms, failure_limit: 3}}
                docker: {{host: "{docker.host}"}}
                stop_timeout: 2s
            """
        )
        + service
    )
    return cfg


def make_engine(tmp: Path, *args: Any, **kw: Any) -> Engine:
    return open_engine(str(write_config(tmp, *args, **kw)), tmp / "ws", actor=Actor("root", "test"))


def first(
    tmp: Path,
    docker: DockerEngine,
    port: int,
    strategy: str = "recreate",
    service: str = "",
    more_ports: tuple[int, ...] = (),
) -> None:
    """v1 running before the rollout, as `opsconsole deploy web --image v1` leaves it."""
    (tmp / "first").mkdir()
    engine = make_engine(tmp / "first", docker, port, "v1", service=service, more_ports=more_ports)
    try:
        report = deploy_service(engine.config, engine.workspace, "web", "v1", strategy=strategy)
    finally:
        engine.close()
    assert report.code == 0, report.message


def reverts(engine: Engine, rid: str) -> list[dict[str, Any]]:
    with engine.store.read() as tx:
        return [d for d in tx.list_deploys("web") if d.get("revert_of") == f"{rid}:0"]


def row_text(engine: Engine, rid: str) -> str:
    return traffic_text(rollout_row(engine, engine.rollout(rid)))


def to_approval(engine: Engine, runner: Runner, rid: str) -> None:
    run_until(runner, lambda: engine.rollout(rid).state not in (S.PENDING, S.PROGRESSING), 60)
    assert engine.rollout(rid).state is S.AWAITING_APPROVAL, engine.rollout(rid).reason


def journal(tmp: Path) -> dict[str, Any]:
    path = tmp / "ws" / "deploys" / "web.json"
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):  # not yet, or caught between two writes
        return {}


def running(docker: DockerEngine) -> list[Any]:
    return [c for c in docker.managed("web") if c.status == "running"]


@pytest.mark.parametrize("how", ["rollback", "abort", "kill-switch"])
def test_a_recreate_phase_stopped_after_its_deploy_has_the_previous_version_serve_again(
    docker_clean: DockerEngine, tmp_path: Path, how: str
) -> None:
    port = free_port()
    first(tmp_path, docker_clean, port)
    engine = make_engine(tmp_path, docker_clean, port, "v2")
    try:
        rid = engine.start_rollout("ship", "test").id
        runner = Runner(engine)
        to_approval(engine, runner, rid)
        assert http_get(f"http://127.0.0.1:{port}/version") == "v2"
        if how == "kill-switch":
            engine.kill("incident")
        else:
            engine.command(rid, how, "v2 looks wrong")
        # Nothing was reverted yet: the new version still takes all the traffic, and the row says so.
        assert engine.rollout(rid).state in (S.ROLLED_BACK, S.ABORTED)
        assert row_text(engine, rid) == "100%"
        run_until(runner, lambda: RESTORED in engine.rollout(rid).reason, 60)
        r = engine.rollout(rid)
        [record] = reverts(engine, rid)
        text = row_text(engine, rid)
    finally:
        engine.close()
    assert http_get(f"http://127.0.0.1:{port}/version") == "v1"
    assert r.reason.endswith(f"; {RESTORED}: web runs {APP}:rollback"), r.reason
    assert text == "0% (was 100%)"
    assert record["trigger"] == f"rollback of {rid}", record
    assert (record["phase"], record["outcome"], record["outcome_code"]) == ("done", "ok", 0), record
    assert record["strategy"] == "recreate" and record["image"] == f"{APP}:rollback", record
    images = docker_clean.images()
    assert images[f"{APP}:rollback"] == images[f"{APP}:v1"]  # still names the version that serves
    [c] = running(docker_clean)
    assert c.image.id == images[f"{APP}:v1"]


def test_a_rolling_phase_rolled_back_puts_every_replica_back_on_the_previous_version(
    docker_clean: DockerEngine, tmp_path: Path
) -> None:
    ports = (free_port(), free_port())
    first(tmp_path, docker_clean, ports[0], "rolling", more_ports=ports[1:])
    engine = make_engine(tmp_path, docker_clean, ports[0], "v2", "rolling", more_ports=ports[1:])
    try:
        rid = engine.start_rollout("ship", "test").id
        runner = Runner(engine)
        to_approval(engine, runner, rid)
        assert [http_get(f"http://127.0.0.1:{p}/version") for p in ports] == ["v2", "v2"]
        engine.command(rid, "rollback", "v2 looks wrong")
        run_until(runner, lambda: RESTORED in engine.rollout(rid).reason, 60)
        [record] = reverts(engine, rid)
        text = row_text(engine, rid)
    finally:
        engine.close()
    assert [http_get(f"http://127.0.0.1:{p}/version") for p in ports] == ["v1", "v1"]
    assert (record["strategy"], record["outcome"]) == ("rolling", "ok"), record
    names = [s["name"] for s in record["steps"]]
    assert names == ["image", "replace replica 0", "replace replica 1"], names  # one at a time
    assert text == "0% (was 100%)"
    assert len(running(docker_clean)) == 2


def test_a_blue_green_phase_whose_guard_breaches_after_keep_old_goes_back_to_the_old_colour(
    docker_clean: DockerEngine, tmp_path: Path
) -> None:
    blue, green = free_port(), free_port()
    with running_nginx(tmp_path / "nginx", blue) as n:
        switch = n.switch_command().replace('"', chr(92) + '"')
        service = (
            f"    blue_green: {{ports: {{blue: [{blue}], green: [{green}]}}, "
            f'switch: {{command: "{switch}"}}, keep_old: 300ms}}\n'
        )
        phase = f"""\
            guards:
              - {{kind: health, name: live, url: "{n.url}/health", timeout: 1s, failure_limit: 2}}
            {APPROVAL}
            """
        first(tmp_path, docker_clean, blue, "blue_green", service)
        engine = make_engine(tmp_path, docker_clean, blue, "v2", "blue_green", phase, service)
        try:
            rid = engine.start_rollout("ship", "test").id
            broken: list[str] = []

            def break_green_then_restored() -> bool:
                """Once the deploy is done (keep_old over) and the rollout waits: green goes bad."""
                if not broken and engine.rollout(rid).state is S.AWAITING_APPROVAL:
                    assert http_get(f"{n.url}/version") == "v2"
                    [green_c] = running(docker_clean)
                    assert green_c.labels["io.opsconsole.colour"] == "green"
                    code, _ = green_c.exec_run(["rm", "/srv/health"])
                    assert code == 0
                    broken.append(green_c.id)
                return RESTORED in engine.rollout(rid).reason

            # One loop for the whole test: the runner's HTTP client belongs to it.
            run_until(Runner(engine), break_green_then_restored, 90)
            assert broken
            r = engine.rollout(rid)
            [record] = reverts(engine, rid)
            text = row_text(engine, rid)
        finally:
            engine.close()
        assert r.state is S.ROLLED_BACK
        assert "guard live breached" in r.reason, r.reason
        assert r.reason.endswith(f"; {RESTORED}: web runs {APP}:rollback on blue"), r.reason
        assert http_get(f"{n.url}/version") == "v1"
        assert http_get(f"{n.url}/health") == "ok"
    assert text == "0% (was 100%)"
    assert [c.labels["io.opsconsole.colour"] for c in docker_clean.managed("web")] == ["blue"]
    names = [s["name"] for s in record["steps"]]
    assert names.index("start-blue") < names.index("switch-blue") < names.index("remove-green"), names
    assert (record["outcome"], record["trigger"]) == ("ok", f"rollback of {rid}"), record


def test_a_runner_killed_during_the_revert_is_finished_by_the_next_exactly_once(
    docker_clean: DockerEngine, tmp_path: Path
) -> None:
    port = free_port()
    slow_smoke = '    smoke: {command: "sleep 2", timeout: 10s}\n'  # a window to kill the runner in
    first(tmp_path, docker_clean, port)
    cfg = write_config(tmp_path, docker_clean, port, "v2", service=slow_smoke)
    ws = tmp_path / "ws"
    engine = open_engine(str(cfg), ws, actor=Actor("root", "test"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsconsole", "engine", "--config", str(cfg), "--workspace", str(ws)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO), "USER": "root"},
        start_new_session=True,
    )
    try:
        rid = engine.start_rollout("ship", "test").id
        key = f"{rid}:0"
        deadline = time.monotonic() + 60
        while engine.rollout(rid).state in (S.PENDING, S.PROGRESSING):
            assert proc.poll() is None and time.monotonic() < deadline, "the deploy did not end"
            time.sleep(0.1)
        assert engine.rollout(rid).state is S.AWAITING_APPROVAL, engine.rollout(rid).reason
        engine.command(rid, "rollback", "v2 looks wrong")  # the runner (another process) sees it
        deadline = time.monotonic() + 30
        while not (journal(tmp_path).get("revert_of") == key and journal(tmp_path)["phase"] == "started_new"):
            assert proc.poll() is None and time.monotonic() < deadline, "no revert started"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert journal(tmp_path)["phase"] == "started_new"  # cut short in the middle
        assert RESTORED not in engine.rollout(rid).reason
        assert row_text(engine, rid) == "100%"  # the revert is not done: not claimed
        runner = Runner(engine)
        run_until(runner, lambda: RESTORED in engine.rollout(rid).reason, 60)
        done = reverts(engine, rid)
        ok = [d for d in done if d["outcome"] == "ok"]
        [c] = running(docker_clean)
        ticks = runner.stats.ticks
        run_until(runner, lambda: runner.stats.ticks >= ticks + 5)  # more sweeps than it needs
        r = engine.rollout(rid)
        again = reverts(engine, rid)
        text = row_text(engine, rid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        engine.close()
    assert len(ok) == 1, done
    assert len(done) == 2 and all(d["phase"] == "done" for d in done), done  # the cut one, finished
    assert again == done, "reverted again"
    assert [x.id for x in running(docker_clean)] == [c.id]
    assert http_get(f"http://127.0.0.1:{port}/version") == "v1"
    assert r.reason.count(RESTORED) == 1, r.reason
    assert text == "0% (was 100%)"


def test_a_blue_green_deploy_refused_before_its_switch_is_shown_at_0_and_not_reverted(
    docker_clean: DockerEngine, tmp_path: Path
) -> None:
    blue, green = free_port(), free_port()
    with running_nginx(tmp_path / "nginx", blue) as n:
        switch = n.switch_command().replace('"', chr(92) + '"')
        service = (
            f"    blue_green: {{ports: {{blue: [{blue}], green: [{green}]}}, "
            f'switch: {{command: "{switch}"}}, keep_old: 300ms}}\n'
        )
        phase = '    gates:\n      - {kind: smoke, name: refuse, command: ["false"]}\n'
        first(tmp_path, docker_clean, blue, "blue_green", service)
        [blue_c] = running(docker_clean)
        engine = make_engine(tmp_path, docker_clean, blue, "v2", "blue_green", phase, service)
        try:
            rid = engine.start_rollout("ship", "test").id
            runner = Runner(engine)
            run_until(runner, lambda: engine.rollout(rid).state not in (S.PENDING, S.PROGRESSING), 60)
            r = engine.rollout(rid)
            assert r.state is S.ROLLED_BACK, r.reason
            assert "gates failed on green before the switch" in r.reason, r.reason
            ticks = runner.stats.ticks
            run_until(runner, lambda: runner.stats.ticks >= ticks + 5)  # sweeps: nothing to revert
            after = engine.rollout(rid)
            text = row_text(engine, rid)
            done = reverts(engine, rid)
        finally:
            engine.close()
        assert http_get(f"{n.url}/version") == "v1"
    cfg = config_path(str(tmp_path / "opsconsole.yaml"), tmp_path / "ws")
    console = open_engine(str(cfg), tmp_path / "ws", actor=Actor("root", "test"))
    try:  # a console opened now leaves the cache the next one's first frame reads
        save_first_look(console)
    finally:
        console.close()
    look = read_first_look(cfg, tmp_path / "ws")
    assert text == "0% (was 100%)"
    assert look is not None
    [row] = [x for x in look.rows if x["id"] == rid]
    assert traffic_text(row) == "0% (was 100%)"  # the first frame says the same
    assert done == []
    assert after.reason == r.reason  # nothing to add: the deploy's own message says it all
    assert [x.id for x in running(docker_clean)] == [blue_c.id]


def test_nothing_to_go_back_to_on_a_first_deploy_is_said_and_nothing_changes(
    docker_clean: DockerEngine, tmp_path: Path
) -> None:
    port = free_port()
    engine = make_engine(tmp_path, docker_clean, port, "v2")
    try:
        rid = engine.start_rollout("ship", "test").id
        runner = Runner(engine)
        to_approval(engine, runner, rid)
        [before] = running(docker_clean)
        engine.command(rid, "rollback", "v2 looks wrong")
        run_until(runner, lambda: "no previous version" in engine.rollout(rid).reason, 30)
        r = engine.rollout(rid)
        text = row_text(engine, rid)
        done = reverts(engine, rid)
        audit = [e for e in engine.audit_events(f"rollout:{rid}") if e.action == "rollout.docker_revert"]
    finally:
        engine.close()
    assert r.reason.endswith(
        f"; web has no previous version to restore (its first deploy): it still runs {APP}:v2"
    ), r.reason
    assert text == "100%"  # the new version still takes all the traffic
    assert done == []
    assert len(audit) == 1 and audit[0].data["outcome"] == "no previous version", audit
    assert [c.id for c in running(docker_clean)] == [before.id]
    assert http_get(f"http://127.0.0.1:{port}/version") == "v2"


def test_a_rollback_while_blue_green_keeps_the_old_colour_switches_back_at_once(
    docker_clean: DockerEngine, tmp_path: Path
) -> None:
    """Rolled back by a person while the deploy still watches green (keep_old 30 s): the deploy stops
    there, switches back to blue and removes green; nothing is deployed again after it."""
    blue, green = free_port(), free_port()
    with running_nginx(tmp_path / "nginx", blue) as n:
        switch = n.switch_command().replace('"', chr(92) + '"')
        service = (
            f"    blue_green: {{ports: {{blue: [{blue}], green: [{green}]}}, "
            f'switch: {{command: "{switch}"}}, keep_old: 30s}}\n'
        )
        first(tmp_path, docker_clean, blue, "blue_green", service.replace("keep_old: 30s", "keep_old: 300ms"))
        engine = make_engine(tmp_path, docker_clean, blue, "v2", "blue_green", APPROVAL, service)
        try:
            rid = engine.start_rollout("ship", "test").id
            asked: list[float] = []

            def roll_back_once_green_serves() -> bool:
                if not asked and http_get(f"{n.url}/version") == "v2":
                    engine.command(rid, "rollback", "not this one")
                    asked.append(time.monotonic())
                return RESTORED in engine.rollout(rid).reason

            run_until(Runner(engine), roll_back_once_green_serves, 60)
            took = time.monotonic() - asked[0]
            r = engine.rollout(rid)
            done = reverts(engine, rid)
            text = row_text(engine, rid)
        finally:
            engine.close()
        assert http_get(f"{n.url}/version") == "v1"
    assert took < 15, took  # not after keep_old
    assert r.state is S.ROLLED_BACK
    assert f"; {RESTORED}: web: stopped while green was watched: rollout {rid} was rolled back" in r.reason
    assert r.reason.endswith("traffic switched back to blue"), r.reason
    assert done == []
    assert [c.labels["io.opsconsole.colour"] for c in docker_clean.managed("web")] == ["blue"]
    assert text == "0% (was 100%)"
