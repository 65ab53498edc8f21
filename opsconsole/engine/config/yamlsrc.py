"""Reading YAML while remembering where every value came from.

PyYAML's `safe_load` throws away line numbers and silently keeps the last of two duplicate keys, so a
configuration error could only say *what* is wrong. Here the file is composed into nodes and read by
hand: every issue carries the file and the 1-based line of the offending key or value, unknown keys
get a did-you-mean, and duplicates are reported. Readers never stop at the first problem; they record
an issue, return None, and the caller carries on with a default so one run reports everything.

YamlSource reads single nodes; the entries of a mapping are read by name through `Fields`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from . import bounds
from .fields import Fields
from .interpolation import interpolate
from .issues import ConfigIssue
from .nodes import TAG, child, describe, item, line_of

T = TypeVar("T")

# libyaml's parser when present: same nodes, marks and tags as SafeLoader, several times faster (the
# console reads its config before the first frame).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = TAG + "merge"
_SCALARS = SafeConstructor()


class YamlSource:
    """One file being read: its display name, the variables its strings may use, and the shared list
    of issues of the whole load."""

    def __init__(self, file: str, variables: Mapping[str, str], issues: list[ConfigIssue]) -> None:
        self.file = file
        self.variables = variables
        self.issues = issues
        self._merges = bounds.Merges()
        self._checked: dict[int, Node] = {}

    # ---------------------------------------------------------------------------------- loading

    @classmethod
    def open(
        cls, path: Path, display: str, variables: Mapping[str, str], issues: list[ConfigIssue]
    ) -> tuple[YamlSource, Node | None]:
        """Compose `path`; the root node is None (with an issue recorded) when it cannot be used."""
        own = {**variables, "CONFIG_DIR": str(path.parent.absolute())}
        src = cls(display, own, issues)
        try:
            text = bounds.read_text(path)
        except FileNotFoundError:
            src.issue(None, "", "no such file")
            return src, None
        except bounds.Exceeded as exc:
            src.issue(None, "", exc.message)
            return src, None
        except (OSError, UnicodeDecodeError) as exc:
            src.issue(None, "", f"cannot read: {exc}")
            return src, None
        try:
            bounds.count_values(text, _LOADER)
            root = yaml.compose(text, Loader=_LOADER)
            if root is not None:
                bounds.check_expansion(root, src._merges)
        except bounds.Exceeded as exc:
            issues.append(ConfigIssue(display, exc.line, "", exc.message))
            return src, None
        except yaml.MarkedYAMLError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
            context = f" ({exc.context})" if exc.context else ""
            rows = text.splitlines()
            if line is not None and line <= len(rows) and "${" in rows[line - 1]:
                # `{min: ${SOAK}}` is a YAML syntax error (the braces), which PyYAML does not explain.
                context += "; inside { } or [ ], put a value that uses ${...} in quotes"
            issues.append(ConfigIssue(display, line, "", f"not valid YAML: {exc.problem}{context}"))
            return src, None
        except yaml.YAMLError as exc:
            src.issue(None, "", f"not valid YAML: {exc}")
            return src, None
        except RecursionError:  # the pure-Python parser (no libyaml) on deeply nested text
            src.issue(None, "", f"nested more than {bounds.MAX_DEPTH} levels deep")
            return src, None
        if root is None:
            src.issue(None, "", "the file is empty")
        return src, root

    # ---------------------------------------------------------------------------------- issues

    def issue(self, node: Node | None, key: str, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, None if node is None else line_of(node), key, message))

    def where(self, node: Node) -> str:
        return f"{self.file}:{line_of(node)}"

    def lookup(self, name: str) -> str | None:
        if name in self.variables:
            return self.variables[name]
        return os.environ.get(name)

    # ---------------------------------------------------------------------------------- structure

    def mapping(
        self,
        node: Node,
        key: str,
        allowed: Collection[str] | None = None,
        *,
        required: Collection[str] = (),
        unavailable: Mapping[str, str] | None = None,
    ) -> Fields | None:
        """The entries of a mapping node, checked: duplicates, then (see Fields.only / require) unknown
        keys with a did-you-mean and required keys. An empty value (`key:` alone) counts as not set."""
        if not isinstance(node, MappingNode):
            self.issue(node, key, f"expected a mapping, got {describe(node)}")
            return None
        fields = Fields(self, node, key)
        for knode, vnode in self._pairs(node, key):
            fields.add(str(knode.value), knode, vnode)
        if allowed is not None:
            fields.only(allowed, unavailable)
        fields.require(*required)
        return fields

    def _pairs(self, node: MappingNode, key: str) -> list[tuple[ScalarNode, Node]]:
        """Own pairs, then pairs merged in with `<<: *anchor` that the mapping does not set itself —
        overriding a merged key is what merging is for, not a duplicate. Problems (duplicates, keys
        that are not names, merges of non-mappings) are reported once per mapping node, however many
        aliases and merges reach it."""
        if id(node) not in self._checked:
            self._checked[id(node)] = node
            self._check_pairs(node, key)
        return self._merges.pairs(node)

    def _check_pairs(self, node: MappingNode, key: str) -> None:
        seen: dict[str, int] = {}
        for knode, vnode in node.value:
            if knode.tag == _MERGE:
                sources = vnode.value if isinstance(vnode, SequenceNode) else [vnode]
                for source in sources:
                    if isinstance(source, MappingNode):
                        self._pairs(source, key)
                    else:
                        self.issue(source, key, f"'<<' merges a mapping, got {describe(source)}")
                continue
            if not isinstance(knode, ScalarNode):
                self.issue(knode, key, f"keys must be plain names, got {describe(knode)}")
                continue
            name = str(knode.value)
            if name in seen:
                self.issue(
                    knode, child(key, name), f"duplicate key '{name}' (first set at line {seen[name]})"
                )
                continue
            seen[name] = line_of(knode)

    def sequence(self, node: Node, key: str, *, nonempty: bool = False) -> list[tuple[str, Node]] | None:
        """The items of a list node with their dotted paths."""
        if not isinstance(node, SequenceNode):
            self.issue(node, key, f"expected a list, got {describe(node)}")
            return None
        if nonempty and not node.value:
            self.issue(node, key, "must not be empty")
        return [(item(key, i), n) for i, n in enumerate(node.value)]

    # ---------------------------------------------------------------------------------- scalars

    def scalar(self, node: Node, key: str, expected: str, *, typed: bool = True) -> tuple[bool, Any]:
        """(ok, value) of a scalar: YAML's own type, strings with ${...} expanded. With `typed`, a
        string written as a reference is re-read as YAML, so `max: ${LIMIT:-0.05}` is a number."""
        if not isinstance(node, ScalarNode):
            self.issue(node, key, f"expected {expected}, got {describe(node)}")
            return False, None
        tag = node.tag.removeprefix(TAG)
        if tag == "str":
            if "${" not in node.value:
                return True, node.value
            text, problems = interpolate(node.value, self.lookup)
            for problem in problems:
                self.issue(node, key, problem)
            if problems:
                return False, None
            return True, (_reread(text) if typed else text)
        if tag == "int":
            return True, _SCALARS.construct_yaml_int(node)
        if tag == "float":
            return True, _SCALARS.construct_yaml_float(node)
        if tag == "bool":
            return True, _SCALARS.construct_yaml_bool(node)
        if tag == "null":
            return True, None
        return True, str(node.value)  # timestamps and the like: keep the text as written

    def text(self, node: Node, key: str, *, allow_empty: bool = False) -> str | None:
        ok, value = self.scalar(node, key, "a string", typed=False)
        if not ok:
            return None
        if isinstance(value, bool) or value is None:
            self.issue(node, key, f"expected a string, got {describe(node)}")
            return None
        if not isinstance(value, str):
            value = str(node.value)  # a number written where text is wanted: keep it as written
        if not value and not allow_empty:
            self.issue(node, key, "must not be empty")
            return None
        return value

    def number(self, node: Node, key: str, *, minimum: float | None = None) -> float | None:
        ok, value = self.scalar(node, key, "a number")
        if not ok:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.issue(node, key, f"expected a number, got {describe(node)}")
            return None
        if minimum is not None and value < minimum:
            self.issue(node, key, f"must be at least {minimum:g}, got {value:g}")
            return None
        return float(value)

    def integer(
        self, node: Node, key: str, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        ok, value = self.scalar(node, key, "a whole number")
        if not ok:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.issue(node, key, f"expected a whole number, got {describe(node)}")
            return None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = f"{minimum}..{maximum}" if maximum is not None else f"at least {minimum}"
            self.issue(node, key, f"must be {bounds}, got {value}")
            return None
        return value

    def boolean(self, node: Node, key: str) -> bool | None:
        ok, value = self.scalar(node, key, "true or false")
        if not ok:
            return None
        if not isinstance(value, bool):
            self.issue(node, key, f"expected true or false, got {describe(node)}")
            return None
        return value

    def choice(self, node: Node, key: str, choices: Collection[str]) -> str | None:
        value = self.text(node, key, allow_empty="" in choices)
        if value is None:
            return None
        if value not in choices:
            close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            shown = ", ".join(c or repr(c) for c in choices)
            self.issue(node, key, f"expected one of {shown}, got '{value}'{hint}")
            return None
        return value

    def parsed(self, node: Node, key: str, parse: Callable[[str], T]) -> T | None:
        """A scalar read by `parse` (which raises ValueError with a message saying what it expects).
        Numbers reach `parse` as written, so `30` can be told "add a unit"."""
        ok, value = self.scalar(node, key, "a value", typed=False)
        if not ok:
            return None
        text = value if isinstance(value, str) else str(node.value)
        try:
            return parse(text)
        except ValueError as exc:
            self.issue(node, key, str(exc))
            return None

    def texts(self, node: Node, key: str, *, nonempty: bool = False) -> list[str] | None:
        items = self.sequence(node, key, nonempty=nonempty)
        if items is None:
            return None
        out = [self.text(n, k) for k, n in items]
        return [t for t in out if t is not None]


def _reread(text: str) -> Any:
    """A value that came from a variable, typed the way YAML would type it written in place."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, bool | int | float | str) else text
