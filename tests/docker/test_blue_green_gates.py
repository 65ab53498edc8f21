"""blue_green phases: the phase's health gates checked on the new colour BEFORE the switch (a gate
that fails there leaves traffic where it was and never touches the switch), and the `flag` switch
(the application reads which colour is live from a flag the console sets). Real dockerd, nginx,
store and runner."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from opsconsole.engine import Engine, Runner, deploy_service
from opsconsole.engine.deploy.aimed import on_port
from opsconsole.engine.model import RolloutState

from .conftest import DockerEngine, free_port, http_get
from .nginx import running_nginx
from .test_plan import make_engine, run_until

S = RolloutState
pytestmark = pytest.mark.timeout(150)


def deploys_of(engine: Engine, rid: str) -> list[dict[str, Any]]:
    with engine.store.read() as tx:
        return [d for d in tx.list_deploys("web") if str(d.get("rollout", "")).startswith(f"{rid}:")]


def test_on_port_moves_a_gate_url_to_the_colours_address() -> None:
    assert on_port("http://lb.example:80/version?x=1", "http://127.0.0.1:{port}/health", 9001) == (
        "http://127.0.0.1:9001/version?x=1"
    )
    assert on_port("https://lb/health", None, 8443) == "https://127.0.0.1:8443/health"


def _bg_rollout(docker: DockerEngine, tmp: Path, image: str, want: str) -> tuple[str, str, list[Any], int]:
    """v1 live on blue behind nginx, then a rollout deploying `image` whose health gate (on nginx's
    address) wants `want` in /version. Returns (state, reason, the phase deploy's steps, nginx url)."""
    blue, green = free_port(), free_port()
    with running_nginx(tmp / "nginx", blue) as n:
        switch = n.switch_command().replace('"', chr(92) + '"')
        extra = (
            f"    blue_green: {{ports: {{blue: [{blue}], green: [{green}]}}, "
            f'switch: {{command: "{switch}"}}, keep_old: 300ms}}\n'
        )
        gate = f'{{kind: health, url: "{n.url}/version", body_contains: "{want}", timeout: 1s}}'
        (tmp / "first").mkdir()
        first = make_engine(tmp / "first", docker, green, "v1", "blue_green", extra)
        try:
            assert deploy_service(first.config, first.workspace, "web", "v1", strategy="blue_green").code == 0
        finally:
            first.close()
        engine = make_engine(tmp, docker, green, image, "blue_green", extra, gate=gate)
        try:
            rid = engine.start_rollout("ship", "test").id
            run_until(
                Runner(engine), lambda: engine.rollout(rid).state in (S.COMPLETED, S.ROLLED_BACK, S.PAUSED)
            )
            r = engine.rollout(rid)
            [record] = deploys_of(engine, rid)
        finally:
            engine.close()
        deadline = time.monotonic() + 5
        served = "v2" if r.state is S.COMPLETED else "v1"
        while http_get(f"{n.url}/version") != served:
            assert time.monotonic() < deadline, f"nginx does not serve {served}"
            time.sleep(0.05)
        return str(r.state), r.reason, record["steps"], green


def test_the_phase_gate_passes_on_green_before_the_switch_then_on_the_switched_traffic(
    docker_clean: DockerEngine, tmp_path: Path
) -> None:
    # nginx serves v1 until the switch: the gate wanting v2 can only pass before it on green itself
    state, reason, steps, _ = _bg_rollout(docker_clean, tmp_path, "v2", "v2")
    assert state == S.COMPLETED, reason
    names = [s["name"] for s in steps]
    assert names.index("gates-green") < names.index("switch-green"), names
    [gates] = [s for s in steps if s["name"] == "gates-green"]
    assert gates["ok"] and "pass on green" in gates["detail"]


def test_a_gate_failing_on_green_keeps_traffic_on_blue_and_never_switches(
    docker_clean: DockerEngine, tmp_path: Path
) -> None:
    state, reason, steps, _ = _bg_rollout(docker_clean, tmp_path, "v2", "v9")
    assert state == S.ROLLED_BACK, reason
    assert "gates failed on green before the switch" in reason and "body lacks 'v9'" in reason, reason
    names = [s["name"] for s in steps]
    assert "gates-green" in names and not any(n.startswith("switch") for n in names), names
    assert [c.labels["io.opsconsole.colour"] for c in docker_clean.managed("web")] == ["blue"]


FLAGS = """\
flags:
  emergency_shutdown: {type: boolean, default: false, risk: high, kind: kill-switch}
  green_live: {type: boolean, default: false, risk: low, kind: operational, description: green takes traffic}
"""


def test_a_flag_switch_sets_the_flag_the_application_reads(
    docker_clean: DockerEngine, tmp_path: Path
) -> None:
    blue, green = free_port(), free_port()
    (tmp_path / "flags.yaml").write_text(FLAGS)
    extra = (
        f"    blue_green: {{ports: {{blue: [{blue}], green: [{green}]}}, "
        "switch: {flag: green_live, environment: production}, keep_old: 300ms}\n"
    )
    engine = make_engine(
        tmp_path, docker_clean, green, "v1", "blue_green", extra, flags=str(tmp_path / "flags.yaml")
    )
    flag_file = tmp_path / "ws" / "flags" / "production.json"
    try:
        first = deploy_service(
            engine.config, engine.workspace, "web", "v1", strategy="blue_green", engine=engine
        )
        assert first.code == 0, first.message
        assert json.loads(flag_file.read_text())["flags"]["green_live"]["enabled"] is False  # v1 on blue
        assert http_get(f"http://127.0.0.1:{blue}/version") == "v1"
        second = deploy_service(
            engine.config, engine.workspace, "web", "v2", strategy="blue_green", engine=engine
        )
        assert second.code == 0, second.message
        assert (
            json.loads(flag_file.read_text())["flags"]["green_live"]["enabled"] is True
        )  # the application moves to green
        assert http_get(f"http://127.0.0.1:{green}/version") == "v2"
        [switch] = [s for s in second.steps if s.name == "switch-green"]
        assert "flag production/green_live on" in switch.detail
        changes = [
            e for e in engine.audit_events(target="flag:production/green_live") if e.action == "flag.set"
        ]
        assert [e.data["new"] for e in changes][-1] is True
    finally:
        engine.close()


def test_a_flag_switch_without_an_engine_changes_nothing(docker_clean: DockerEngine, tmp_path: Path) -> None:
    blue, green = free_port(), free_port()
    (tmp_path / "flags.yaml").write_text(FLAGS)
    extra = (
        f"    blue_green: {{ports: {{blue: [{blue}], green: [{green}]}}, "
        "switch: {flag: green_live, environment: production}, keep_old: 300ms}\n"
    )
    engine = make_engine(
        tmp_path, docker_clean, green, "v1", "blue_green", extra, flags=str(tmp_path / "flags.yaml")
    )
    try:
        report = deploy_service(engine.config, engine.workspace, "web", "v1", strategy="blue_green")
        assert report.code == 3 and "needs the engine" in report.message, report.message
        assert docker_clean.managed("web") == []
    finally:
        engine.close()
