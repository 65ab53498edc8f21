"""A metric source that scrapes a Prometheus `/metrics` endpoint and answers gate queries itself.

Without a Prometheus server in between, rates and percentiles must come from our own history of
scrapes: each `refresh` appends a snapshot, and `query` diffs the snapshots that cover the window.
The query language is deliberately small — what metric gates and alarm rules need, nothing more:

    rate(m{matchers})               per-second increase over the window, summed over matching series
    increase(m{matchers})           increase over the window, summed over matching series
    ratio(a{matchers}, b{matchers}) increase(a) / increase(b); no data when b did not increase
    quantile(q, h{matchers})        q-quantile (0..1) of histogram h from the increases of its
                                    `h_bucket` series, interpolated like Prometheus' histogram_quantile
                                    (h may be written with or without the `_bucket` suffix)
    m{matchers}                     current value summed over matching series (gauges)

Any of these may be followed by `* <number>` or `/ <number>` (e.g. `... * 1000` for milliseconds).
Matchers are `label="value"`, `!=`, `=~` and `!~` (regular expressions match the whole value, as in
Prometheus); a missing label counts as the empty string. Braces are optional. There are no range
selectors (`[1m]`): the window is the source's (MetricSource.window).

How increases are computed, and why:
- Between the newest snapshot and the newest one at or before the window start (else the oldest
  kept), so a window always spans at least one interval. No extrapolation to the window edges: the
  numbers are exactly what the endpoint reported, which is what a person checks by hand.
- Consecutive snapshots are diffed pairwise; a value lower than before is a counter reset and the
  new value is the increase (as in Prometheus). A series absent from the previous snapshot is new and
  counts from zero, so the first 5xx of a version is seen at once rather than one window late.
- A metric that does not exist at all, or a positive matcher on a label no series has, is "no data",
  never 0: a typo in a guard must not make it pass forever.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from ..model import Observation
from .promtext import Labels, PromTextError, Sample, parse

if TYPE_CHECKING:
    import httpx

FUNCTIONS = ("rate", "increase", "ratio", "quantile")
MAX_BODY_BYTES = 16 * 1024 * 1024
"""A /metrics body larger than this is refused rather than parsed on the engine's loop."""
MAX_SNAPSHOTS = 2000
"""Hard bound on kept snapshots whatever the refresh rate, so memory stays bounded."""
NOT_ENOUGH = "not enough samples yet"


class QueryError(ValueError):
    """A query that does not parse; `column` is 1-based."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(message)
        self.column = column


class NoData(Exception):
    """The query is valid but the history cannot answer it; the message says why."""


# ------------------------------------------------------------------------------------------ the language


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


def validate_query(expr: str) -> str | None:
    """None if `expr` is a valid query, else a one-line message naming the column and what was expected."""
    try:
        parse_query(expr)
    except QueryError as exc:
        return str(exc)
    return None


@lru_cache(maxsize=512)
def parse_query(expr: str) -> Query:
    """Compile `expr` (cached: the same expressions are evaluated every tick). Raises QueryError."""
    return _Parser(expr).query()


_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TOKEN = re.compile(r"[a-zA-Z0-9_:.]+|!=|=~|!~|\S")
_STRING_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


class _Parser:
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


# ------------------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Snapshot:
    """One scrape: metric name -> series labels -> value, stamped with the scraper's clock."""

    at: float
    families: dict[str, dict[Labels, float]]

    @classmethod
    def of(cls, at: float, samples: Iterable[Sample]) -> Snapshot:
        families: dict[str, dict[Labels, float]] = {}
        for sample in samples:
            families.setdefault(sample.name, {})[sample.labels] = sample.value
        return cls(at, families)


def evaluate(query: Query, snapshots: Sequence[Snapshot], window: float, now: float) -> tuple[float, str]:
    """The query's value over `snapshots` (oldest first, none after `now`) and a short note on what it
    covered. Raises NoData with the reason when there is nothing to answer with."""
    if not snapshots:
        raise NoData(NOT_ENOUGH)
    newest = snapshots[-1]
    if query.kind == "value":
        selector = query.selectors[0]
        _check_exists(selector, newest, selector.name)
        values = [v for labels, v in newest.families[selector.name].items() if selector.matches(labels)]
        if not values:
            raise NoData(f"no series match {selector.text}")
        return _scaled(query, math.fsum(values)), "current value"
    span = _span(snapshots, window, now)
    if len(span) < 2:
        raise NoData(NOT_ENOUGH)
    seconds = span[-1].at - span[0].at
    note = f"over the last {seconds:.1f}s"
    if query.kind == "quantile":
        return _scaled(query, _quantile(query.q, query.selectors[0], span, seconds)), note
    for selector in query.selectors:
        _check_exists(selector, newest, selector.name)
    increase = _increase(query.selectors[0], span)
    if query.kind == "increase":
        return _scaled(query, increase), note
    if query.kind == "rate":
        return _scaled(query, increase / seconds), note
    denominator = _increase(query.selectors[1], span)
    if denominator == 0:
        raise NoData(f"no data: {query.selectors[1].text} did not increase over the last {seconds:.1f}s")
    return _scaled(query, increase / denominator), note


def _span(snapshots: Sequence[Snapshot], window: float, now: float) -> Sequence[Snapshot]:
    start = now - window
    base = 0
    for index, snap in enumerate(snapshots):
        if snap.at <= start:
            base = index
        else:
            break
    return snapshots[base:]


def _check_exists(selector: Selector, snapshot: Snapshot, family_name: str) -> None:
    family = snapshot.families.get(family_name)
    if not family:
        raise NoData(f"no series named {family_name}")
    wanted = {m.label for m in selector.matchers if m.needs_label}
    if wanted:
        present = {label for labels in family for label, _ in labels}
        missing = sorted(wanted - present)
        if missing:
            raise NoData(f"no series of {family_name} has a label {missing[0]!r}")


def _series_increases(name: str, selector: Selector, span: Sequence[Snapshot]) -> dict[Labels, float]:
    totals: dict[Labels, float] = {}
    for previous, current in zip(span, span[1:], strict=False):
        before = previous.families.get(name, {})
        for labels, value in current.families.get(name, {}).items():
            if math.isnan(value) or not selector.matches(labels):
                continue
            prior = before.get(labels, 0.0)
            if math.isnan(prior):
                prior = 0.0
            totals[labels] = totals.get(labels, 0.0) + (value - prior if value >= prior else value)
    return totals


def _increase(selector: Selector, span: Sequence[Snapshot]) -> float:
    return math.fsum(_series_increases(selector.name, selector, span).values())


def _quantile(q: float, selector: Selector, span: Sequence[Snapshot], seconds: float) -> float:
    name = selector.name if selector.name.endswith("_bucket") else selector.name + "_bucket"
    _check_exists(selector, span[-1], name)
    by_bound: dict[float, float] = {}
    for labels, increase in _series_increases(name, selector, span).items():
        le = dict(labels).get("le")
        try:
            bound = float(le) if le is not None else math.nan
        except ValueError:
            continue  # Prometheus ignores bucket series whose le is not a number; so do we
        if not math.isnan(bound):
            by_bound[bound] = by_bound.get(bound, 0.0) + increase
    if math.inf not in by_bound:
        raise NoData(f'{name} has no le="+Inf" bucket matching {selector.text}')
    value = histogram_quantile(q, sorted(by_bound.items()))
    if math.isnan(value):
        raise NoData(f"no observations of {selector.text} over the last {seconds:.1f}s")
    return value


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' bucketQuantile for classic histograms: `buckets` are (upper bound, cumulative count)
    sorted by bound. NaN when undefined (no +Inf bucket, fewer than two buckets, no observations)."""
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if len(buckets) < 2 or buckets[-1][0] != math.inf:
        return math.nan
    # Counts computed from increases can wobble; Prometheus forces them monotonic the same way.
    counts: list[float] = []
    for _, count in buckets:
        counts.append(max(count, counts[-1]) if counts else count)
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i, count in enumerate(counts[:-1]) if count >= rank), len(counts) - 1)
    if b == len(counts) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[b][0], counts[b]
    if b > 0:
        start = buckets[b - 1][0]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if count == 0:
        return math.nan
    return start + (end - start) * (rank / count)


def _scaled(query: Query, value: float) -> float:
    for op, factor in query.scale:
        value = value * factor if op == "*" else value / factor
    return value


# ---------------------------------------------------------------------------------------------- source


class ScrapeSource:
    """History of scrapes of one endpoint, and the queries gates and alarm rules ask of it."""

    def __init__(self, url: str, timeout: float = 2.0, window: float = 10.0, keep: float = 0.0) -> None:
        self.url = url
        self.timeout = timeout
        self.window = window
        self.keep = keep
        """Extra seconds of history kept beyond the window, for `series` (sparklines)."""
        self.last_error: str | None = None
        """The last refresh's error; while set, queries answer no data rather than stale numbers."""
        self.last_refresh: float | None = None
        self._history: deque[Snapshot] = deque(maxlen=MAX_SNAPSHOTS)

    async def refresh(self, client: httpx.AsyncClient, now: float) -> str | None:
        """Scrape once, bounded by `timeout`; record the snapshot or the error, and return the error."""
        self.last_refresh = now
        try:
            text = await asyncio.wait_for(self._download(client), timeout=self.timeout)
            samples = parse(text)
        except PromTextError as exc:
            self.last_error = f"bad exposition at line {exc.line}: {exc.reason} ({self.url})"
        except Exception as exc:  # any failure of a source is "no data", never a crash of the runner
            self.last_error = _describe(exc, self.url, self.timeout)
        else:
            self.last_error = None
            self.record(samples, now)
        return self.last_error

    async def _download(self, client: httpx.AsyncClient) -> str:
        headers = {"Accept": "text/plain;version=0.0.4"}
        async with client.stream("GET", self.url, headers=headers, timeout=self.timeout) as response:
            if response.status_code != 200:
                raise _Refused(f"HTTP {response.status_code} from {self.url}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise _Refused(f"body larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB from {self.url}")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Refused(f"body is not UTF-8 (byte {exc.start}) from {self.url}") from None

    def record(self, samples: Iterable[Sample], at: float) -> None:
        """Append one scrape taken at `at`, dropping what no query can need any more."""
        while self._history and self._history[-1].at >= at:
            self._history.pop()  # the clock went back or the same instant was scraped twice
        self._history.append(Snapshot.of(at, samples))
        horizon = at - self.window - self.keep
        # Keep the newest snapshot at or before the horizon: it is the base a full window diffs against.
        while len(self._history) >= 2 and self._history[1].at <= horizon:
            self._history.popleft()

    def query(self, expr: str, now: float) -> Observation:
        value, error, detail = self._value(expr, now)
        return Observation(value=value, error=error, source=self.url, at=now, detail=detail)

    def series(self, expr: str, points: int) -> list[float | None]:
        """The value of `expr` at each of the last `points` snapshots, oldest first, padded with None."""
        snapshots = list(self._history)[-points:] if points > 0 else []
        values = [self._value(expr, snap.at, check_error=False)[0] for snap in snapshots]
        return [None] * (points - len(values)) + values

    def _value(self, expr: str, now: float, check_error: bool = True) -> tuple[float | None, str | None, str]:
        if check_error and self.last_error is not None:
            return None, self.last_error, ""
        try:
            query = parse_query(expr)
        except QueryError as exc:
            return None, f"bad query {expr!r}: {exc}", ""
        snapshots = [snap for snap in self._history if snap.at <= now]
        try:
            value, note = evaluate(query, snapshots, self.window, now)
        except NoData as exc:
            return None, str(exc), ""
        if math.isnan(value):
            return None, f"{query.text} is NaN", note
        return value, None, note


class _Refused(Exception):
    """The endpoint answered, but not with something we can use; the message is the whole story."""


def _describe(exc: BaseException, url: str, timeout: float) -> str:
    import httpx

    if isinstance(exc, _Refused):
        return str(exc)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"timeout after {timeout}s: {url}"
    if isinstance(exc, httpx.ConnectError):
        if _caused_by(exc, ConnectionRefusedError) or "refused" in str(exc).lower():
            return f"connection refused: {url}"
        return f"cannot connect to {url}: {exc}"
    if isinstance(exc, httpx.HTTPError):
        return f"HTTP error from {url}: {type(exc).__name__}: {exc}"
    return f"scrape of {url} failed: {type(exc).__name__}: {exc}"


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """httpx wraps the OS error (anyio: "All connection attempts failed"); the chain says what it was."""
    seen: BaseException | None = exc
    for _ in range(10):  # chains are short; the bound only guards against a cycle
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
