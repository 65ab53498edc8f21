"""The `alarms.rules` section: metric thresholds watched in an environment, whatever rollout runs.

Rule names are unique, each rule's environment must have a metrics source, and a rule needs a bound
(max or min): a rule without one could never fire.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..model import AlarmRule, Environment
from .fields import Fields
from .references import check_metrics_env, checked_query, metrics_kind
from .values import parse_duration
from .yamlsrc import YamlSource


def read_alarm_rules(src: YamlSource, main: Fields, envs: Mapping[str, Environment]) -> tuple[AlarmRule, ...]:
    a = main.mapping("alarms", ("rules",))
    items = a.sequence("rules") if a is not None else []
    rules: list[AlarmRule] = []
    seen: dict[str, str] = {}
    keys = ("name", "environment", "query", "max", "min", "for", "severity")
    for key, n in items:
        r = src.mapping(n, key, keys, required=("name", "environment", "query"))
        if r is None:
            continue
        name, env = r.text("name"), r.text("environment")
        if name in seen:
            r.issue("name", f"alarm rule '{name}' is already defined at {seen[name]}")
        elif name:
            seen[name] = r.where()
        check_metrics_env(r, "environment", env, envs)
        query = checked_query(
            r, kind=metrics_kind(envs, env), why_not="an alarm rule watches an environment, not a colour"
        )
        lo, hi = r.number("min"), r.number("max")
        if not {"min", "max"} & set(r.keys):
            r.issue(None, "an alarm rule needs max or min")
        rules.append(
            AlarmRule(
                name=name or "",
                environment=env or "",
                query=query or "",
                max=hi,
                min=lo,
                for_=r.parsed("for", parse_duration, 0.0),
                severity=r.choice("severity", ("info", "warning", "critical"), "warning"),
                where=r.where(),
            )
        )
    return tuple(rules)
