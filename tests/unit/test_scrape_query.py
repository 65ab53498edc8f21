"""The scrape source's query language and the arithmetic behind metric gates: hand-built histories of
snapshots in, numbers (or an explicit "no data" with the reason) out."""

from __future__ import annotations

import math

import pytest

from opsconsole.engine.sources.promtext import Sample
from opsconsole.engine.sources.scrape import (
    ScrapeSource,
    histogram_quantile,
    parse_query,
    validate_query,
)

URL = "http://127.0.0.1:9/metrics"


def s(name: str, value: float, **labels: str) -> Sample:
    return Sample(name, tuple(sorted(labels.items())), value)


def source(*snapshots: tuple[float, list[Sample]], window: float = 10.0, keep: float = 0.0) -> ScrapeSource:
    src = ScrapeSource(URL, window=window, keep=keep)
    for at, samples in snapshots:
        src.record(samples, at)
    return src


def value(src: ScrapeSource, expr: str, now: float) -> float | None:
    obs = src.query(expr, now)
    assert obs.source == URL
    return obs.value


# ------------------------------------------------------------------------------------------ parsing


def test_parse_each_form():
    q = parse_query('quantile(0.95, http_request_duration_seconds{version="v2"}) * 1000')
    assert (q.kind, q.q, q.scale) == ("quantile", 0.95, (("*", 1000.0),))
    assert q.selectors[0].name == "http_request_duration_seconds"
    assert q.selectors[0].text == 'http_request_duration_seconds{version="v2"}'
    q = parse_query("ratio(a{code=~'5..', x!=\"y\"}, a) / 2 * 3")
    assert q.kind == "ratio" and [sel.name for sel in q.selectors] == ["a", "a"]
    assert [(m.label, m.op, m.value) for m in q.selectors[0].matchers] == [
        ("code", "=~", "5.."),
        ("x", "!=", "y"),
    ]
    assert q.scale == (("/", 2.0), ("*", 3.0))
    assert parse_query("  demo_canary_percentage  ").kind == "value"
    assert parse_query("rate(x{})").selectors[0].matchers == ()
    assert parse_query('increase( x { a = "1" , } )').selectors[0].matchers[0].value == "1"
    assert parse_query('x{a="say \\"hi\\""}').selectors[0].matchers[0].value == 'say "hi"'


def test_compiled_queries_are_cached():
    assert parse_query("rate(cached_metric)") is parse_query("rate(cached_metric)")


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (
            "",
            "column 1: expected a function (rate, increase, ratio, quantile) or a metric name, found end of query",
        ),
        ("rate(http_requests_total", "column 25: expected ')' to close rate(, found end of query"),
        ("sum(rate(x))", "column 1: unknown function 'sum'; expected one of rate, increase, ratio, quantile"),
        ("rate(x[1m])", "column 7: range selectors like [1m] are not supported; the window is"),
        ("ratio(a)", "column 8: expected ',' between the two metrics of ratio(), found ')'"),
        ("quantile(1.5, h)", "column 10: quantile 1.5 is outside 0..1"),
        ("quantile(h)", "column 10: expected a quantile between 0 and 1, found 'h'"),
        ('x{a=~"("}', "column 6: invalid regular expression '('"),
        ('x{a~"b"}', "column 4: expected one of =, !=, =~, !~ after the label name, found '~'"),
        ('x{a="b"', "column 8: expected ',' or '}' after a label matcher, found end of query"),
        ('x{a="b" c="d"}', "column 9: expected ',' or '}' after a label matcher, found 'c'"),
        ('x{1="b"}', "column 3: expected a label name, found '1'"),
        ("x{a=b}", "column 5: expected a quoted label value, found 'b'"),
        ('x{a="b}', "column 5: unterminated string"),
        ("x *", "column 4: expected a number after '*', found end of query"),
        ("x / 0", "column 5: division by zero"),
        ("x y", "column 3: expected '*', '/' or end of query, found 'y'"),
        ("rate(x) > 0.01", "column 9: expected '*', '/' or end of query, found '>'"),
    ],
)
def test_validate_query_names_the_column_and_what_was_expected(expr, message):
    error = validate_query(expr)
    assert error is not None and error.startswith(message), error


def test_valid_queries_validate_clean():
    for expr in ["rate(a)", "increase(a{b!~'c|d'})", "ratio(a, b) * 100", "quantile(0, h)", "g / 1e3"]:
        assert validate_query(expr) is None, expr


def test_bad_query_is_an_observation_error_not_an_exception():
    src = source((0, [s("a", 1)]), (1, [s("a", 2)]))
    obs = src.query("rate(a", 1)
    assert obs.value is None and obs.error is not None and "column 7" in obs.error


# ------------------------------------------------------------------------------------------ counters


def test_rate_and_increase_sum_matching_series_over_the_window():
    src = source(
        (0, [s("req", 10, code="200"), s("req", 1, code="500")]),
        (1, [s("req", 20, code="200"), s("req", 1, code="500")]),
        (2, [s("req", 40, code="200"), s("req", 3, code="500")]),
    )
    assert value(src, "increase(req)", 2) == 32
    assert value(src, "rate(req)", 2) == 16
    assert value(src, 'increase(req{code="500"})', 2) == 2
    assert value(src, 'increase(req{code!="500"})', 2) == 30
    assert value(src, 'rate(req{code=~"5.."}) * 60', 2) == 60
    assert src.query("rate(req)", 2).detail == "over the last 2s"


def test_window_diffs_against_the_newest_snapshot_at_or_before_its_start():
    # counter = 2/s, scraped every 2 s; window 5 s at t=20 starts at 15 -> base is the snapshot at 14
    src = source(*[(float(t), [s("c", 2.0 * t)]) for t in range(0, 21, 2)], window=5.0)
    assert value(src, "increase(c)", 20) == 12
    assert value(src, "rate(c)", 20) == 2
    # the history was pruned to what a query at t=20 needs; with `keep` a query in the past still has
    # its base (the snapshot at 12) and ignores the later ones
    kept = source(*[(float(t), [s("c", 2.0 * t)]) for t in range(0, 21, 2)], window=5.0, keep=10.0)
    assert value(kept, "increase(c)", 18) == 12


def test_with_no_snapshot_older_than_the_window_the_oldest_is_the_base():
    src = source((100, [s("c", 5)]), (101, [s("c", 8)]), (102, [s("c", 9)]), window=10.0)
    assert value(src, "increase(c)", 102) == 4


def test_history_is_bounded_to_the_window_plus_one_older_snapshot():
    src = source(*[(float(t), [s("c", t)]) for t in range(100)], window=10.0)
    assert len(src._history) == 11  # 89 (the base) .. 99
    assert value(src, "increase(c)", 99) == 10


def test_counter_reset_counts_the_new_value_as_the_increase():
    src = source((0, [s("c", 100)]), (1, [s("c", 110)]), (2, [s("c", 5)]), (3, [s("c", 15)]))
    assert value(src, "increase(c)", 3) == 10 + 5 + 10


def test_a_series_born_inside_the_window_counts_from_zero():
    src = source(
        (0, [s("req", 10, code="200")]),
        (1, [s("req", 20, code="200"), s("req", 4, code="500")]),
    )
    assert value(src, 'increase(req{code="500"})', 1) == 4


def test_missing_label_matches_as_empty_string():
    src = source((0, [s("c", 0), s("c", 0, env="prod")]), (1, [s("c", 1), s("c", 10, env="prod")]))
    assert value(src, 'increase(c{env=""})', 1) == 1
    assert value(src, 'increase(c{env!="prod"})', 1) == 1
    assert value(src, 'increase(c{env!~"p.*"})', 1) == 1
    assert value(src, 'increase(c{env=~"p"})', 1) == 0  # regex is anchored: "p" does not match "prod"


# ------------------------------------------------------------------------------------------ ratio


def test_ratio_of_increases():
    src = source(
        (
            0,
            [
                s("req", 0, v="v2", code="200"),
                s("req", 0, v="v2", code="500"),
                s("req", 0, v="v1", code="500"),
            ],
        ),
        (
            5,
            [
                s("req", 90, v="v2", code="200"),
                s("req", 10, v="v2", code="500"),
                s("req", 50, v="v1", code="500"),
            ],
        ),
    )
    assert value(src, 'ratio(req{v="v2",code=~"5.."}, req{v="v2"})', 5) == pytest.approx(0.1)
    assert value(src, 'ratio(req{v="v2",code=~"5.."}, req{v="v2"}) * 100', 5) == pytest.approx(10.0)


def test_ratio_with_a_denominator_that_did_not_increase_is_no_data():
    src = source((0, [s("req", 7, v="v2", code="200")]), (5, [s("req", 7, v="v2", code="200")]))
    obs = src.query('ratio(req{v="v2",code="500"}, req{v="v2"})', 5)
    assert obs.value is None
    assert obs.error == 'no data: req{v="v2"} did not increase over the last 5s'


def test_unknown_metric_and_unknown_label_are_no_data_not_zero():
    src = source((0, [s("req", 0, code="200")]), (1, [s("req", 5, code="200")]))
    assert src.query("rate(reqs)", 1).error == "no series named reqs"
    # a typo'd label would otherwise make an error-rate guard read 0 forever
    obs = src.query('ratio(req{status=~"5.."}, req)', 1)
    assert obs.value is None and obs.error == "no series of req has a label 'status'"
    # a label that exists but has no 5xx yet really is zero
    assert value(src, 'ratio(req{code=~"5.."}, req)', 1) == 0


# ------------------------------------------------------------------------------------------ quantile

# Prometheus' own test histograms (promql/promqltest/testdata/histograms.test, "testhistogram" at 50m)
# with its expected histogram_quantile results; the le spellings are theirs too.
POSITIVE = {"0.1": 50, ".2": 70, "1e0": 110, "+Inf": 120}
NEGATIVE = {"-.2": 10, "-0.1": 20, "0.3": 20, "+Inf": 30}


def histogram_history(scale: float = 1.0) -> ScrapeSource:
    def samples(factor: float) -> list[Sample]:
        out = [s("lat_bucket", n * factor, le=le, start="positive") for le, n in POSITIVE.items()]
        out += [s("lat_bucket", n * factor, le=le, start="negative") for le, n in NEGATIVE.items()]
        return out

    # a first scrape with earlier counts: the quantile must come from the increases, not the totals
    return source((0, samples(3.0)), (10, samples(3.0 + scale)))


@pytest.mark.parametrize(
    ("q", "positive", "negative"),
    [(0, 0.0, -0.2), (0.2, 0.048, -0.2), (0.5, 0.15, -0.15), (0.8, 0.72, 0.3), (1, 1.0, 0.3)],
)
def test_quantile_matches_prometheus_histogram_quantile(q, positive, negative):
    src = histogram_history()
    assert value(src, f'quantile({q}, lat{{start="positive"}})', 10) == pytest.approx(positive)
    assert value(src, f'quantile({q}, lat_bucket{{start="negative"}})', 10) == pytest.approx(negative)


def test_quantile_aggregates_buckets_across_series_like_sum_by_le():
    # Prometheus' request_duration_seconds example: sum by (le) over four instances
    rows = {"0.1": (1, 2, 3, 4), "0.2": (3, 5, 4, 7), "+Inf": (4, 6, 6, 9)}

    def samples(factor: float) -> list[Sample]:
        return [
            s("rd_bucket", n * factor, le=le, instance=f"ins{i}")
            for le, ns in rows.items()
            for i, n in enumerate(ns)
        ]

    src = source((0, samples(0)), (600, samples(10)))
    assert value(src, "quantile(0.3, rd)", 600) == pytest.approx(0.075)
    assert value(src, "quantile(0.5, rd) * 1000", 600) == pytest.approx(127.7777777777778)


def test_quantile_interpolates_linearly_inside_the_bucket():
    buckets = [(0.0, 0.0), (2.0, 1.0), (4.0, 2.0), (6.0, 3.0), (math.inf, 3.0)]
    assert histogram_quantile(1 / 6, buckets) == pytest.approx(1.0)
    assert histogram_quantile(0.5, buckets) == pytest.approx(3.0)
    assert histogram_quantile(5 / 6, buckets) == pytest.approx(5.0)


def test_quantile_edge_cases_follow_prometheus():
    assert math.isnan(histogram_quantile(0.5, [(1.0, 5.0)]))  # fewer than two buckets
    assert math.isnan(histogram_quantile(0.5, [(1.0, 5.0), (2.0, 6.0)]))  # no +Inf bucket
    assert math.isnan(histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))  # no observations
    assert histogram_quantile(-0.1, [(1.0, 1.0), (math.inf, 1.0)]) == -math.inf
    assert histogram_quantile(1.1, [(1.0, 1.0), (math.inf, 1.0)]) == math.inf
    # non-monotonic counts (increases computed per series can wobble) are forced monotonic
    assert histogram_quantile(0.5, [(1.0, 4.0), (2.0, 3.0), (math.inf, 4.0)]) == pytest.approx(0.5)


def test_quantile_without_observations_in_the_window_is_no_data():
    src = histogram_history(scale=0.0)
    obs = src.query('quantile(0.95, lat{start="positive"})', 10)
    assert obs.value is None and obs.error == 'no observations of lat{start="positive"} over the last 10s'
    assert src.query("quantile(0.95, nothing)", 10).error == "no series named nothing_bucket"
    cut = source((0, [s("h_bucket", 0, le="1")]), (1, [s("h_bucket", 4, le="1")]))
    assert cut.query("quantile(0.5, h)", 1).error == 'h_bucket has no le="+Inf" bucket matching h'


# ------------------------------------------------------------------------------------------ gauges, errors


def test_bare_metric_is_the_current_value_summed():
    src = source((0, [s("g", 5, v="a"), s("g", 7, v="b")]))
    assert value(src, "g", 0) == 12
    assert value(src, 'g{v="a"} / 100', 0) == 0.05
    assert src.query('g{v="c"}', 0).error == 'no series match g{v="c"}'


def test_not_enough_samples_before_two_scrapes():
    src = ScrapeSource(URL)
    assert src.query("g", 0).error == "not enough samples yet"
    src.record([s("c", 1)], 0)
    obs = src.query("rate(c)", 0)
    assert obs.value is None and obs.error == "not enough samples yet"


def test_a_failed_refresh_hides_the_history_until_the_next_success():
    src = source((0, [s("c", 0)]), (1, [s("c", 5)]))
    src.last_error = "connection refused: " + URL
    obs = src.query("rate(c)", 1)
    assert (obs.value, obs.error) == (None, "connection refused: " + URL)


def test_series_gives_the_value_at_each_recent_snapshot_padded_with_none():
    src = source(*[(float(t), [s("c", 3.0 * t)]) for t in range(6)], window=2.0, keep=10.0)
    assert src.series("rate(c)", 8) == [None, None, None, 3.0, 3.0, 3.0, 3.0, 3.0]
    assert src.series("c", 3) == [9.0, 12.0, 15.0]
