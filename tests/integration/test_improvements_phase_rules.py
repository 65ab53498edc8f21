"""A plan's phase sets its environment's queue rules while it is current (the seed moves the
quality threshold, monitoring window and rollback threshold phase by phase): on a real engine and
store, the rules follow the rollout and go back to the environment's own when it ends."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from opsconsole.engine import Actor, Engine, load_config
from opsconsole.engine.config import ConfigError
from opsconsole.engine.runner import Runner

REPO = Path(__file__).resolve().parents[2]

MAIN = f"""
interval: 1s
roles: {{default: viewer, users: {{root: admin}}}}
environments:
  production:
    flags: {{kind: file, path: "${{WORKSPACE}}/flags/production.json"}}
flags: "{REPO}/config/flags.yaml"
plans: ["plans/*.yaml"]
kill_switch: {{flags_off: [enable_autonomous_improvements], flags_on: [emergency_shutdown]}}
improvements:
  production:
    proposals: proposals.yaml
    quality_threshold: 0.95
    monitoring: 2h
    rollback_threshold: 0.05
"""

PLAN = """
name: tune
phases:
  - name: manual
    environment: production
    improvements: {quality_threshold: 85%, monitoring: 30m, rollback_threshold: 0.10, max_concurrent: 2}
    gates: [{kind: soak, min: 1h}]
"""


def workspace(tmp_path: Path, main: str = MAIN, plan: str = PLAN) -> Path:
    (tmp_path / "plans").mkdir()
    (tmp_path / "opsconsole.yaml").write_text(textwrap.dedent(main))
    (tmp_path / "plans" / "tune.yaml").write_text(textwrap.dedent(plan))
    (tmp_path / "proposals.yaml").write_text("[]\n")
    return tmp_path


def engine(ws: Path) -> Engine:
    return Engine(
        load_config(ws / "opsconsole.yaml", {"WORKSPACE": str(ws / "state")}),
        ws / "state",
        Actor("root", "t"),
    )


async def tick(e: Engine) -> None:
    runner = Runner(e)
    try:
        await runner.tick()
    finally:
        await runner.observer.close()
        if runner.improvements is not None:
            await runner.improvements.close()


def test_the_current_phase_sets_the_rules_and_hands_them_back(tmp_path: Path) -> None:
    e = engine(workspace(tmp_path))
    before = e.improvement_mode("production")
    assert (before.quality_threshold, before.monitoring, before.rollback_threshold) == (0.95, 7200.0, 0.05)
    assert before.rules_from.endswith("opsconsole.yaml:12")  # the production: line under improvements:

    r = e.start_rollout("tune", "test")
    asyncio.run(tick(e))  # pending -> progressing in phase "manual"
    during = e.improvement_mode("production")
    assert (during.quality_threshold, during.monitoring, during.rollback_threshold) == (0.85, 1800.0, 0.10)
    assert during.max_concurrent == 2
    assert during.rules_from == f"phase manual of rollout {r.id}"

    e.command(r.id, "abort", "done with the phase")
    after = e.improvement_mode("production")
    assert (after.quality_threshold, after.rules_from) == (0.95, before.rules_from)


def test_a_phase_cannot_set_rules_for_an_environment_without_a_queue(tmp_path: Path) -> None:
    main = MAIN[: MAIN.index("improvements:")]
    with pytest.raises(ConfigError) as info:
        engine(workspace(tmp_path, main))
    assert any("environment 'production' has no improvement queue" in str(i) for i in info.value.issues)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("{quality_threshold: 85}", "expected a fraction 0..1"),
        ("{metric: latency}", "unknown key"),
        ("{max_concurrent: 0}", "max_concurrent"),
    ],
)
def test_bad_phase_rules_are_named(tmp_path: Path, rules: str, message: str) -> None:
    plan = PLAN.replace(
        "{quality_threshold: 85%, monitoring: 30m, rollback_threshold: 0.10, max_concurrent: 2}", rules
    )
    with pytest.raises(ConfigError) as info:
        engine(workspace(tmp_path, plan=plan))
    assert any(message in str(i) and "improvements" in str(i) for i in info.value.issues), info.value.issues
