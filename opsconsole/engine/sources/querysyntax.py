"""The grammar of the scrape source's query language (described in `query.py`) and what it compiles to.

Every syntax error names the 1-based column and what was expected there; the config check reports
it at the line of the query that has it. Queries are compiled once (see `parse_query`) and evaluated
every tick, so the compiled form holds ready regular expressions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .promtext import Labels

FUNCTIONS = ("rate", "increase", "ratio", "quantile")


class QueryError(ValueError):
    """A query that does not parse; `column` is 1-based."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str  # = != =~ !~
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, actual: str) -> bool:
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    @property
    def needs_label(self) -> bool:
        """True when only a series that has the label can match (so its absence everywhere is a typo)."""
        return self.op in ("=", "=~") and not self.matches("")


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[Matcher, ...]
    text: str  # as written, for messages

    def matches(self, labels: Labels) -> bool:
        if not self.matchers:
            return True
        values = dict(labels)
        return all(m.matches(values.get(m.label, "")) for m in self.matchers)


@dataclass(frozen=True)
class Query:
    kind: str  # rate | increase | ratio | quantile | value
    selectors: tuple[Selector, ...]
    text: str
    q: float = 0.0  # quantile only
    scale: tuple[tuple[str, float], ...] = ()  # ("*" | "/", number), applied in order

    @property
    def needs_two_snapshots(self) -> bool:
        return self.kind != "value"


_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TOKEN = re.compile(r"[a-zA-Z0-9_:.]+|!=|=~|!~|\S")
_STRING_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


class Parser:
    """Recursive descent over one query text; `query()` returns it compiled or raises QueryError."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # -- helpers

    def fail(self, expected: str, at: int | None = None) -> QueryError:
        pos = self.pos if at is None else at
        token = _TOKEN.search(self.text, pos)
        found = repr(token.group()) if token is not None else "end of query"
        return QueryError(pos + 1, f"column {pos + 1}: expected {expected}, found {found}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self, token: str) -> bool:
        self.skip()
        return self.text.startswith(token, self.pos)

    def take(self, token: str) -> bool:
        if self.peek(token):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str, expected: str) -> None:
        if not self.take(token):
            raise self.fail(expected)

    def number(self, expected: str) -> float:
        self.skip()
        match = _NUMBER.match(self.text, self.pos)
        if match is None:
            raise self.fail(expected)
        self.pos = match.end()
        return float(match.group())

    def string(self) -> str:
        self.skip()
        quote = self.text[self.pos] if self.pos < len(self.text) else ""
        if quote not in ('"', "'"):
            raise self.fail("a quoted label value")
        start, self.pos = self.pos, self.pos + 1
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == quote:
                self.pos += 1
                return "".join(chars)
            if char == "\\":
                escaped = self.text[self.pos + 1 : self.pos + 2]
                if escaped not in _STRING_ESCAPES:
                    raise QueryError(
                        self.pos + 1, f"column {self.pos + 1}: invalid escape '\\{escaped}' in string"
                    )
                chars.append(_STRING_ESCAPES[escaped])
                self.pos += 2
                continue
            chars.append(char)
            self.pos += 1
        raise QueryError(start + 1, f"column {start + 1}: unterminated string")

    # -- grammar

    def query(self) -> Query:
        self.skip()
        kind, selectors, q = self.term()
        scale: list[tuple[str, float]] = []
        while True:
            self.skip()
            if self.pos >= len(self.text):
                break
            op = self.text[self.pos]
            if op not in "*/":
                raise self.fail("'*', '/' or end of query")
            self.pos += 1
            self.skip()
            at = self.pos
            factor = self.number(f"a number after '{op}'")
            if op == "/" and factor == 0:
                raise QueryError(at + 1, f"column {at + 1}: division by zero")
            scale.append((op, factor))
        return Query(kind, selectors, self.text.strip(), q, tuple(scale))

    def term(self) -> tuple[str, tuple[Selector, ...], float]:
        self.skip()
        match = _IDENT.match(self.text, self.pos)
        if match is None:
            raise self.fail("a function (rate, increase, ratio, quantile) or a metric name")
        word = match.group()
        after = match.end()
        while after < len(self.text) and self.text[after].isspace():
            after += 1
        if after >= len(self.text) or self.text[after] != "(":
            return "value", (self.selector(),), 0.0
        if word not in FUNCTIONS:
            raise QueryError(
                match.start() + 1,
                f"column {match.start() + 1}: unknown function {word!r}; expected one of {', '.join(FUNCTIONS)}",
            )
        self.pos = after + 1
        q = 0.0
        if word == "quantile":
            self.skip()
            at = self.pos
            q = self.number("a quantile between 0 and 1")
            if not 0.0 <= q <= 1.0:
                raise QueryError(at + 1, f"column {at + 1}: quantile {q:g} is outside 0..1")
            self.expect(",", "',' after the quantile")
        selectors = [self.selector()]
        if word == "ratio":
            self.expect(",", "',' between the two metrics of ratio()")
            selectors.append(self.selector())
        self.expect(")", f"')' to close {word}(")
        return word, tuple(selectors), q

    def selector(self) -> Selector:
        self.skip()
        start = self.pos
        match = _IDENT.match(self.text, self.pos)
        if match is None:
            raise self.fail("a metric name")
        self.pos = match.end()
        matchers: list[Matcher] = []
        if self.take("{"):
            while not self.take("}"):
                matchers.append(self.matcher())
                if not self.take(","):
                    self.expect("}", "',' or '}' after a label matcher")
                    break
        if self.peek("["):
            column = self.pos + 1
            raise QueryError(
                column,
                f"column {column}: range selectors like [1m] are not supported; "
                "the window is the metric source's `window` setting",
            )
        return Selector(match.group(), tuple(matchers), self.text[start : self.pos])

    def matcher(self) -> Matcher:
        self.skip()
        match = _LABEL.match(self.text, self.pos)
        if match is None:
            raise self.fail("a label name")
        self.pos = match.end()
        self.skip()
        op = next((o for o in ("=~", "!~", "!=", "=") if self.text.startswith(o, self.pos)), None)
        if op is None:
            raise self.fail("one of =, !=, =~, !~ after the label name")
        self.pos += len(op)
        self.skip()
        at = self.pos
        value = self.string()
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise QueryError(
                    at + 1, f"column {at + 1}: invalid regular expression {value!r}: {exc}"
                ) from None
        return Matcher(match.group(), op, value, pattern)
