"""blue_green phases measured per colour: metric gates and guards whose query says `{port}` or
`{colour}` are asked of a real Prometheus for the new colour before the switch, guard it during
keep_old, and measure the live colour after the deploy. Real dockerd, nginx (the switch), Prometheus
(scraping each colour's /metrics: a static file the busybox containers serve), store and runner."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opsconsole.engine import Actor, Engine, Runner, deploy_service, open_engine
from opsconsole.engine.checks import check_now
from opsconsole.engine.deploy.phase import PhaseDeploy, PhaseDeploys
from opsconsole.engine.model import RolloutState
from tests.prom.server import Prom

from .conftest import APP, DockerEngine, free_port, http_get
from .nginx import Nginx, running_nginx
from .test_plan import run_until

S = RolloutState
pytestmark = pytest.mark.timeout(150)

SMOKE = """\
import os, sys, urllib.request
port, colour = os.environ["OPSCONSOLE_PORT"], os.environ["OPSCONSOLE_COLOUR"]
with open(sys.argv[1], "a") as log:
    log.write(f"{colour} {port}\\n")
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
sys.exit(0 if opener.open(f"http://127.0.0.1:{port}/version", timeout=2).read().strip() == b"v2" else 1)
"""
"""A smoke gate that passes only on a colour serving v2, told which one by its environment."""


@dataclass
class Setup:
    tmp: Path
    docker: DockerEngine
    prom: Prom
    nginx: Nginx
    blue: int
    green: int
    run: str
    """A label of this test's scrape targets, so no other test's series can answer its queries."""

    def config(self, image: str, phase: str, keep_old: str = "300ms") -> Path:
        (self.tmp / "plan.yaml").write_text(
            textwrap.dedent(
                f"""\
                name: ship
                phases:
                  - name: deploy
                    environment: production
                    strategy: {{kind: blue_green, service: web, image: {image}}}
                """
            )
            + textwrap.indent(textwrap.dedent(phase), "    ")
        )
        switch = self.nginx.switch_command().replace('"', chr(92) + '"')
        cfg = self.tmp / "opsconsole.yaml"
        cfg.write_text(
            textwrap.dedent(
                f"""\
                interval: 1s
                roles: {{default: operator, users: {{alice: approver}}}}
                environments:
                  production:
                    metrics: {{kind: prometheus, url: "{self.prom.url}", timeout: 2s}}
                    flags: {{kind: file, path: "${{WORKSPACE}}/flags/production.json"}}
                plans: ["{self.tmp}/plan.yaml"]
                flags: "{Path(__file__).resolve().parents[2]}/config/flags.yaml"
                kill_switch: {{flags_on: [emergency_shutdown]}}
                services:
                  web:
                    image: {APP}
                    ports: [{self.blue}]
                    health: {{url: "http://127.0.0.1:{{port}}/health", interval: 200ms, timeout: 500ms, failure_limit: 3}}
                    docker: {{host: "{self.docker.host}"}}
                    stop_timeout: 2s
                    blue_green:
                      ports: {{blue: [{self.blue}], green: [{self.green}]}}
                      switch: {{command: "{switch}"}}
                      keep_old: {keep_old}
                """
            )
        )
        return cfg

    def engine(self, image: str, phase: str, keep_old: str = "300ms", ws: str = "ws") -> Engine:
        return open_engine(
            str(self.config(image, phase, keep_old)), self.tmp / ws, actor=Actor("root", "test")
        )

    def first_v1(self) -> None:
        """v1 live on blue behind nginx, as `opsconsole deploy web --image v1` leaves it."""
        engine = self.engine("v1", "gates: []\n", ws="first")
        try:
            report = deploy_service(engine.config, engine.workspace, "web", "v1", strategy="blue_green")
        finally:
            engine.close()
        assert report.code == 0 and report.colour == "blue", report.message

    def serves(self, version: str, seconds: float = 5.0) -> None:
        deadline = time.monotonic() + seconds
        while http_get(f"{self.nginx.url}/version") != version:
            assert time.monotonic() < deadline, f"nginx does not serve {version}"
            time.sleep(0.05)

    def colours(self) -> list[str]:
        return sorted(c.labels["io.opsconsole.colour"] for c in self.docker.managed("web"))


@pytest.fixture
def setup(docker_clean: DockerEngine, prom: Prom, tmp_path: Path) -> Iterator[Setup]:
    blue, green = free_port(), free_port()
    run = uuid.uuid4().hex[:8]
    targets = prom.scrape(
        f"bg-{run}",
        {
            f"127.0.0.1:{blue}": {"colour": "blue", "run": run},
            f"127.0.0.1:{green}": {"colour": "green", "run": run},
        },
    )
    try:
        with running_nginx(tmp_path / "nginx", blue) as n:
            yield Setup(tmp_path, docker_clean, prom, n, blue, green, run)
    finally:
        targets.unlink()


def deploy_record(engine: Engine, rid: str) -> dict[str, Any]:
    with engine.store.read() as tx:
        [record] = [d for d in tx.list_deploys("web") if str(d.get("rollout", "")).startswith(f"{rid}:")]
    return record


def step(record: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [s for s in record["steps"] if s["name"] == name]
    return found


def run_rollout(engine: Engine, seconds: float = 60.0) -> str:
    rid = engine.start_rollout("ship", "test").id
    run_until(
        Runner(engine),
        lambda: engine.rollout(rid).state in (S.COMPLETED, S.ROLLED_BACK, S.PAUSED),
        seconds,
    )
    return rid


ERRORS_ON_PORT = (
    "{kind: metric, name: errors, query: 'max(app_errors{instance=\"127.0.0.1:{port}\"})', max: 0}"
)


def test_a_metric_gate_failing_on_green_keeps_traffic_on_blue_exit_4(setup: Setup) -> None:
    setup.first_v1()
    engine = setup.engine("v2-errors", f"gates:\n  - {ERRORS_ON_PORT}\n")
    try:
        rid = run_rollout(engine)
        r = engine.rollout(rid)
        record = deploy_record(engine, rid)
    finally:
        engine.close()
    query = f'max(app_errors{{instance="127.0.0.1:{setup.green}"}})'
    assert r.state is S.ROLLED_BACK, r.reason
    assert "gates failed on green before the switch" in r.reason, r.reason
    assert f"gate errors: errors 9 > 0 for 1 of 1 checks (on green: {query})" in r.reason, r.reason
    assert record["outcome_code"] == 4 and record["report_outcome"] == "rolled_back", record
    gates = step(record, "gates-green")
    assert not gates["ok"] and query in gates["detail"]
    assert not any(s["name"].startswith("switch") for s in record["steps"]), record["steps"]
    setup.serves("v1")  # nginx never moved
    assert setup.colours() == ["blue"]  # green removed


def test_green_passing_its_metric_gates_takes_traffic_and_stays_measured(setup: Setup) -> None:
    (setup.tmp / "smoke.py").write_text(SMOKE)
    smoked = setup.tmp / "smoked.log"
    phase = f"""\
        gates:
          - {ERRORS_ON_PORT}
          - {{kind: metric, name: vs_live, query: 'max(app_errors{{instance="127.0.0.1:{{port}}"}}) + 1', max_increase: 10%}}
          - {{kind: smoke, name: serves_v2, command: ["{sys.executable}", "{setup.tmp / "smoke.py"}", "{smoked}"]}}
        guards:
          - {{kind: metric, name: colour_errors, query: 'max(app_errors{{colour="{{colour}}", run="{setup.run}"}})', max: 0}}
        approval: {{required: true, role: approver}}
        """
    setup.first_v1()
    engine = setup.engine("v2", phase)
    try:
        rid = engine.start_rollout("ship", "test").id
        runner = Runner(engine)
        run_until(
            runner, lambda: engine.rollout(rid).state in (S.AWAITING_APPROVAL, S.ROLLED_BACK, S.PAUSED), 60
        )
        waiting = engine.rollout(rid)
        assert waiting.state is S.AWAITING_APPROVAL, waiting.reason
        # while it waits for a person the aimed checks go on measuring green (not "no colour")
        ticks = runner.stats.ticks
        run_until(runner, lambda: runner.stats.ticks >= ticks + 3)
        assert engine.rollout(rid).state is S.AWAITING_APPROVAL, engine.rollout(rid).reason
        alice = open_engine(
            str(setup.tmp / "opsconsole.yaml"), engine.workspace, actor=Actor("alice", "test")
        )
        try:
            alice.approve(rid, "green measured well")
        finally:
            alice.close()
        run_until(runner, lambda: engine.rollout(rid).state in (S.COMPLETED, S.ROLLED_BACK, S.PAUSED))
        r = engine.rollout(rid)
        record = deploy_record(engine, rid)
        # the runner measured the colour that took traffic, and `gates check` does too
        on_green = f'(on green: max(app_errors{{instance="127.0.0.1:{setup.green}"}}))'
        stored = {v.gate: v.reason for v in r.verdicts}
        checked = {v.gate: v.reason for _, v in asyncio.run(check_now(engine, rid))}

        async def ask() -> PhaseDeploy | None:  # a restarted runner finds the colour in the journal
            return PhaseDeploys(engine).poll((rid, 0), "web", "v2", "blue_green")

        recorded = asyncio.run(ask())
    finally:
        engine.close()
    assert r.state is S.COMPLETED, r.reason
    assert recorded is not None and recorded.ok and recorded.colour == "green", recorded
    names = [s["name"] for s in record["steps"]]
    assert names.index("gates-green") < names.index("switch-green") < names.index("watch-green"), names
    gates = step(record, "gates-green")["detail"]
    assert gates.startswith("the phase's gates pass on green: "), gates
    assert f"gate errors: errors 0 <= 0 {on_green}" in gates, gates
    # green no worse than blue: the baseline is the live colour's value of the same query
    assert "gate vs_live: vs_live 1 <= 1.10x baseline 1 (on green: " in gates, gates
    assert "gate serves_v2: exit 0" in gates and f'colour="green", run="{setup.run}"' in gates, gates
    assert smoked.read_text().splitlines()[0] == f"green {setup.green}"  # before the switch, told green
    setup.serves("v2")
    assert setup.colours() == ["green"]
    for verdicts in (stored, checked):
        assert verdicts["errors"].endswith(on_green), verdicts
        assert verdicts["colour_errors"].endswith(
            f'(on green: max(app_errors{{colour="green", run="{setup.run}"}}))'
        )
        assert verdicts["serves_v2"].startswith("exit 0")


def test_a_guard_breaching_during_keep_old_switches_back_to_blue(setup: Setup) -> None:
    phase = f"""\
        guards:
          - {{kind: metric, name: colour_errors, query: 'max(app_errors{{colour="{{colour}}", run="{setup.run}"}})', max: 0}}
        """
    setup.first_v1()
    engine = setup.engine("v2", phase, keep_old="60s")
    broken: list[float] = []

    def break_green_once_live() -> None:
        """Once nginx serves green, green's /metrics starts saying errors."""
        deadline = time.monotonic() + 60
        while http_get(f"{setup.nginx.url}/version") != "v2":
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        [green] = [c for c in setup.docker.managed("web") if c.labels["io.opsconsole.colour"] == "green"]
        code, _ = green.exec_run(["sh", "-c", "printf 'app_errors 3\\n' > /srv/metrics"])
        assert code == 0
        broken.append(time.monotonic())

    thread = threading.Thread(target=break_green_once_live, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        rid = run_rollout(engine)
        r = engine.rollout(rid)
        record = deploy_record(engine, rid)
    finally:
        engine.close()
        thread.join(5)
    assert broken, "the switch to green never happened"
    assert r.state is S.ROLLED_BACK, r.reason
    assert time.monotonic() - started < 50, "the watch did not end at the breach (keep_old is 60s)"
    assert "guard colour_errors breached: colour_errors 3 > 0 for 1 of 1 checks" in r.reason, r.reason
    assert f'(on green: max(app_errors{{colour="green", run="{setup.run}"}}))' in r.reason, r.reason
    assert "traffic switched back to blue" in r.reason, r.reason
    assert record["outcome_code"] == 4, record
    watch = step(record, "watch-green")
    assert not watch["ok"] and "guard colour_errors breached" in watch["detail"]
    assert step(record, "switch-back-blue")["ok"]
    setup.serves("v1")
    assert setup.colours() == ["blue"]
