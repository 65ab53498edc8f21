"""The query language of the scrape source: parsing, and evaluation over a history of snapshots.

Without a Prometheus server in between, rates and percentiles must come from our own history of
scrapes (kept by ScrapeSource); this module does the arithmetic on it. The query language is
deliberately small — what metric gates and alarm rules need, nothing more:

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

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .promtext import Labels, Sample
from .querysyntax import FUNCTIONS, Matcher, Parser, Query, QueryError, Selector

__all__ = [
    "FUNCTIONS",
    "NOT_ENOUGH",
    "Matcher",
    "NoData",
    "Query",
    "QueryError",
    "Selector",
    "Snapshot",
    "evaluate",
    "histogram_quantile",
    "parse_query",
    "validate_query",
]

NOT_ENOUGH = "not enough samples yet"


class NoData(Exception):
    """The query is valid but the history cannot answer it; the message says why."""


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
    return Parser(expr).query()


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
    covered = _covered(seconds, window)
    note = f"over the last {covered}"
    if query.kind == "quantile":
        return _scaled(query, _quantile(query.q, query.selectors[0], span, covered)), note
    for selector in query.selectors:
        _check_exists(selector, newest, selector.name)
    increase = _increase(query.selectors[0], span)
    if query.kind == "increase":
        return _scaled(query, increase), note
    if query.kind == "rate":
        return _scaled(query, increase / seconds), note
    denominator = _increase(query.selectors[1], span)
    if denominator == 0:
        raise NoData(f"no data: {query.selectors[1].text} did not increase over the last {covered}")
    return _scaled(query, increase / denominator), note


def _covered(seconds: float, window: float) -> str:
    """How long the answer covers, as reasons say it: whole seconds, at most the window. The span
    runs from the newest snapshot at or before the window's start, so it is the window plus up to
    one scrape interval, a fraction that moves every tick; a reason that embeds it would change
    (and be shown again) every tick while nothing it says has changed."""
    return f"{min(round(seconds), window):g}s"


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


def _quantile(q: float, selector: Selector, span: Sequence[Snapshot], covered: str) -> float:
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
        raise NoData(f"no observations of {selector.text} over the last {covered}")
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
