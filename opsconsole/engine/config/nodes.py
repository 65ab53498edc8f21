"""Small facts about YAML nodes and the dotted keys that name them in messages.

A key such as `phases[1].gates[0].max` is built up as the reader descends, so every issue can say
exactly which value it is about; `describe` is how a value reads in "expected X, got Y".
"""

from __future__ import annotations

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

TAG = "tag:yaml.org,2002:"


def child(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def item(key: str, index: int) -> str:
    return f"{key}[{index}]"


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == TAG + "null"


def describe(node: Node) -> str:
    """How a value reads in "expected X, got Y"."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if is_null(node):
        return "nothing"
    if node.tag == TAG + "str":
        return repr(node.value)
    return str(node.value)
