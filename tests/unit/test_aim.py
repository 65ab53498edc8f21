"""Checks aimed at a colour of a blue_green deploy: `{colour}` and `{port}` in a metric query are
replaced, exactly those tokens (PromQL's own braces stay), only in a blue_green phase with a service;
anywhere else the configuration refuses them at their file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsconsole.engine.aim import Aim, aim_of, aimable, aimed, colour_ports, said, substitute, variants
from opsconsole.engine.config import ConfigError, load_config
from opsconsole.engine.deploy.aimed import live_colour
from opsconsole.engine.model import GateSpec, GateVerdict, Verdict
from opsconsole.engine.observe import configured_queries

QUERY = 'sum(rate(app_errors_total{instance="127.0.0.1:{port}", colour="{colour}"}[1m]))'


def test_only_the_exact_tokens_are_replaced() -> None:
    assert substitute(QUERY, "green", 9001) == (
        'sum(rate(app_errors_total{instance="127.0.0.1:9001", colour="green"}[1m]))'
    )
    # PromQL's own braces, a label called port or colour, and near misses are left as written
    for text in ('x{port="80"}', "x{colour=~'.+'}", "{ port }", "{Port}", "{{port}", "{colours}", "${port}"):
        assert substitute(text, "blue", 1) == text.replace("{port}", "1").replace("{colour}", "blue")
    assert substitute('x{port="80"}', "blue", 1) == 'x{port="80"}'
    assert substitute("{{port}}", "blue", 7) == "{7}"
    assert substitute("up{instance=':{port}'}", "blue", None) == "up{instance=':'}"


@given(st.text(alphabet=st.sampled_from(list('{}portcolu="x1: ')), max_size=40))
def test_substitution_touches_nothing_but_the_tokens(text: str) -> None:
    out = substitute(text, "green", 4242)
    assert "{port}" not in out and "{colour}" not in out
    # what remains once the tokens are taken out is unchanged, in order
    assert out.replace("4242", "").replace("green", "") == text.replace("{port}", "").replace("{colour}", "")


def test_aimed_checks_and_what_their_verdicts_say() -> None:
    spec = GateSpec(kind="metric", name="errors", query=QUERY, max=0)
    plain = GateSpec(kind="metric", name="all", query="sum(rate(app_errors_total[1m]))", max=0)
    assert (
        aimable(spec) and not aimable(plain) and not aimable(GateSpec(kind="health", name="h", url="{port}"))
    )
    green = Aim("green", 9001)
    assert aimed(spec, green).query == substitute(QUERY, "green", 9001)
    assert aimed(plain, green) is plain and aimed(spec, None) is spec
    v = GateVerdict(
        gate="errors", kind="metric", status=Verdict.FAIL, reason="errors 3 > 0 for 1 of 1 checks"
    )
    assert said(v, spec, green).reason == (
        f"errors 3 > 0 for 1 of 1 checks (on green: {substitute(QUERY, 'green', 9001)})"
    )
    assert said(v, plain, green) is v
    assert green.env() == {"OPSCONSOLE_COLOUR": "green", "OPSCONSOLE_PORT": "9001"}


MAIN = """\
interval: 1s
environments:
  production:
    metrics: {kind: prometheus, url: "http://127.0.0.1:9090"}
    flags: {kind: file, path: "${WORKSPACE}/flags/production.json"}
plans: ["plans/*.yaml"]
flags:
  new_checkout: {type: percentage, default: 0}
services:
  web:
    image: registry.local/web
    ports: [8081]
    blue_green: {ports: {blue: [8081, 8082], green: [8091, 8092]}, switch: {command: "true"}}
"""

BLUE_GREEN = """\
name: ship
phases:
  - name: deploy
    environment: production
    strategy: {kind: blue_green, service: web, image: v2}
    gates:
      - {kind: metric, name: errors, query: 'max(app_errors{instance="127.0.0.1:{port}"})', max: 0}
      - {kind: metric, name: p95, query: 'max(app_p95)', max: 500}
    guards:
      - {kind: metric, name: errors_by_colour, query: 'sum(app_errors{colour="{colour}"})', max: 1}
"""


def load(tmp_path: Path, plan: str, main: str = MAIN):  # type: ignore[no-untyped-def]
    (tmp_path / "plans").mkdir(exist_ok=True)
    (tmp_path / "plans" / "ship.yaml").write_text(plan)
    (tmp_path / "opsconsole.yaml").write_text(main)
    return load_config(tmp_path / "opsconsole.yaml", {"WORKSPACE": str(tmp_path / "ws")})


def test_a_blue_green_phase_aims_its_queries_at_each_colour_first_port(tmp_path: Path) -> None:
    cfg = load(tmp_path, BLUE_GREEN)
    phase = cfg.plans["ship"].phases[0]
    assert colour_ports(cfg, phase) == {"blue": 8081, "green": 8091}
    assert aim_of(cfg, phase, "green") == Aim("green", 8091) and aim_of(cfg, phase, None) is None
    # the metrics source is asked each colour's query from its first refresh on, never the raw one
    asked = configured_queries(cfg)["production"]
    assert asked == [
        'max(app_errors{instance="127.0.0.1:8081"})',
        'max(app_errors{instance="127.0.0.1:8091"})',
        "max(app_p95)",
        'sum(app_errors{colour="blue"})',
        'sum(app_errors{colour="green"})',
    ]
    [(no_aim, p95)] = list(variants(cfg, phase, phase.gates[1]))
    assert no_aim is None and p95 is phase.gates[1]


@pytest.mark.parametrize(
    ("strategy", "why"),
    [
        ("{kind: canary, flag: new_checkout, steps: [0, 100]}", "this phase's strategy is canary"),
        ("{kind: recreate, service: web, image: v2}", "this phase's strategy is recreate"),
        ("{kind: blue_green}", "this blue_green phase deploys no service"),
        (None, "this phase has no strategy"),
    ],
)
def test_a_colour_placeholder_outside_a_docker_blue_green_phase_is_refused(
    tmp_path: Path, strategy: str | None, why: str
) -> None:
    plan = BLUE_GREEN.replace("{kind: blue_green, service: web, image: v2}", strategy or "")
    if strategy is None:
        plan = plan.replace("    strategy: \n", "")
    with pytest.raises(ConfigError) as info:
        load(tmp_path, plan)
    issues = [str(i) for i in info.value.issues]
    path = tmp_path / "plans" / "ship.yaml"
    lines = plan.splitlines()
    gate_line = next(i for i, row in enumerate(lines, 1) if "name: errors," in row)
    guard_line = next(i for i, row in enumerate(lines, 1) if "errors_by_colour" in row)
    assert issues == [
        f"{path}:{gate_line}: phases[0].gates[0].query: {{port}} stands for a colour of a blue_green "
        "deploy: only a metric check of a phase with strategy: {kind: blue_green, service: ...} may "
        f"use it ({why})",
        f"{path}:{guard_line}: phases[0].guards[0].query: {{colour}} stands for a colour of a "
        "blue_green deploy: only a metric check of a phase with strategy: {kind: blue_green, "
        f"service: ...}} may use it ({why})",
    ], issues


def test_alarm_rules_refuse_colour_placeholders_and_the_syntax_check_sees_them_replaced(
    tmp_path: Path,
) -> None:
    main = MAIN + (
        "alarms:\n  rules:\n"
        "    - {name: Errors, environment: production, query: 'max(app_errors{port=\"{port}\"})', max: 1}\n"
    )
    with pytest.raises(ConfigError) as info:
        load(tmp_path, BLUE_GREEN, main)
    [issue] = [str(i) for i in info.value.issues]
    assert "alarms.rules[0].query: {port} stands for a colour" in issue
    assert "(an alarm rule watches an environment, not a colour)" in issue
    # a query broken apart from its placeholders is still refused, for what is wrong with it
    broken = BLUE_GREEN.replace(
        'max(app_errors{instance="127.0.0.1:{port}"})', 'max(app_errors{instance="{port}")'
    )
    with pytest.raises(ConfigError) as info:
        load(tmp_path, broken)
    [issue] = [str(i) for i in info.value.issues]
    assert "phases[0].gates[0].query: bad query: column" in issue, issue


def test_the_docker_blue_green_example_loads_with_its_checks_aimed(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "examples" / "docker-blue-green.yaml"
    cfg = load_config(example, {"WORKSPACE": str(tmp_path)})
    phase = cfg.plans["checkout-blue-green"].phases[0]
    assert colour_ports(cfg, phase) == {"blue": 8081, "green": 8091}
    assert [g.name for g in phase.gates if aimable(g)] == ["p95_vs_live"]
    assert [g.name for g in phase.guards if aimable(g)] == ["error_rate"]
    asked = configured_queries(cfg)["production"]
    assert any('instance="127.0.0.1:8091"' in q for q in asked) and not any("{port}" in q for q in asked)


def test_the_live_colour_is_read_from_a_blue_green_deploy_journal() -> None:
    base = {"strategy": "blue_green", "live": "blue", "new": "green"}
    assert live_colour({**base, "phase": "bg_started"}) == "blue"  # not switched yet
    assert live_colour({**base, "phase": "bg_switched"}) == "green"  # switched, blue still kept
    assert live_colour({**base, "phase": "done", "outcome": "ok"}) == "green"
    assert live_colour({**base, "phase": "done", "outcome": "rolled_back"}) == "blue"
    assert (
        live_colour({"live": None, "new": "blue", "phase": "done", "outcome": "ok"}) == "blue"
    )  # a store row
    assert live_colour({**base, "strategy": "canary", "phase": "done", "outcome": "ok"}) is None
    assert live_colour(None) is None and live_colour({}) is None
