"""What reading one configuration file may cost, at most.

Every command loads the configuration first, the kill switch included, so a file that takes minutes
or all memory to load is a file that stops the emergency path. The YAML itself can do that: aliases
multiply (`[*a, *a, ...]` ten deep is ten billion values), `<<: [*a, *a]` merges copied at every
level double forty times, an alias can point at its own ancestor, and a path can name a FIFO (which
blocks forever) or /dev/zero (which never ends). So:

- only regular files are read, and at most MAX_FILE_BYTES of them;
- a large text is counted event by event before any node is built, and refused past MAX_NODES;
- the composed document is walked once, each node memoised by identity, and refused when what the
  readers would visit (aliases expanded, merges applied) exceeds MAX_NODES values or MAX_DEPTH levels,
  or when a node contains itself;
- `<<` merges are expanded once per mapping node and the result shared (`Merges`), never copied.

MAX_NODES is about twice what ten thousand flag definitions need (106,000 values, four levels deep),
and low enough that the worst file it lets through loads in a few seconds.
"""

from __future__ import annotations

import gc
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .nodes import TAG, line_of

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000
"""Values (scalars, lists, mappings) a document may expand to, counting each alias as what it names."""
MAX_DEPTH = 64
"""Levels of nesting, through aliases too."""

Pair = tuple[ScalarNode, Node]
_MERGE = TAG + "merge"
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
    stat.S_IFSOCK: "a socket",
}


@contextmanager
def collector_paused() -> Iterator[None]:
    """Loading builds hundreds of thousands of small objects and frees none of them: every
    generation-2 pass the collector makes meanwhile walks them all again for nothing (measured: a
    10,000-flag configuration loads in about half the time without it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Exceeded(Exception):
    """A file or document is over a limit; `line` is where (None: the file as a whole)."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def read_text(path: Path) -> str:
    """The file's text, if it is a regular file of at most MAX_FILE_BYTES. Raises Exceeded for
    anything else, OSError when it cannot be read, UnicodeDecodeError when it is not UTF-8."""
    _require_regular(os.stat(path))  # before opening: opening a device or FIFO can block or act
    # O_NONBLOCK: if the path was swapped for a FIFO since the stat, open returns instead of waiting.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        _require_regular(st)
        _require_size(st.st_size)
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(1 << 20, MAX_FILE_BYTES + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_FILE_BYTES:
                _require_size(total)  # it grew while being read
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8")


def _require_regular(st: os.stat_result) -> None:
    kind = stat.S_IFMT(st.st_mode)
    if kind != stat.S_IFREG:
        raise Exceeded(None, f"is {_KINDS.get(kind, 'not a file')}, not a regular file")


def _require_size(size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise Exceeded(
            None, f"is {size:,} bytes; configuration files are limited to {MAX_FILE_BYTES >> 20} MiB"
        )


def count_values(text: str, loader: Any) -> None:
    """Refuse a text with more than MAX_NODES values before composing it (composing costs far more
    time and memory per value than counting parser events). Short texts cannot hold that many."""
    if len(text) * 4 <= MAX_NODES:
        return
    count = 0
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, ScalarEvent | SequenceStartEvent | MappingStartEvent | AliasEvent):
                count += 1
                if count > MAX_NODES:
                    mark = event.start_mark
                    raise Exceeded(
                        None if mark is None else mark.line + 1,
                        f"the file has more than {MAX_NODES:,} values; a configuration is limited to that",
                    )
    except yaml.YAMLError:
        return  # composing reports it, with its line


class Merges:
    """Each mapping's entries as the readers see them: its own keys (the first of duplicates), then
    the keys merged in with `<<` that it does not set itself. Computed once per mapping node and
    shared by every alias of it, so a chain of merges costs its length, not two to its length."""

    def __init__(self) -> None:
        self._done: dict[int, tuple[MappingNode, list[Pair]]] = {}
        self._active: set[int] = set()

    def pairs(self, node: MappingNode) -> list[Pair]:
        done = self._done.get(id(node))
        if done is not None:
            return done[1]
        if id(node) in self._active:
            raise Exceeded(line_of(node), "refers to itself through '<<' (a recursive alias)")
        if len(self._active) >= MAX_DEPTH:
            raise Exceeded(line_of(node), f"'<<' merges are nested more than {MAX_DEPTH} levels deep")
        self._active.add(id(node))
        try:
            own: list[Pair] = []
            seen: set[str] = set()
            merged: list[Pair] = []
            for knode, vnode in node.value:
                if knode.tag == _MERGE:
                    for source in vnode.value if isinstance(vnode, SequenceNode) else [vnode]:
                        if isinstance(source, MappingNode):
                            merged.extend(self.pairs(source))
                elif isinstance(knode, ScalarNode) and str(knode.value) not in seen:
                    seen.add(str(knode.value))
                    own.append((knode, vnode))
            for knode, vnode in merged:
                if str(knode.value) not in seen:
                    seen.add(str(knode.value))
                    own.append((knode, vnode))
        finally:
            self._active.discard(id(node))
        self._done[id(node)] = (node, own)
        return own


def check_expansion(root: Node, merges: Merges) -> None:
    """Raise Exceeded when the document, aliases expanded and merges applied, has more than MAX_NODES
    values or MAX_DEPTH levels, or contains itself. Linear in the number of distinct nodes."""
    _Walk(merges).visit(root, 1)


class _Walk:
    def __init__(self, merges: Merges) -> None:
        self.merges = merges
        self.size: dict[int, int] = {}
        self.height: dict[int, int] = {}
        self.active: set[int] = set()

    def visit(self, node: Node, depth: int) -> int:
        key = id(node)
        if key in self.size:
            if depth + self.height[key] > MAX_DEPTH:
                raise Exceeded(line_of(node), f"nested more than {MAX_DEPTH} levels deep")
            return self.size[key]
        if depth > MAX_DEPTH:
            raise Exceeded(line_of(node), f"nested more than {MAX_DEPTH} levels deep")
        if key in self.active:
            raise Exceeded(line_of(node), "refers to itself (a recursive alias)")
        self.active.add(key)
        size, height = 1, 0
        for child in self._children(node):
            if child.__class__ is ScalarNode:  # most values: no children, nothing to remember
                size, height = size + 1, max(height, 1)
                continue
            size += self.visit(child, depth + 1)
            height = max(height, 1 + self.height[id(child)])
            if size > MAX_NODES:
                raise Exceeded(line_of(node), f"expands to more than {MAX_NODES:,} values through aliases")
        if depth + height > MAX_DEPTH:  # a scalar one level too deep
            raise Exceeded(line_of(node), f"nested more than {MAX_DEPTH} levels deep")
        self.active.discard(key)
        self.size[key], self.height[key] = size, height
        return size

    def _children(self, node: Node) -> list[Node]:
        if isinstance(node, SequenceNode):
            return list(node.value)
        if isinstance(node, MappingNode):
            return [n for pair in self.merges.pairs(node) for n in pair]
        return []
