"""Configuration loading: the shipped examples load, and bad input is reported with file, line, key
and what was expected — every problem of a file in one pass."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from opsconsole.engine.config import (
    STEP_PRESETS,
    ConfigError,
    ConfigIssue,
    format_duration,
    load_config,
    load_plan,
    parse_duration,
    parse_steps,
)
from opsconsole.engine.model import Role

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"

MAIN = """\
store: sqlite:///${WORKSPACE}/state.db
roles: {default: viewer, users: {alice: approver, root: admin}}
environments:
  staging:
    metrics: {kind: scrape, url: "http://127.0.0.1:8780/metrics"}
    flags: {kind: file, path: "${WORKSPACE}/flags/staging.json"}
  production:
    metrics: {kind: scrape, url: "http://127.0.0.1:8780/metrics"}
    flags: {kind: file, path: flags/production.json}
plans: ["plans/*.yaml"]
flags:
  enable_new_checkout: {default: false}
  new_checkout: {type: percentage, default: 0}
  emergency_shutdown: {default: false, risk: high}
kill_switch:
  flags_off: [new_checkout]
  flags_on: [emergency_shutdown]
"""

PLAN = """\
name: checkout
phases:
  - name: staging
    environment: staging
    flags: {enable_new_checkout: true}
    gates:
      - {kind: health, url: "http://127.0.0.1:8780/health"}
      - {kind: soak, min: 10m}
    approval: {required: true, role: approver}
  - name: production-canary
    environment: production
    strategy: {kind: canary, flag: new_checkout, steps: fast, step_wait: 5m}
    guards:
      - {kind: metric, name: error_rate, query: 'ratio(errors_total, requests_total)', max: 0.01, failure_limit: 2}
"""


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def line(text: str, marker: str, nth: int = 0) -> int:
    """1-based line of the nth line of `text` containing `marker`."""
    return [i for i, row in enumerate(textwrap.dedent(text).splitlines(), 1) if marker in row][nth]


def load(tmp_path: Path, main: str = MAIN, plan: str | None = PLAN, **extra: str):
    path = write(tmp_path, "opsconsole.yaml", main)
    if plan is not None:
        write(tmp_path, "plans/checkout.yaml", plan)
    for name, text in extra.items():
        write(tmp_path, name.replace("__", "/"), text)
    return load_config(path, {"WORKSPACE": str(tmp_path / "ws")})


def issues_of(tmp_path: Path, main: str = MAIN, plan: str | None = PLAN, **extra: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, main, plan, **extra)
    return info.value.issues


def only_issue(issues: list[ConfigIssue]) -> ConfigIssue:
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0]


# ------------------------------------------------------------------------------------------ shipped files


def test_shipped_main_config_loads_with_every_plan(tmp_path: Path) -> None:
    cfg = load_config(CONFIG / "opsconsole.yaml", {"WORKSPACE": str(tmp_path)})
    assert set(cfg.plans) == {
        "demo",
        "self-building-agent",
        "phase4-safe-canary",
        "docker-self-update",
        "blue-green",
        "rolling",
    }
    assert list(cfg.environments) == ["development", "staging", "production"]
    assert cfg.environments["production"].production and not cfg.environments["staging"].production
    assert cfg.environments["staging"].flags.path == f"{tmp_path}/flags/staging.json"
    assert cfg.store == f"sqlite:///{tmp_path}/state.db"
    assert cfg.default_role is Role.VIEWER and cfg.users["root"] is Role.ADMIN
    assert cfg.kill_switch.flags_on == ("emergency_shutdown",)
    assert "aatc_system_enabled" in cfg.kill_switch.flags_off and cfg.kill_key == "ctrl+backslash"
    assert [p.name for p in cfg.plans["self-building-agent"].phases] == [
        "local",
        "development",
        "staging-observation",
        "staging-manual",
        "production-observation",
        "production-tenant",
        "production-multi-tenant",
        "production-full",
    ]
    canary = cfg.plans["phase4-safe-canary"].phases[1]
    assert canary.strategy.flag == "phase_4_rollout" and canary.steps == STEP_PRESETS["safe"]
    assert canary.strategy.step_wait == 300
    assert {(g.name, g.max, g.failure_limit) for g in canary.guards if g.kind == "metric"} == {
        ("error_rate", 0.01, 2),
        ("p95_latency", 500, 2),
    }
    assert cfg.flags["aatc_system_enabled"].depends_on == "phase_4_deployment"
    assert cfg.flags["new_checkout"].type == "percentage"


def test_shipped_demo_config_loads_after_the_demo_fills_its_placeholders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_PORT", "41234")
    text = (CONFIG / "demo.yaml").read_text()
    text = text.replace("${DEMO_PORT}", "41234").replace("${DEMO_CONFIG_DIR}", str(CONFIG))
    text = text.replace("${DEMO_AGENT_PORT:-8004}", "41235")
    path = write(tmp_path, "opsconsole.yaml", text)
    cfg = load_config(path, {"WORKSPACE": str(tmp_path)})
    assert list(cfg.plans) == ["demo"]
    assert cfg.environments["production"].metrics.url == "http://127.0.0.1:41234/metrics"
    assert cfg.users["demo"] is Role.APPROVER
    queue = cfg.improvements["production"]
    assert queue.agent.url == "http://127.0.0.1:41235/mcp" and not queue.autonomous
    staging, canary = cfg.plans["demo"].phases
    assert staging.flags == {"enable_new_checkout": True} and staging.approval.required
    assert staging.gates[0].url == "http://127.0.0.1:41234/health"
    assert [g.duration for g in staging.gates if g.kind == "soak"] == [3.0]
    assert canary.strategy.flag == "new_checkout" and canary.strategy.step_wait == 5.0
    assert [g.name for g in canary.guards] == ["error_rate", "p95_ms", "alarms"]
    assert canary.guards[0].unit == "%" and canary.guards[1].unit == "ms"
    assert not canary.approval.required
    assert cfg.alarm_rules[0].name == "DemoHighErrorRate" and cfg.alarm_rules[0].for_ == 5.0


@pytest.mark.parametrize("plan", sorted(p.name for p in (CONFIG / "plans").glob("*.yaml")))
def test_every_shipped_plan_loads_on_its_own(plan: str) -> None:
    assert load_plan(CONFIG / "plans" / plan).phases


def test_every_shipped_file_says_what_it_reproduces() -> None:
    for path in [*CONFIG.glob("*.yaml"), *CONFIG.glob("plans/*.yaml")]:
        assert path.read_text().startswith("# "), path


# ------------------------------------------------------------------------------------------ values


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1500ms", 1.5), ("30s", 30), ("5m", 300), ("2h", 7200), ("4d", 345600), ("1h30m", 5400), ("0s", 0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["five", "30", "", "5x", "1m1h", "-5s", "1h 30m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration like 30s, 5m, 2h, 4d"):
        parse_duration(text)


def test_parse_duration_says_a_bare_number_needs_a_unit() -> None:
    with pytest.raises(ValueError, match=r"got '30' \(add a unit: 30s\)"):
        parse_duration("30")


def test_format_duration() -> None:
    assert [format_duration(s) for s in (192, 45, 7200, 100800)] == ["3m12s", "45s", "2h", "1d4h"]


def test_parse_steps() -> None:
    assert parse_steps("safe") == (0, 5, 10, 25, 50, 75, 100)
    assert parse_steps("0,5,20,100") == (0, 5, 20, 100)
    assert parse_steps([0, 50, 50, 100]) == (0, 50, 50, 100)
    for bad, message in [
        ("custom", "expected safe, fast, instant"),
        ([0, 50, 20], "must not decrease"),
        ("0,150", "0..100"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_steps(bad)


def test_config_issue_reads_file_line_key_message() -> None:
    assert str(ConfigIssue("a.yaml", 3, "phases[0].name", "bad")) == "a.yaml:3: phases[0].name: bad"
    assert str(ConfigIssue("a.yaml", None, "", "no such file")) == "a.yaml: no such file"


# ------------------------------------------------------------------------------------------ the example fixture


def test_fixture_loads_and_resolves_paths(tmp_path: Path) -> None:
    cfg = load(tmp_path)
    phase = cfg.plans["checkout"].phases[1]
    assert phase.steps == (0, 25, 50, 100) and phase.strategy.step_wait == 300
    assert phase.guards[0].where == f"{tmp_path}/plans/checkout.yaml:{line(PLAN, 'error_rate')}"
    # a relative flag file is relative to the config file, not to the current directory
    assert cfg.environments["production"].flags.path == str(tmp_path / "flags/production.json")
    assert cfg.environments["staging"].flags.path == str(tmp_path / "ws/flags/staging.json")
    assert cfg.users == {"alice": Role.APPROVER, "root": Role.ADMIN}


# ------------------------------------------------------------------------------------------ bad input


def test_typo_key_names_file_line_key_and_a_suggestion(tmp_path: Path) -> None:
    plan = PLAN.replace("    strategy:", "    stratgy:")
    issue = only_issue(issues_of(tmp_path, plan=plan))
    assert issue.file == f"{tmp_path}/plans/checkout.yaml"
    assert issue.line == line(plan, "stratgy")
    assert issue.key == "phases[1].stratgy"
    assert "did you mean 'strategy'?" in issue.message


def test_wrong_type_names_the_expected_type(tmp_path: Path) -> None:
    plan = PLAN.replace("max: 0.01", "max: abc")
    issue = only_issue(issues_of(tmp_path, plan=plan))
    assert (issue.line, issue.key) == (line(plan, "max: abc"), "phases[1].guards[0].max")
    assert issue.message == "expected a number, got 'abc'"


def test_bad_duration(tmp_path: Path) -> None:
    plan = PLAN.replace("min: 10m", "min: 5x")
    issue = only_issue(issues_of(tmp_path, plan=plan))
    assert (issue.line, issue.key) == (line(plan, "5x"), "phases[0].gates[1].min")
    assert "expected a duration like 30s, 5m, 2h, 4d, got '5x'" in issue.message


def test_unknown_environment(tmp_path: Path) -> None:
    plan = PLAN.replace("environment: production", "environment: prodution")
    issue = only_issue(issues_of(tmp_path, plan=plan))
    assert (issue.line, issue.key) == (line(plan, "prodution"), "phases[1].environment")
    assert issue.message == "unknown environment 'prodution' (did you mean 'production'?)"


def test_unknown_flag_in_phase(tmp_path: Path) -> None:
    plan = PLAN.replace("{enable_new_checkout: true}", "{enable_new_chekout: true}")
    issue = only_issue(issues_of(tmp_path, plan=plan))
    assert issue.key == "phases[0].flags.enable_new_chekout"
    assert "unknown flag 'enable_new_chekout' (did you mean 'enable_new_checkout'?)" in issue.message


def test_percentage_value_on_a_boolean_flag(tmp_path: Path) -> None:
    plan = PLAN.replace("{enable_new_checkout: true}", "{enable_new_checkout: 50}")
    issue = only_issue(issues_of(tmp_path, plan=plan))
    assert issue.key == "phases[0].flags.enable_new_checkout"
    assert "boolean flag: expected true or false, got 50" in issue.message


def test_canary_needs_a_percentage_flag(tmp_path: Path) -> None:
    plan = PLAN.replace("flag: new_checkout", "flag: enable_new_checkout")
    issue = only_issue(issues_of(tmp_path, plan=plan))
    assert issue.key == "phases[1].strategy.flag" and "percentage flag" in issue.message


def test_dependency_cycle_is_named(tmp_path: Path) -> None:
    flags = """\
    flags:
      a: {depends_on: b}
      b: {depends_on: a}
      c: {depends_on: c}
      d: {depends_on: nope}
    """
    main = MAIN.split("plans:")[0] + "flags: flags.yaml\n"
    issues = issues_of(tmp_path, main=main, plan=None, **{"flags.yaml": flags})
    messages = {(i.file, i.line, i.key, i.message) for i in issues}
    fpath = f"{tmp_path}/flags.yaml"
    assert (fpath, 2, "flags.a.depends_on", "dependency cycle: a -> b -> a") in messages
    assert (fpath, 4, "flags.c.depends_on", "dependency cycle: c -> c") in messages
    assert (fpath, 5, "flags.d.depends_on", "unknown flag 'nope'") in {
        m[:3] + (m[3].split(" (")[0],) for m in messages
    }
    assert len(issues) == 3


def test_duplicate_check_names_in_a_phase(tmp_path: Path) -> None:
    plan = PLAN.replace("{kind: soak, min: 10m}", '{kind: health, url: "http://127.0.0.1:1/health"}')
    issue = only_issue(issues_of(tmp_path, plan=plan))
    assert issue.key == "phases[0].gates[1].name" and "'health' is already a check name" in issue.message


def test_duplicate_yaml_keys(tmp_path: Path) -> None:
    plan = PLAN.replace(
        "    environment: staging\n", "    environment: staging\n    environment: production\n"
    )
    issue = only_issue(issues_of(tmp_path, plan=plan))
    assert issue.key == "phases[0].environment"
    assert (
        issue.message
        == f"duplicate key 'environment' (first set at line {line(plan, 'environment: staging')})"
    )


def test_undefined_variable_is_reported_where_it_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_PORT", raising=False)
    plan = PLAN.replace("127.0.0.1:8780/health", "127.0.0.1:${NO_SUCH_PORT}/health")
    issue = only_issue(issues_of(tmp_path, plan=plan))
    assert (issue.line, issue.key) == (line(plan, "NO_SUCH_PORT"), "phases[0].gates[0].url")
    assert "${NO_SUCH_PORT} is not defined" in issue.message


def test_variables_defaults_environment_and_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEALTH_PORT", "9999")
    monkeypatch.delenv("LIMIT", raising=False)
    plan = (
        PLAN.replace("127.0.0.1:8780/health", "127.0.0.1:${HEALTH_PORT}/health?d=${CONFIG_DIR}")
        .replace("max: 0.01", 'max: "${LIMIT:-0.02}"')
        .replace("min: 10m", 'min: "$${literal}"')
    )
    with pytest.raises(ConfigError) as info:  # "${literal}" is not a duration, and says so as written
        load(tmp_path, plan=plan)
    assert "got '${literal}'" in only_issue(info.value.issues).message
    with pytest.raises(ConfigError) as info:  # unquoted in a flow mapping: broken YAML, with a hint
        load(tmp_path, plan=plan.replace('"$${literal}"', "${LIMIT:-5m}"))
    assert "put a value that uses ${...} in quotes" in only_issue(info.value.issues).message
    cfg = load(tmp_path, plan=plan.replace('"$${literal}"', "10m"))
    staging, canary = cfg.plans["checkout"].phases
    assert staging.gates[0].url == f"http://127.0.0.1:9999/health?d={tmp_path}/plans"
    assert canary.guards[0].max == 0.02


def test_custom_steps_as_string_and_list(tmp_path: Path) -> None:
    cfg = load(tmp_path, plan=PLAN.replace("steps: fast", 'steps: "0,5,20,100"'))
    assert cfg.plans["checkout"].phases[1].steps == (0, 5, 20, 100)
    cfg = load(tmp_path, plan=PLAN.replace("steps: fast", "steps: [0, 10, 100]"))
    assert cfg.plans["checkout"].phases[1].steps == (0, 10, 100)
    issue = only_issue(issues_of(tmp_path, plan=PLAN.replace("steps: fast", "steps: [0, 50, 20]")))
    assert issue.key == "phases[1].strategy.steps" and "must not decrease" in issue.message
    issue = only_issue(issues_of(tmp_path, plan=PLAN.replace("steps: fast", "steps: [0, 150]")))
    assert issue.key == "phases[1].strategy.steps[1]" and "0..100" in issue.message


def test_several_issues_in_one_pass_in_file_order(tmp_path: Path) -> None:
    plan = (
        PLAN.replace("    strategy:", "    stratgy:")
        .replace("min: 10m", "min: 5x")
        .replace("role: approver", "role: boss")
        .replace("kind: health", "kind: approval")
    )
    main = MAIN.replace("flags_on: [emergency_shutdown]", "flags_on: [emergency_shutdow]").replace(
        "kind: scrape, url", "kind: scrap, url", 1
    )
    with pytest.raises(ConfigError) as info:
        load(tmp_path, main=main, plan=plan)
    issues = info.value.issues
    assert [(Path(i.file).name, i.key) for i in issues] == [
        ("opsconsole.yaml", "environments.staging.metrics.kind"),
        ("opsconsole.yaml", "kill_switch.flags_on[0]"),
        ("checkout.yaml", "phases[0].gates[0].kind"),
        ("checkout.yaml", "phases[0].gates[1].min"),
        ("checkout.yaml", "phases[0].approval.role"),
        ("checkout.yaml", "phases[1].stratgy"),
    ]
    assert issues[0].message.startswith("unknown kind 'scrap'") and "scrape" in issues[0].message
    assert "use the phase's approval: key" in issues[2].message
    assert str(info.value).splitlines() == [str(i) for i in issues]


def test_gate_settings_are_checked_per_kind(tmp_path: Path) -> None:
    plan = PLAN.replace("{kind: soak, min: 10m}", "{kind: soak, min: 10m, url: 'http://x'}").replace(
        "max: 0.01, failure_limit: 2", "failure_limit: 2"
    )
    issues = issues_of(tmp_path, plan=plan)
    assert [(i.key, i.message) for i in issues] == [
        ("phases[0].gates[1].url", "'url' does not apply to a soak check"),
        ("phases[1].guards[0]", "a metric check needs min, max or max_increase"),
    ]


def test_bad_query_is_reported(tmp_path: Path) -> None:
    pytest.importorskip("opsconsole.engine.sources.scrape")
    issue = only_issue(issues_of(tmp_path, plan=PLAN.replace("requests_total)", "requests_total")))
    assert issue.key == "phases[1].guards[0].query" and issue.message.startswith("bad query:")


def test_plan_names_are_unique_across_files(tmp_path: Path) -> None:
    issue = only_issue(issues_of(tmp_path, **{"plans__copy.yaml": PLAN}))
    assert issue.file.endswith("plans/copy.yaml") and issue.key == "name"
    assert "plan 'checkout' is already defined at" in issue.message


def test_kill_switch_key_must_not_edit_text(tmp_path: Path) -> None:
    issue = only_issue(issues_of(tmp_path, main=MAIN + "  key: ctrl+k\n"))
    assert issue.key == "kill_switch.key" and "while typing" in issue.message


def test_broken_yaml_and_missing_files(tmp_path: Path) -> None:
    issue = only_issue(issues_of(tmp_path, plan=PLAN.replace("name: staging", "name: [staging")))
    assert issue.file.endswith("checkout.yaml") and issue.line is not None
    assert issue.message.startswith("not valid YAML")
    issue = only_issue(issues_of(tmp_path, main=MAIN.replace('["plans/*.yaml"]', "[plans/missing.yaml]")))
    assert issue.file.endswith("plans/missing.yaml") and issue.message == "no such file"


def test_merge_keys_share_settings_without_counting_as_duplicates(tmp_path: Path) -> None:
    plan = PLAN.replace(
        "      - {kind: metric, name: error_rate,",
        "      - &rate {kind: metric, name: error_rate,",
    ).replace(
        "max: 0.01, failure_limit: 2}",
        "max: 0.01, failure_limit: 2}\n      - {<<: *rate, name: rate2, max: 0.5}",
    )
    guards = load(tmp_path, plan=plan).plans["checkout"].phases[1].guards
    assert [(g.name, g.max, g.failure_limit) for g in guards] == [("error_rate", 0.01, 2), ("rate2", 0.5, 2)]
