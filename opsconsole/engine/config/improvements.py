"""The `improvements:` section: per environment, where proposals come from and the queue's rules.

The numbers are the self-building agent's rollout settings (quality threshold, risk tolerance,
monitoring window, rollback degradation threshold...), checked for range here so a typo such as
`quality_threshold: 85` is reported at load rather than silently refusing every proposal.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from yaml.nodes import ScalarNode

from ..improvements.model import AgentEndpoint, ImprovementSettings, TenantSettings
from ..improvements.protocol import MAX_ITEMS
from ..model import Environment
from .fields import Fields
from .issues import suggest
from .references import checked_query
from .values import fraction, http_url, positive_duration, resolve_path
from .yamlsrc import YamlSource

_KEYS = (
    "agent",
    "proposals",
    "deploy_command",
    "rollback_command",
    "command_timeout",
    "cycle_interval",
    "analysis_window",
    "max_improvements",
    "quality_threshold",
    "risk_tolerance",
    "max_concurrent",
    "monitoring",
    "rollback_threshold",
    "metric",
    "better",
    "autonomous",
    "component_generation",
    "tenants",
)


def read_improvements(
    src: YamlSource, main: Fields, base: Path, environments: Mapping[str, Environment]
) -> dict[str, ImprovementSettings]:
    f = main.mapping("improvements")
    out: dict[str, ImprovementSettings] = {}
    for name, node in f or ():
        path = f.path(name) if f else name
        if name not in environments:
            src.issue(node, path, f"unknown environment '{name}'{suggest(name, environments)}")
            continue
        e = src.mapping(node, path, _KEYS)
        if e is not None:
            out[name] = _settings(src, e, name, base, environments[name])
    return out


def _settings(src: YamlSource, e: Fields, name: str, base: Path, env: Environment) -> ImprovementSettings:
    d = ImprovementSettings(environment=name)  # the defaults
    agent = _agent(e)
    proposals = e.text("proposals")
    if agent is not None and proposals is not None:
        e.issue(
            "proposals", "set either agent or proposals, not both: one source of proposals per environment"
        )
    elif "agent" not in e and proposals is None:
        e.issue(None, "needs agent (an MCP url) or proposals (a file of proposals)")
    deploy = e.texts("deploy_command", [], nonempty=True)
    rollback = e.texts("rollback_command", [], nonempty=True)
    if "agent" in e:
        for key in ("deploy_command", "rollback_command"):
            if key in e:
                e.issue(key, f"{key} is for a proposals file; an agent deploys and rolls back itself")
    metric = checked_query(
        e,
        "metric",
        kind=env.metrics.kind if env.metrics is not None else None,
        why_not="the improvement queue judges an environment, not a colour",
    )
    if metric and env.metrics is None:
        e.issue("metric", f"environment '{name}' has no metrics source to judge improvements on")
    return ImprovementSettings(
        environment=name,
        agent=agent,
        proposals_file=None if proposals is None else str(resolve_path(base, proposals)),
        deploy_command=tuple(deploy),
        rollback_command=tuple(rollback),
        command_timeout=e.parsed("command_timeout", positive_duration, d.command_timeout),
        cycle_interval=e.parsed("cycle_interval", positive_duration, d.cycle_interval),
        analysis_window_hours=e.parsed("analysis_window", positive_duration, d.analysis_window_hours * 3600)
        / 3600,
        max_improvements=e.integer("max_improvements", d.max_improvements, minimum=1, maximum=MAX_ITEMS),
        quality_threshold=_unit(e, "quality_threshold", d.quality_threshold),
        risk_tolerance=_unit(e, "risk_tolerance", d.risk_tolerance),
        max_concurrent=e.integer("max_concurrent", d.max_concurrent, minimum=1, maximum=1000),
        monitoring=e.parsed("monitoring", positive_duration, d.monitoring),
        rollback_threshold=_unit(e, "rollback_threshold", d.rollback_threshold),
        metric=metric or "",
        better=e.choice("better", ("lower", "higher"), d.better),
        autonomous=e.boolean("autonomous", d.autonomous),
        component_generation=e.boolean("component_generation", d.component_generation),
        tenants=_tenants(src, e),
        where=e.where(),
    )


def _agent(e: Fields) -> AgentEndpoint | None:
    a = e.mapping("agent", ("url", "token_env", "timeout"), required=("url",))
    if a is None:
        return None
    url = a.parsed("url", http_url)
    token_env = a.text("token_env")
    if token_env is not None and not token_env.replace("_", "A").isalnum():
        a.issue("token_env", f"expected the name of an environment variable, got {token_env!r}")
    timeout = a.parsed("timeout", positive_duration, 10.0)
    if url is None:
        return None
    return AgentEndpoint(url=url, token_env=token_env, timeout=timeout)


def _unit(f: Fields, key: str, default: float) -> float:
    """A fraction 0..1 written as 0.85 or 85%."""
    value: float = f.parsed(key, fraction, default)
    if value > 1.0:
        f.issue(key, f"expected a fraction 0..1 (or a percentage up to 100%), got {value:g}")
        return default
    return value


def _tenants(src: YamlSource, e: Fields) -> dict[str, TenantSettings]:
    t = e.mapping("tenants")
    out: dict[str, TenantSettings] = {}
    for name, node in t or ():
        path = t.path(name) if t else name
        if isinstance(node, ScalarNode):  # `meetmind-prod: true`, short for {enabled: true}
            enabled = src.boolean(node, path)
            if enabled is not None:
                out[name] = TenantSettings(enabled=enabled)
            continue
        m = src.mapping(node, path, ("enabled", "max_concurrent"))
        if m is None:
            continue
        out[name] = TenantSettings(
            enabled=m.boolean("enabled", True),
            max_concurrent=m.integer("max_concurrent", None, minimum=1, maximum=1000),
        )
    return out


PHASE_KEYS = (
    "cycle_interval",
    "quality_threshold",
    "risk_tolerance",
    "max_concurrent",
    "monitoring",
    "rollback_threshold",
    "tenants",
)
"""What a plan's phase may set for its environment's queue while it is current: the numbers the
seed changes from phase to phase. Where proposals come from and the judged metric stay with the
environment."""


def read_phase_rules(src: YamlSource, phase: Fields) -> tuple[tuple[str, object], ...]:
    """A phase's `improvements:` as (ImprovementSettings field, value) pairs, only those given."""
    f = phase.mapping("improvements", PHASE_KEYS)
    if f is None:
        return ()
    d = ImprovementSettings(environment="")
    parsed: dict[str, object] = {}
    if "cycle_interval" in f:
        parsed["cycle_interval"] = f.parsed("cycle_interval", positive_duration, d.cycle_interval)
    for key in ("quality_threshold", "risk_tolerance", "rollback_threshold"):
        if key in f:
            parsed[key] = _unit(f, key, getattr(d, key))
    if "max_concurrent" in f:
        parsed["max_concurrent"] = f.integer("max_concurrent", d.max_concurrent, minimum=1, maximum=1000)
    if "monitoring" in f:
        parsed["monitoring"] = f.parsed("monitoring", positive_duration, d.monitoring)
    if "tenants" in f:
        parsed["tenants"] = _tenants(src, f)
    return tuple(parsed.items())
