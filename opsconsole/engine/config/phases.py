"""One phase of a plan: its environment, the flags it sets, its strategy and its approval.

References are checked against the catalog: an unknown environment or flag, or flags in an
environment with no flag target to write them to. Gates and guards are read by `gates.py`.
"""

from __future__ import annotations

from yaml.nodes import Node, SequenceNode

from ..deploy.model import ServiceSpec
from ..model import ApprovalSpec, FlagValue, Phase, Role, Strategy
from .fields import Fields
from .gates import check_backup_target, read_checks
from .improvements import read_phase_rules
from .issues import suggest
from .nodes import item
from .references import Catalog
from .services import SWITCH_NEEDED
from .values import STEP_PRESETS, parse_duration, parse_steps
from .yamlsrc import YamlSource

_PHASE_KEYS = (
    "name",
    "environment",
    "flags",
    "gates",
    "guards",
    "strategy",
    "approval",
    "improvements",
    "backup_before",
)


def read_phase(src: YamlSource, node: Node, key: str, catalog: Catalog) -> Phase | None:
    f = src.mapping(node, key, _PHASE_KEYS, required=("name", "environment"))
    if f is None:
        return None
    name = f.text("name", "")
    env = f.text("environment")
    envs = catalog.environments
    known = envs.get(env) if envs is not None and env is not None else None
    if env is not None and envs is not None and known is None:
        f.issue("environment", f"unknown environment '{env}'{suggest(env, envs)}")
    flags = _phase_flags(src, f, catalog)
    strategy = _strategy(src, f, catalog)
    if known is not None and known.flags is None:
        if flags:
            f.issue(
                "flags", f"environment '{env}' has no flag target to write these flags to (add flags: to it)"
            )
        if strategy is not None and strategy.flag:
            f.issue(
                "strategy", f"environment '{env}' has no flag target for the canary flag (add flags: to it)"
            )
    if "improvements" in f and env is not None and catalog.queues is not None and env not in catalog.queues:
        f.issue(
            "improvements",
            f"environment '{env}' has no improvement queue (add it under improvements: in the main file)",
        )
    backup_before = f.text("backup_before")
    check_backup_target(f, "backup_before", backup_before, catalog)
    names: dict[str, str] = {}
    no_colours = _no_colours(strategy)
    gates = read_checks(src, f, "gates", env, catalog, names, no_colours)
    guards = read_checks(src, f, "guards", env, catalog, names, no_colours)
    return Phase(
        name=name,
        environment=env or "",
        flags=flags,
        gates=gates,
        guards=guards,
        strategy=strategy,
        approval=_approval(src, f),
        improvements=read_phase_rules(src, f),
        backup_before=backup_before,
    )


def _no_colours(strategy: Strategy | None) -> str | None:
    """Why the phase's metric queries may not name a colour (`{colour}`, `{port}`); None when they
    may: a blue_green phase deploying a service, whose colours have ports."""
    if strategy is None:
        return "this phase has no strategy"
    if strategy.kind != "blue_green":
        return f"this phase's strategy is {strategy.kind}"
    if not strategy.service:
        return "this blue_green phase deploys no service"
    return None


def _phase_flags(src: YamlSource, phase: Fields, catalog: Catalog) -> dict[str, FlagValue]:
    f = phase.mapping("flags")
    out: dict[str, FlagValue] = {}
    known = catalog.flags
    for name, vnode in f or ():
        key = f.path(name) if f else name
        if known is not None and name not in known:
            src.issue(f.keys[name] if f else vnode, key, f"unknown flag '{name}'{suggest(name, known)}")
            continue
        ftype = known[name].type if known is not None else None
        ok, value = src.scalar(vnode, key, "true or false")
        if not ok:
            continue
        percentage = isinstance(value, int) and ftype != "boolean" and 0 <= value <= 100
        if isinstance(value, bool) or percentage:
            out[name] = value
        elif ftype == "boolean":
            src.issue(vnode, key, f"'{name}' is a boolean flag: expected true or false, got {value!r}")
        else:
            src.issue(vnode, key, f"expected true, false or a percentage 0..100, got {value!r}")
    return out


def _strategy(src: YamlSource, phase: Fields, catalog: Catalog) -> Strategy | None:
    f = phase.mapping(
        "strategy", ("kind", "flag", "steps", "step_wait", "service", "image"), required=("kind",)
    )
    if f is None:
        return None
    kind = f.choice("kind", ("canary", "blue_green", "rolling", "recreate"))
    service, image = f.text("service"), f.text("image")
    if service is not None:
        if kind not in ("recreate", "rolling", "blue_green", "canary"):
            f.issue(
                "service",
                f"Docker services are deployed by recreate, rolling, blue_green or canary, not {kind}",
            )
        elif catalog.services is not None and service not in catalog.services:
            f.issue("service", f"unknown service '{service}'{suggest(service, sorted(catalog.services))}")
        elif catalog.services is not None:
            _check_service(f, kind, catalog.services[service])
        if image is None:
            f.missing("image", "the tag to deploy")
    elif image is not None:
        f.issue("image", "an image is deployed to a service: set service too")
    flag = f.text("flag")
    known = catalog.flags
    if kind == "canary" and "flag" not in f:
        f.missing("flag", "the percentage flag the canary moves")
    if flag is not None and known is not None:
        if flag not in known:
            f.issue("flag", f"unknown flag '{flag}'{suggest(flag, known)}")
        elif kind == "canary" and known[flag].type != "percentage":
            f.issue("flag", f"a canary moves a percentage flag; '{flag}' is a {known[flag].type} flag")
    steps = _steps(src, f)
    if kind == "canary" and service is not None and steps and steps[0] != 0:
        # The new version is not running until the phase's deploy has started and checked it: the
        # flag stays at 0 until then (the first step), then moves as the steps say.
        steps = (0, *steps)
    return Strategy(
        kind=kind or "canary",
        flag=flag,
        steps=steps,
        step_wait=f.parsed("step_wait", parse_duration, 0.0),
        service=service,
        image=image,
    )


def _check_service(f: Fields, kind: str | None, spec: ServiceSpec) -> None:
    """What the strategy needs of the service: blue_green its switch, a canary its colours' ports."""
    colours = spec.blue_green
    if kind == "blue_green" and colours is None:
        f.issue(
            "service",
            f"service '{spec.name}' ({spec.where}) has no blue_green: section: "
            "a blue_green phase needs each colour's ports and a switch",
        )
    elif kind == "blue_green" and colours is not None and colours.traffic_switch is None:
        f.issue(
            "service",
            f"service '{spec.name}' has no switch ({colours.where}): {SWITCH_NEEDED}",
        )
    elif kind == "canary" and colours is None:
        f.issue(
            "service",
            f"service '{spec.name}' ({spec.where}) has no colours' ports: a canary runs the new version "
            "beside the old one (add canary: {ports: {blue: [...], green: [...]}} to the service)",
        )


def _steps(src: YamlSource, f: Fields) -> tuple[int, ...]:
    node = f.get("steps")
    if node is None:
        return STEP_PRESETS["safe"]
    if isinstance(node, SequenceNode):
        values = [
            src.integer(n, item(f.path("steps"), i), minimum=0, maximum=100) for i, n in enumerate(node.value)
        ]
        ints = [v for v in values if v is not None]
        if len(ints) < len(values):
            return STEP_PRESETS["safe"]
        try:
            return parse_steps(ints)
        except ValueError as exc:
            f.issue("steps", str(exc))
            return STEP_PRESETS["safe"]
    steps: tuple[int, ...] = f.parsed("steps", parse_steps, STEP_PRESETS["safe"])
    return steps


def _approval(src: YamlSource, phase: Fields) -> ApprovalSpec:
    f = phase.mapping("approval", ("required", "role", "distinct_approvers"))
    if f is None:
        return ApprovalSpec()
    return ApprovalSpec(
        required=f.boolean("required", False),
        role=Role.parse(f.choice("role", ("approver", "admin"), "approver")),
        distinct_approvers=f.integer("distinct_approvers", 1, minimum=1),
    )
