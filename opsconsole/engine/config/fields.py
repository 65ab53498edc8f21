"""The checked entries of one YAML mapping, read by name.

`f.number("max")` reports a wrong type at the value's line, under the key `<mapping>.max`, and returns
the default, so loading carries on and one run reports every problem of the file.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from yaml.nodes import MappingNode, Node

from .issues import suggest
from .nodes import child, is_null

if TYPE_CHECKING:
    from .yamlsrc import YamlSource

T = TypeVar("T")


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
