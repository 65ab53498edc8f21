"""The `improvements:` section: the shipped phase values load, and every mistake is reported at its
line under its path (unknown environment, two sources, numbers out of range)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsconsole.engine.config import ConfigError, ConfigIssue, load_config
from opsconsole.engine.improvements.model import TenantSettings

REPO = Path(__file__).resolve().parents[2]

MAIN = """\
environments:
  staging:
    metrics: {kind: scrape, url: "http://127.0.0.1:8780/metrics"}
  production:
    metrics: {kind: scrape, url: "http://127.0.0.1:8780/metrics"}
  lab: {}
improvements:
"""


def load(tmp_path: Path, section: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "opsconsole.yaml"
    path.write_text(MAIN + section)
    return load_config(path, {"WORKSPACE": str(tmp_path / "ws")})


def issues(tmp_path: Path, section: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, section)
    return info.value.issues


def test_shipped_config_has_the_guides_phase_values(tmp_path: Path) -> None:
    cfg = load_config(REPO / "config" / "opsconsole.yaml", {"WORKSPACE": str(tmp_path)})
    dev, stg, prod = (cfg.improvements[e] for e in ("development", "staging", "production"))
    assert (dev.quality_threshold, dev.monitoring, dev.rollback_threshold, dev.max_concurrent) == (
        0.85,
        1800.0,
        0.10,
        2,
    )
    assert (stg.quality_threshold, stg.monitoring, stg.rollback_threshold) == (0.90, 3600.0, 0.08)
    assert (prod.quality_threshold, prod.monitoring, prod.rollback_threshold) == (0.95, 7200.0, 0.05)
    assert (prod.risk_tolerance, prod.max_concurrent) == (0.05, 1)
    assert prod.tenants["meetmind-prod"] == TenantSettings(enabled=True, max_concurrent=2)
    assert dev.agent is not None and dev.agent.token_env == "SELF_BUILDING_MCP_API_KEY"
    assert stg.proposals_file is not None and Path(stg.proposals_file).exists()
    assert not stg.autonomous


def test_a_full_section_parses(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """\
  staging:
    proposals: props/staging.yaml
    deploy_command: [./deploy.sh, --env, staging]
    rollback_command: [./rollback.sh]
    command_timeout: 30s
    cycle_interval: 30m
    analysis_window: 2h
    max_improvements: 3
    quality_threshold: 90%
    risk_tolerance: 0.08
    max_concurrent: 3
    monitoring: 1h
    rollback_threshold: 8%
    metric: quantile(0.95, http_request_duration_seconds) * 1000
    better: higher
    autonomous: true
    component_generation: true
    tenants:
      meetmind-dev: true
      agent-svea-dev: {enabled: false}
      felicias: {max_concurrent: 1}
""",
    )
    s = cfg.improvements["staging"]
    assert s.proposals_file == str(tmp_path / "props/staging.yaml")
    assert s.deploy_command == ("./deploy.sh", "--env", "staging") and s.command_timeout == 30.0
    assert (s.cycle_interval, s.analysis_window_hours, s.max_improvements) == (1800.0, 2.0, 3)
    assert (s.quality_threshold, s.risk_tolerance, s.rollback_threshold) == (0.9, 0.08, 0.08)
    assert (s.max_concurrent, s.monitoring, s.better, s.autonomous) == (3, 3600.0, "higher", True)
    assert s.tenants == {
        "meetmind-dev": TenantSettings(True),
        "agent-svea-dev": TenantSettings(False),
        "felicias": TenantSettings(True, 1),
    }
    assert s.where.endswith(":9")  # where the mapping starts


def test_no_section_is_no_queue(tmp_path: Path) -> None:
    assert load(tmp_path, "").improvements == {}


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ("  prod:\n    proposals: p.yaml\n", "improvements.prod", "unknown environment 'prod'"),
        (
            "  staging:\n    proposals: p.yaml\n    agent: {url: 'http://127.0.0.1:8004/mcp'}\n",
            "improvements.staging.proposals",
            "either agent or proposals",
        ),
        ("  staging:\n    cycle_interval: 1h\n", "improvements.staging", "needs agent"),
        (
            "  staging:\n    proposals: p.yaml\n    quality_threshold: 85\n",
            "improvements.staging.quality_threshold",
            "0..1",
        ),
        (
            "  staging:\n    proposals: p.yaml\n    risk_tolerance: -0.1\n",
            "improvements.staging.risk_tolerance",
            "negative",
        ),
        (
            "  staging:\n    proposals: p.yaml\n    max_concurrent: 0\n",
            "improvements.staging.max_concurrent",
            "1..1000",
        ),
        (
            "  staging:\n    proposals: p.yaml\n    monitoring: 30\n",
            "improvements.staging.monitoring",
            "add a unit",
        ),
        (
            "  staging:\n    proposals: p.yaml\n    better: faster\n",
            "improvements.staging.better",
            "lower, higher",
        ),
        (
            "  staging:\n    proposals: p.yaml\n    metric: 'quantile(('\n",
            "improvements.staging.metric",
            "bad query",
        ),
        ("  lab:\n    proposals: p.yaml\n    metric: up\n", "improvements.lab.metric", "no metrics source"),
        (
            "  staging:\n    proposals: p.yaml\n    autonomus: true\n",
            "improvements.staging.autonomus",
            "did you mean",
        ),
        ("  staging:\n    agent: {url: 'ftp://x'}\n", "improvements.staging.agent.url", "http"),
        ("  staging:\n    agent: {token_env: X}\n", "improvements.staging.agent.url", "required"),
        (
            "  staging:\n    agent: {url: 'http://127.0.0.1:1/mcp'}\n    deploy_command: [x]\n",
            "improvements.staging.deploy_command",
            "for a proposals file",
        ),
        (
            "  staging:\n    proposals: p.yaml\n    tenants: {a: {enabled: maybe}}\n",
            "improvements.staging.tenants.a.enabled",
            "true or false",
        ),
    ],
)
def test_mistakes_are_named_by_path(tmp_path: Path, section: str, key: str, message: str) -> None:
    found = issues(tmp_path, section)
    assert len(found) == 1, "\n".join(map(str, found))
    assert found[0].key == key and message in found[0].message, str(found[0])
    assert found[0].line is not None
