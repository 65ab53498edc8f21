"""Parser for the Prometheus text exposition format 0.0.4, the body of a `/metrics` endpoint.

Our own rather than prometheus_client's: gates need only flat samples, the parser sits on the
per-tick scrape path, and a bad body must be reported with the line and what is wrong so the person
who owns the endpoint can fix it. Pure: text in, samples out.

HELP and TYPE lines are checked for shape but not kept: queries say themselves whether they want a
rate, a quantile or a current value. Timestamps are validated and dropped (the scraper stamps each
snapshot with its own clock). Label pairs are sorted by name so a series has one identity however
the exporter orders them.
"""

from __future__ import annotations

import re
from typing import NamedTuple

Labels = tuple[tuple[str, str], ...]

METRIC_TYPES = frozenset({"counter", "gauge", "histogram", "summary", "untyped"})

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# One `name="value"` pair and what follows it (a comma or nothing), blanks allowed around tokens.
_LABEL_PAIR = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*(,?)[ \t]*')
# Fast path for the shape nearly every exporter writes: no blanks inside braces, no escapes. Anything
# else takes the careful path, which is also the one that explains errors.
_PLAIN_LINE = re.compile(
    r"([a-zA-Z_:][a-zA-Z0-9_:]*)"
    r'(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*,?)?)\})?'
    r"[ \t]+(\S+)(?:[ \t]+-?[0-9]+)?[ \t]*"
)
_PLAIN_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')
_ESCAPE = re.compile(r"\\(.)")
_UNESCAPED = {"\\": "\\", '"': '"', "n": "\n"}
_TIMESTAMP = re.compile(r"-?[0-9]+")
_BLANKS = " \t"


class Sample(NamedTuple):
    name: str
    labels: Labels
    value: float


class PromTextError(ValueError):
    """A body that is not valid exposition text; `line` is 1-based, `reason` says what is wrong."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


def parse(text: str) -> list[Sample]:
    samples: list[Sample] = []
    typed: set[str] = set()
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r").lstrip(_BLANKS)
        if not line:
            continue
        if line[0] == "#":
            _check_comment(line, number, typed)
            continue
        samples.append(_parse_sample(line, number))
    return samples


def _check_comment(line: str, number: int, typed: set[str]) -> None:
    words = line[1:].split(None, 3)
    if not words or words[0] not in ("HELP", "TYPE"):
        return  # a free comment
    keyword = words[0]
    if len(words) < 2:
        raise PromTextError(number, f"{keyword} line without a metric name")
    name = words[1]
    if not _METRIC_NAME.fullmatch(name):
        raise PromTextError(number, f"invalid metric name {name!r} in {keyword} line")
    if keyword == "TYPE":
        if len(words) < 3:
            raise PromTextError(number, f"TYPE line for {name} has no type")
        kind = words[2].strip()
        if kind not in METRIC_TYPES or len(words) > 3:
            raise PromTextError(
                number,
                f"unknown type {' '.join(words[2:])!r} for {name}; expected one of {sorted(METRIC_TYPES)}",
            )
        if name in typed:
            raise PromTextError(number, f"second TYPE line for {name}")
        typed.add(name)


def _parse_sample(line: str, number: int) -> Sample:
    plain = _PLAIN_LINE.fullmatch(line)
    if plain is not None:
        name, inside, token = plain.groups()
        if "_" not in token:
            try:
                value = float(token)
            except ValueError:
                pass
            else:
                if not inside:
                    return Sample(name, (), value)
                pairs = _PLAIN_PAIR.findall(inside)
                if len({label for label, _ in pairs}) == len(pairs):
                    return Sample(name, tuple(sorted(pairs)), value)
    return _parse_sample_carefully(line, number)


def _parse_sample_carefully(line: str, number: int) -> Sample:
    match = _METRIC_NAME.match(line)
    if match is None:
        raise PromTextError(number, f"expected a metric name at column 1, found {line[:20]!r}")
    name = match.group()
    pos = match.end()
    labels: Labels = ()
    if pos < len(line) and line[pos] == "{":
        labels, pos = _parse_labels(line, pos + 1, number)
    elif pos < len(line) and line[pos] not in _BLANKS:
        raise PromTextError(number, f"unexpected {line[pos]!r} after metric name {name} at column {pos + 1}")
    rest = line[pos:].split()
    if not rest:
        raise PromTextError(number, f"sample {name} has no value")
    if len(rest) > 2:
        raise PromTextError(number, f"unexpected text {' '.join(rest[2:])!r} after the value of {name}")
    value = _parse_value(rest[0], name, number)
    if len(rest) == 2 and not _TIMESTAMP.fullmatch(rest[1]):
        raise PromTextError(
            number, f"invalid timestamp {rest[1]!r} for {name}; expected integer milliseconds"
        )
    return Sample(name, labels, value)


def _parse_labels(line: str, pos: int, number: int) -> tuple[Labels, int]:
    """Parse label pairs starting just after `{`; returns them sorted and the position after `}`."""
    pairs: dict[str, str] = {}
    while True:
        while pos < len(line) and line[pos] in _BLANKS:
            pos += 1
        if pos < len(line) and line[pos] == "}":
            return tuple(sorted(pairs.items())), pos + 1
        match = _LABEL_PAIR.match(line, pos)
        if match is None:
            raise PromTextError(number, _label_problem(line, pos))
        label, value = match.group(1), match.group(2)
        if label in pairs:
            raise PromTextError(number, f"duplicate label {label!r} at column {match.start(1) + 1}")
        if "\\" in value:
            value = _unescape(value, label, number)
        pairs[label] = value
        pos = match.end()
        if not match.group(3) and (pos >= len(line) or line[pos] != "}"):
            found = repr(line[pos]) if pos < len(line) else "end of line"
            raise PromTextError(number, f"expected ',' or '}}' at column {pos + 1}, found {found}")


def _label_problem(line: str, pos: int) -> str:
    """Say precisely what is wrong with the label pair starting at `pos` (only called on failure)."""
    column = pos + 1
    if pos >= len(line):
        return f"unterminated label set: expected a label or '}}' at column {column}, found end of line"
    name = _LABEL_NAME.match(line, pos)
    if name is None:
        return f"expected a label name or '}}' at column {column}, found {line[pos]!r}"
    pos = name.end()
    while pos < len(line) and line[pos] in _BLANKS:
        pos += 1
    if pos >= len(line) or line[pos] != "=":
        return f"expected '=' after label {name.group()!r} at column {pos + 1}"
    pos += 1
    while pos < len(line) and line[pos] in _BLANKS:
        pos += 1
    if pos >= len(line) or line[pos] != '"':
        return f"expected '\"' to open the value of label {name.group()!r} at column {pos + 1}"
    return f"unterminated value of label {name.group()!r} starting at column {pos + 1}"


def _unescape(value: str, label: str, number: int) -> str:
    def replace(match: re.Match[str]) -> str:
        char = match.group(1)
        if char not in _UNESCAPED:
            raise PromTextError(number, f"invalid escape '\\{char}' in the value of label {label!r}")
        return _UNESCAPED[char]

    return _ESCAPE.sub(replace, value)


def _parse_value(token: str, name: str, number: int) -> float:
    # float() also takes "1_000", which Go's ParseFloat (what Prometheus itself uses) rejects.
    if "_" not in token:
        try:
            return float(token)
        except ValueError:
            pass
    raise PromTextError(number, f"invalid value {token!r} for {name}; expected a number, +Inf, -Inf or NaN")
