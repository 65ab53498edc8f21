"""Reading YAML while remembering where every value came from.

PyYAML's `safe_load` throws away line numbers and silently keeps the last of two duplicate keys, so a
configuration error could only say *what* is wrong. Here the file is composed into nodes and read by
hand: every issue carries the file and the 1-based line of the offending key or value, unknown keys
get a did-you-mean, and duplicates are reported. Readers never stop at the first problem; they record
an issue, return None, and the caller carries on with a default so one run reports everything.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

T = TypeVar("T")

# libyaml's parser when present: same nodes, marks and tags as SafeLoader, several times faster (the
# console reads its config before the first frame).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_MERGE = _TAG + "merge"
_SCALARS = SafeConstructor()
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# "$${" is a literal "${"; a reference runs to the next "}" (a missing one is reported).
_REFERENCE = re.compile(r"\$(\$?)\{([^}]*)(\}?)")


@dataclass(frozen=True)
class ConfigIssue:
    """One thing wrong with the configuration, and where: `key` is a dotted path such as
    `phases[1].gates[0].max`, `line` is 1-based (None when the problem is the file as a whole)."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        place = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{place}: {self.key}: {self.message}" if self.key else f"{place}: {self.message}"


def child(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def item(key: str, index: int) -> str:
    return f"{key}[{index}]"


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _TAG + "null"


def describe(node: Node) -> str:
    """How a value reads in "expected X, got Y"."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if is_null(node):
        return "nothing"
    if node.tag == _TAG + "str":
        return repr(node.value)
    return str(node.value)


def suggest(word: str, choices: Collection[str]) -> str:
    """ " (did you mean 'x'?)" for a near miss, else the list of what is allowed."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    if not choices or len(choices) > 12:  # a list of hundreds of flag names helps nobody
        return ""
    return f" (expected one of: {', '.join(sorted(choices))})"


def interpolate(text: str, lookup: Callable[[str], str | None]) -> tuple[str, list[str]]:
    """Expand `${NAME}` and `${NAME:-default}` (default also when the value is empty, as in a shell).
    Returns the text and the problems found (an undefined name expands to "" and is reported)."""
    problems: list[str] = []

    def expand(m: re.Match[str]) -> str:
        escaped, body, closed = m.group(1), m.group(2), m.group(3)
        if escaped:
            return "${" + body + closed
        if not closed:
            problems.append(f"unclosed '${{{body}' (write ${{NAME}} or ${{NAME:-default}})")
            return m.group(0)
        name, has_default, default = body.partition(":-")
        if not _VAR_NAME.fullmatch(name):
            problems.append(f"bad variable reference '${{{body}}}' (write ${{NAME}} or ${{NAME:-default}})")
            return m.group(0)
        value = lookup(name)
        if value:
            return value
        if has_default:
            return default
        if value is None:
            problems.append(
                f"${{{name}}} is not defined (set it in the environment, or write ${{{name}:-default}})"
            )
        return ""

    return _REFERENCE.sub(expand, text), problems


class YamlSource:
    """One file being read: its display name, the variables its strings may use, and the shared list
    of issues of the whole load."""

    def __init__(self, file: str, variables: Mapping[str, str], issues: list[ConfigIssue]) -> None:
        self.file = file
        self.variables = variables
        self.issues = issues

    # ---------------------------------------------------------------------------------- loading

    @classmethod
    def open(
        cls, path: Path, display: str, variables: Mapping[str, str], issues: list[ConfigIssue]
    ) -> tuple[YamlSource, Node | None]:
        """Compose `path`; the root node is None (with an issue recorded) when it cannot be used."""
        own = {**variables, "CONFIG_DIR": str(path.parent.absolute())}
        src = cls(display, own, issues)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            src.issue(None, "", "no such file")
            return src, None
        except (OSError, UnicodeDecodeError) as exc:
            src.issue(None, "", f"cannot read: {exc}")
            return src, None
        try:
            root = yaml.compose(text, Loader=_LOADER)
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
        """Own pairs (duplicates reported), then pairs merged in with `<<: *anchor` that the mapping
        does not set itself — overriding a merged key is what merging is for, not a duplicate."""
        own: list[tuple[ScalarNode, Node]] = []
        seen: dict[str, int] = {}
        merged: list[tuple[ScalarNode, Node]] = []
        for knode, vnode in node.value:
            if knode.tag == _MERGE:
                sources = vnode.value if isinstance(vnode, SequenceNode) else [vnode]
                for source in sources:
                    if isinstance(source, MappingNode):
                        merged.extend(self._pairs(source, key))
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
            own.append((knode, vnode))
        for knode, vnode in merged:
            if knode.value not in seen:
                seen[knode.value] = line_of(knode)
                own.append((knode, vnode))
        return own

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
        tag = node.tag.removeprefix(_TAG)
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


class Fields:
    """The checked entries of one mapping, read by name: `f.number("max")` reports a wrong type at
    the value's line under the key `<mapping>.max` and returns None (or the default when not set)."""

    def __init__(self, src: YamlSource, node: MappingNode, key: str) -> None:
        self.src = src
        self.node = node
        self.key = key
        self.entries: dict[str, Node] = {}
        self.keys: dict[str, Node] = {}
        self.empty: set[str] = set()

    def add(self, name: str, knode: Node, vnode: Node) -> None:
        self.keys[name] = knode
        if is_null(vnode):
            self.empty.add(name)
        else:
            self.entries[name] = vnode

    def only(self, allowed: Collection[str], unavailable: Mapping[str, str] | None = None) -> None:
        """Report and drop keys not in `allowed`; `unavailable` gives the message for keys that are
        known but do not apply here (another kind's setting, a feature of a later release)."""
        for name, knode in list(self.keys.items()):
            if name in allowed:
                continue
            if unavailable and name in unavailable:
                self.src.issue(knode, self.path(name), unavailable[name])
            else:
                self.src.issue(knode, self.path(name), f"unknown key '{name}'{suggest(name, allowed)}")
            del self.keys[name]
            self.entries.pop(name, None)
            self.empty.discard(name)

    def require(self, *names: str) -> bool:
        ok = True
        for name in names:
            if name not in self.entries:
                self.missing(name, "it is empty" if name in self.empty else "")
                ok = False
        return ok

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[tuple[str, Node]]:
        return iter(self.entries.items())

    def get(self, name: str) -> Node | None:
        return self.entries.get(name)

    def mapping(
        self,
        name: str,
        allowed: Collection[str] | None = None,
        *,
        required: Collection[str] = (),
        unavailable: Mapping[str, str] | None = None,
    ) -> Fields | None:
        """The nested mapping under `name`, checked like YamlSource.mapping; None when not set."""
        node = self.entries.get(name)
        if node is None:
            return None
        return self.src.mapping(node, self.path(name), allowed, required=required, unavailable=unavailable)

    def sequence(self, name: str, *, nonempty: bool = False) -> list[tuple[str, Node]]:
        """The items of the list under `name` with their paths; [] when not set or not a list."""
        node = self.entries.get(name)
        if node is None:
            return []
        return self.src.sequence(node, self.path(name), nonempty=nonempty) or []

    def path(self, name: str) -> str:
        return child(self.key, name)

    def where(self) -> str:
        return self.src.where(self.node)

    def issue(self, name: str | None, message: str) -> None:
        """An issue about entry `name` (at its value), or about the mapping as a whole."""
        node = self.entries.get(name) if name else None
        self.src.issue(node or self.node, self.path(name) if name else self.key, message)

    def missing(self, name: str, detail: str = "") -> None:
        """Reported at the empty key when there is one, else where the mapping starts."""
        node = self.keys.get(name, self.node)
        self.src.issue(node, self.path(name), f"'{name}' is required" + (f" ({detail})" if detail else ""))

    def _read(self, name: str, default: Any, read: Callable[[Node, str], Any]) -> Any:
        node = self.entries.get(name)
        if node is None:
            return default
        value = read(node, self.path(name))
        return default if value is None else value

    def text(self, name: str, default: Any = None) -> Any:
        return self._read(name, default, self.src.text)

    def number(self, name: str, default: Any = None, *, minimum: float | None = None) -> Any:
        return self._read(name, default, lambda n, k: self.src.number(n, k, minimum=minimum))

    def integer(
        self, name: str, default: Any = None, *, minimum: int | None = None, maximum: int | None = None
    ) -> Any:
        return self._read(
            name, default, lambda n, k: self.src.integer(n, k, minimum=minimum, maximum=maximum)
        )

    def boolean(self, name: str, default: Any = None) -> Any:
        return self._read(name, default, self.src.boolean)

    def choice(self, name: str, choices: Collection[str], default: Any = None) -> Any:
        return self._read(name, default, lambda n, k: self.src.choice(n, k, choices))

    def parsed(self, name: str, parse: Callable[[str], T], default: Any = None) -> Any:
        return self._read(name, default, lambda n, k: self.src.parsed(n, k, parse))

    def texts(self, name: str, default: Any = None, *, nonempty: bool = False) -> Any:
        return self._read(name, default, lambda n, k: self.src.texts(n, k, nonempty=nonempty))
