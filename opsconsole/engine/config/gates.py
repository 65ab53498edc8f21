"""A phase's gates and guards, one mapping per check, with the keys of each kind.

A key that belongs to another kind is reported as not applying to this one rather than as unknown,
and gate and guard names share one namespace per phase so that every check can be told apart.
"""

from __future__ import annotations

import shlex

from yaml.nodes import Node, SequenceNode

from ..model import GateSpec
from .fields import Fields
from .issues import suggest
from .references import Catalog, check_metrics_env, checked_query, metrics_kind
from .values import fraction, http_url, parse_duration, positive_duration
from .yamlsrc import YamlSource

_GATE_COMMON = (
    "kind",
    "name",
    "on_missing",
    "failure_limit",
    "inconclusive_limit",
    "escalate_after",
    "interval",
    "timeout",
)
_GATE_KINDS: dict[str, tuple[str, ...]] = {
    "metric": ("query", "source", "min", "max", "max_increase", "unit"),
    "health": ("url", "retries", "expect_status", "body_contains"),
    "smoke": ("command",),
    "soak": ("min",),
    "alarms": ("none_firing",),
    "checklist": ("items",),
    "improvements": ("source", "tenant", "min_kept", "min_deployed", "max_rollback_rate"),
    "backup": ("target", "max_age"),
}
_GATE_KEYS = frozenset(_GATE_COMMON).union(*_GATE_KINDS.values())
_GATE_LATER: tuple[str, ...] = ()
_NOT_GUARDS = {
    "soak": "a soak never fails, so it cannot guard; put it under gates:",
    "checklist": "a checklist is ticked once, so it cannot guard; put it under gates:",
    "backup": "a backup's age says nothing about what users see, so it cannot guard; put it under gates:",
}


def read_checks(
    src: YamlSource,
    phase: Fields,
    section: str,
    env: str | None,
    catalog: Catalog,
    names: dict[str, str],
    no_colours: str | None = None,
) -> tuple[GateSpec, ...]:
    """The phase's gates or guards; `names` is shared by both, so every check has its own name.
    `no_colours`: why the phase's metric queries may not say `{colour}` / `{port}` (None: they may)."""
    items = phase.sequence(section)
    out: list[GateSpec] = []
    for key, n in items:
        spec = _gate(src, n, key, env, catalog, guard=section == "guards", no_colours=no_colours)
        if spec is None:
            continue
        if spec.name and spec.name in names:
            src.issue(
                n,
                key + ".name",
                f"'{spec.name}' is already a check name in this phase ({names[spec.name]}); give one a name:",
            )
            continue
        names[spec.name] = spec.where
        out.append(spec)
    return tuple(out)


def _gate(
    src: YamlSource,
    node: Node,
    key: str,
    env: str | None,
    catalog: Catalog,
    *,
    guard: bool,
    no_colours: str | None = None,
) -> GateSpec | None:
    f = src.mapping(node, key)
    if f is None:
        return None
    kinds = tuple(_GATE_KINDS)
    kind = f.text("kind")
    if kind is None:
        if "kind" not in f.keys or "kind" in f.empty:
            f.missing("kind", "one of " + ", ".join(kinds))
        f.only(_GATE_KEYS)
        return None
    if kind not in _GATE_KINDS:
        if kind == "approval":
            f.issue("kind", "approval is not a gate kind: use the phase's approval: key")
        elif kind in _GATE_LATER:
            f.issue("kind", f"kind '{kind}' is not available yet (available: {', '.join(kinds)})")
        else:
            f.issue("kind", f"unknown kind '{kind}'{suggest(kind, kinds)}")
        f.only(_GATE_KEYS)
        return None
    own = set(_GATE_COMMON) | set(_GATE_KINDS[kind])
    article = "an" if kind[0] in "aeiou" else "a"
    elsewhere = {k: f"'{k}' does not apply to {article} {kind} check" for k in _GATE_KEYS - own}
    f.only(own, elsewhere)
    if guard and kind in _NOT_GUARDS:
        f.issue("kind", _NOT_GUARDS[kind])
    common = {
        "on_missing": f.choice("on_missing", ("hold", "fail", "pass"), "hold"),
        "failure_limit": f.integer("failure_limit", 1, minimum=1),
        "inconclusive_limit": f.integer("inconclusive_limit", None, minimum=1),
        "escalate_after": f.parsed("escalate_after", positive_duration),
        "interval": f.parsed("interval", positive_duration),
        "timeout": f.parsed("timeout", positive_duration, 5.0),
        "where": f.where(),
    }
    build = {"health": _health_gate, "smoke": _smoke_gate}.get(kind)
    if kind == "metric":
        specific = _metric_gate(src, f, env, catalog, no_colours)
    elif build is not None:
        specific = build(src, f, env, catalog)
    elif kind == "soak":
        f.require("min")
        specific = {"name": f.text("name", "soak"), "duration": f.parsed("min", parse_duration, 0.0)}
    elif kind == "improvements":
        specific = _improvements_gate(f, env, catalog)
    elif kind == "backup":
        specific = _backup_gate(f, catalog)
    elif kind == "alarms":
        f.require("none_firing")
        specific = {
            "name": f.text("name", "alarms"),
            "none_firing": tuple(f.texts("none_firing", [], nonempty=True)),
        }
    else:
        f.require("items")
        items = f.texts("items", [], nonempty=True)
        if len(set(items)) < len(items):
            f.issue("items", "checklist items must differ (each is ticked by name)")
        specific = {"name": f.text("name", "checklist"), "items": tuple(items)}
    return GateSpec(kind=kind, **common, **specific)  # type: ignore[arg-type]


def _metric_gate(
    src: YamlSource, f: Fields, env: str | None, catalog: Catalog, no_colours: str | None
) -> dict[str, object]:
    f.require("name", "query")
    source = f.text("source")
    if source is not None:
        check_metrics_env(f, "source", source, catalog.environments)
    elif (
        env is not None
        and catalog.environments
        and env in catalog.environments
        and catalog.environments[env].metrics is None
    ):
        f.issue(None, f"environment '{env}' has no metrics source (add metrics: to it, or set source:)")
    lo, hi = f.number("min"), f.number("max")
    increase = f.parsed("max_increase", fraction)
    if not {"min", "max", "max_increase"} & set(f.keys):
        f.issue(None, "a metric check needs min, max or max_increase")
    if lo is not None and hi is not None and lo > hi:
        f.issue("min", f"min {lo:g} is above max {hi:g}")
    return {
        "name": f.text("name", ""),
        "query": checked_query(
            f,
            kind=metrics_kind(catalog.environments, source or env),
            colours=no_colours is None,
            why_not=no_colours or "",
        ),
        "source": source,
        "min": lo,
        "max": hi,
        "max_increase": increase,
        "unit": f.choice("unit", ("", "%", "ms", "s"), ""),
    }


def _health_gate(src: YamlSource, f: Fields, env: str | None, catalog: Catalog) -> dict[str, object]:
    f.require("url")
    return {
        "name": f.text("name", "health"),
        "url": f.parsed("url", http_url),
        "retries": f.integer("retries", 0, minimum=0),
        "expect_status": f.integer("expect_status", 200, minimum=100, maximum=599),
        "body_contains": f.text("body_contains"),
    }


def _smoke_gate(src: YamlSource, f: Fields, env: str | None, catalog: Catalog) -> dict[str, object]:
    f.require("command")
    node = f.get("command")
    argv: list[str] = []
    if isinstance(node, SequenceNode):
        argv = src.texts(node, f.path("command"), nonempty=True) or []
    elif node is not None:
        text = src.text(node, f.path("command"))
        try:
            argv = shlex.split(text) if text else []
            if text is not None and not argv:
                f.issue("command", "must not be empty")
        except ValueError as exc:
            f.issue("command", f"cannot split into words: {exc}")
    return {"name": f.text("name", "smoke"), "command": tuple(argv)}


def _improvements_gate(f: Fields, env: str | None, catalog: Catalog) -> dict[str, object]:
    source = f.text("source")
    envs = catalog.environments
    if source is not None and envs is not None and source not in envs:
        f.issue("source", f"unknown environment '{source}'{suggest(source, envs)}")
    elif (queue := source or env) is not None and catalog.queues is not None and queue not in catalog.queues:
        f.issue(
            "source" if source else None,
            f"environment '{queue}' has no improvement queue (add it under improvements: in the main file)",
        )
    wanted = {"min_kept", "min_deployed", "max_rollback_rate"} & set(f.keys)
    if not wanted:
        f.issue(None, "an improvements check needs min_kept, min_deployed or max_rollback_rate")
    return {
        "name": f.text("name", "improvements"),
        "source": source,
        "tenant": f.text("tenant"),
        "min_kept": f.integer("min_kept", None, minimum=0),
        "min_deployed": f.integer("min_deployed", None, minimum=0),
        "max_rollback_rate": f.parsed("max_rollback_rate", fraction),
    }


def _backup_gate(f: Fields, catalog: Catalog) -> dict[str, object]:
    f.require("target", "max_age")
    target = f.text("target")
    check_backup_target(f, "target", target, catalog)
    return {
        "name": f.text("name", f"backup-{target}" if target else "backup"),
        "target": target,
        "max_age": f.parsed("max_age", positive_duration),
    }


def check_backup_target(f: Fields, key: str, target: str | None, catalog: Catalog) -> None:
    """`target` must name a `backups:` entry (when the targets are known here)."""
    known = catalog.backups
    if target is None or known is None or target in known:
        return
    if not known:
        f.issue(key, f"unknown backup target '{target}': there is no backups: section in the main file")
    else:
        f.issue(key, f"unknown backup target '{target}'{suggest(target, sorted(known))}")
