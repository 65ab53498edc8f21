"""Flag definitions: the main file's `flags:` section, inline or in a file of its own (flags.yaml).

Flag names double as environment variable names, so they are restricted to letters, digits and '_'.
A `depends_on` must name a defined flag, and dependency cycles are reported once each, as the path
that closes them.
"""

from __future__ import annotations

import re
from pathlib import Path

from yaml.nodes import Node, ScalarNode

from ..flags import dependency_cycles
from ..model import FlagDef, FlagValue
from .fields import Fields
from .issues import suggest
from .values import resolve_path
from .yamlsrc import YamlSource

_FLAG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FLAG_KEYS = ("type", "default", "description", "risk", "owner", "depends_on")


def read_flags(src: YamlSource, main: Fields, base: Path) -> dict[str, FlagDef]:
    """The flags defined in the main file, or in the file its `flags:` names (relative to `base`)."""
    node = main.get("flags")
    if node is None:
        return {}
    if isinstance(node, ScalarNode):
        text = src.text(node, main.path("flags"))
        if text is None:
            return {}
        fpath = resolve_path(base, text)
        fsrc, root = YamlSource.open(fpath, str(fpath), src.variables, src.issues)
        if root is None:
            return {}
        top = fsrc.mapping(root, "", ("flags",), required=("flags",))
        defs_node = top.get("flags") if top is not None else None
        return _flag_defs(fsrc, defs_node, "flags") if defs_node is not None else {}
    return _flag_defs(src, node, main.path("flags"))


def _flag_defs(src: YamlSource, node: Node, key: str) -> dict[str, FlagDef]:
    f = src.mapping(node, key)
    if f is None:
        return {}
    defs: dict[str, FlagDef] = {}
    parents: dict[str, Node] = {}
    for name, dnode in f:
        path = f.path(name)
        if not _FLAG_NAME.fullmatch(name):
            src.issue(
                f.keys[name],
                path,
                "flag names use letters, digits and '_' (the name is also an environment variable)",
            )
        d = src.mapping(dnode, path, _FLAG_KEYS)
        if d is None:
            continue
        ftype = d.choice("type", ("boolean", "percentage"), "boolean")
        default = _flag_default(src, d, ftype)
        depends_on = d.text("depends_on")
        if depends_on is not None:
            parents[name] = d.get("depends_on")  # type: ignore[assignment]
        defs[name] = FlagDef(
            name=name,
            type=ftype,
            default=default,
            description=d.text("description", ""),
            risk=d.choice("risk", ("low", "medium", "high"), "low"),
            owner=d.text("owner", ""),
            depends_on=depends_on,
            where=src.where(dnode),
        )
    for name, pnode in parents.items():
        parent = defs[name].depends_on
        if parent not in defs:
            src.issue(
                pnode, f.path(name) + ".depends_on", f"unknown flag '{parent}'{suggest(str(parent), defs)}"
            )
    for cycle in dependency_cycles(defs):
        src.issue(
            parents[cycle[0]], f.path(cycle[0]) + ".depends_on", "dependency cycle: " + " -> ".join(cycle)
        )
    return defs


def _flag_default(src: YamlSource, d: Fields, ftype: str) -> FlagValue:
    node = d.get("default")
    if node is None:
        return 0 if ftype == "percentage" else False
    if ftype == "boolean":
        return bool(src.boolean(node, d.path("default")))
    ok, raw = src.scalar(node, d.path("default"), "a percentage")
    if isinstance(raw, bool):
        return 100 if raw else 0
    return (src.integer(node, d.path("default"), minimum=0, maximum=100) if ok else None) or 0
