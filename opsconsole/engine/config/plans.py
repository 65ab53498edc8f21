"""Plans: the `plans:` list of the main file (inline plans, files and globs) and plan files read alone.

A plan's name is unique across all files; a file named twice (say by two overlapping globs) is read
once. The phases of a plan are read by `phases.py`.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping
from pathlib import Path

from yaml.nodes import Node, ScalarNode

from ..model import Environment, FlagDef, Phase, Plan
from .fields import Fields
from .issues import ConfigIssue, raise_if_any
from .phases import read_phase
from .references import Catalog
from .values import name_checker, resolve_path
from .yamlsrc import YamlSource


def load_plan(
    path: str | Path,
    variables: Mapping[str, str] | None = None,
    *,
    environments: Mapping[str, Environment] | None = None,
    flags: Mapping[str, FlagDef] | None = None,
) -> Plan:
    """Read and check one plan file. Environment and flag references are checked only against what is
    passed in (a plan read on its own cannot know them)."""
    path = Path(path)
    issues: list[ConfigIssue] = []
    catalog = Catalog(
        dict(environments) if environments is not None else None, dict(flags) if flags is not None else None
    )
    src, root = YamlSource.open(path, str(path), dict(variables or {}), issues)
    plan = read_plan(src, root, "", catalog) if root is not None else None
    raise_if_any(issues, src.file)
    assert plan is not None
    return plan


def read_plans(src: YamlSource, main: Fields, base: Path, catalog: Catalog) -> dict[str, Plan]:
    items = main.sequence("plans")
    plans: dict[str, Plan] = {}
    loaded: set[Path] = set()

    def add(plan: Plan | None, psrc: YamlSource, pnode: Node, key: str) -> None:
        if plan is None or not plan.name:
            return
        if plan.name in plans:
            psrc.issue(pnode, key, f"plan '{plan.name}' is already defined at {plans[plan.name].where}")
        else:
            plans[plan.name] = plan

    for key, n in items:
        if not isinstance(n, ScalarNode):
            add(read_plan(src, n, key, catalog), src, n, key + ".name")
            continue
        text = src.text(n, key)
        if text is None:
            continue
        pattern = resolve_path(base, text)
        if glob.has_magic(str(pattern)):
            paths = [Path(p) for p in sorted(glob.glob(str(pattern)))]
            if not paths:
                src.issue(n, key, f"'{text}' matches no file")
        else:
            paths = [pattern]
        for p in paths:
            if p.resolve() in loaded:
                continue
            loaded.add(p.resolve())
            psrc, root = YamlSource.open(p, str(p), src.variables, src.issues)
            if root is not None:
                add(read_plan(psrc, root, "", catalog), psrc, root, "name")
    return plans


def read_plan(src: YamlSource, node: Node, key: str, catalog: Catalog) -> Plan | None:
    f = src.mapping(node, key, ("name", "description", "phases"), required=("name", "phases"))
    if f is None:
        return None
    name = f.parsed("name", name_checker("plan"), "")
    phases: list[Phase] = []
    seen: dict[str, int] = {}
    for pkey, n in f.sequence("phases", nonempty=True):
        phase = read_phase(src, n, pkey, catalog)
        if phase is None:
            continue
        if phase.name in seen:
            src.issue(
                n, pkey + ".name", f"phase '{phase.name}' is already defined at line {seen[phase.name]}"
            )
        seen[phase.name] = n.start_mark.line + 1
        phases.append(phase)
    return Plan(name=name, phases=tuple(phases), description=f.text("description", ""), where=f.where())
