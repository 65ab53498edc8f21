"""The Prometheus metric source against a real Prometheus scraping a loopback exporter every second:
numbers for PromQL gates and guards, `unknown` with the query and Prometheus's message for anything
else (no series, NaN, bad_data, HTTP errors, a stopped or hung server, refused credentials), and
sparkline points through /api/v1/query_range."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from opsconsole.engine.config import ConfigError, load_config
from opsconsole.engine.gates import GateMemory, evaluate
from opsconsole.engine.model import Observation, Verdict
from opsconsole.engine.observe import Observer
from opsconsole.engine.sources.prometheus import PrometheusSource, promql_problem

from .conftest import BASIC, BASIC_ENV, TOKEN, TOKEN_ENV, Prom, forwarder

GAUGE = "demo_temperature"


def ask(src: PrometheusSource, *queries: str) -> list[Observation]:
    """Refresh once with `queries` wanted, and return their answers."""

    async def run() -> list[Observation]:
        for q in queries:
            src.query(q, 0.0)  # asked once: from the next refresh on
        async with httpx.AsyncClient(trust_env=False) as client:
            await src.refresh(client, time.time())
        return [src.query(q, time.time()) for q in queries]

    return asyncio.run(run())


def test_a_promql_query_answers_the_number_prometheus_has(prom: Prom) -> None:
    src = PrometheusSource(prom.url, timeout=2.0)
    gauge, rate, scalar = ask(src, GAUGE, f"sum(rate(demo_requests_total[1m])) + scalar({GAUGE})", "2 * 21")
    assert (gauge.value, gauge.error) == (42.5, None)
    assert gauge.source == prom.url
    assert rate.value == pytest.approx(42.5) and rate.error is None
    assert scalar.value == 42.0


def test_a_query_not_asked_before_is_unknown_until_the_next_refresh(prom: Prom) -> None:
    src = PrometheusSource(prom.url)
    first = src.query(GAUGE, 0.0)
    assert first.value is None and "not asked" in (first.error or "")
    assert ask(src, GAUGE)[0].value == 42.5


@pytest.mark.parametrize(
    ("query", "message", "no_series"),
    [
        ("no_such_metric_anywhere", "returned no series", True),
        ("0 / 0", "the value is NaN", False),
        ("sum(rate(demo_requests_total[1m]) by (", "Prometheus says bad_data: ", False),
        ("demo_requests_total", "returned 2 series, a gate needs one number", False),
        ("demo_requests_total[1m]", "returns a range vector", False),
    ],
)
def test_anything_but_one_number_is_no_value_naming_the_query_and_why(
    prom: Prom, query: str, message: str, no_series: bool
) -> None:
    src = PrometheusSource(prom.url)
    obs = ask(src, query)[0]
    assert obs.value is None
    assert obs.error is not None and obs.error.startswith(f"query {query!r}: ")
    assert message in obs.error
    assert obs.no_series is no_series
    assert src.last_error is None  # the server answered: the others' queries are not affected


def test_bad_data_quotes_prometheus_own_message(prom: Prom) -> None:
    obs = ask(PrometheusSource(prom.url), "rate(demo_requests_total)")[0]
    assert "bad_data" in (obs.error or "")
    assert "expected type range vector" in (obs.error or "")  # Prometheus's words


def test_a_metric_guard_on_promql_passes_fails_and_is_unknown_without_data(prom: Prom) -> None:
    from opsconsole.engine.model import GateSpec

    src = PrometheusSource(prom.url)
    ok, missing = ask(src, GAUGE, "absent_metric_xyz")
    spec = GateSpec(kind="metric", name="temp", query=GAUGE, max=50.0)
    assert evaluate(spec, ok, GateMemory(), 0.0)[0].status is Verdict.PASS
    low = GateSpec(kind="metric", name="temp", query=GAUGE, max=40.0)
    assert evaluate(low, ok, GateMemory(), 0.0)[0].status is Verdict.FAIL
    unknown = GateSpec(kind="metric", name="gone", query="absent_metric_xyz", max=1.0)
    verdict = evaluate(unknown, missing, GateMemory(), 0.0)[0]
    assert verdict.status is Verdict.UNKNOWN
    assert "absent_metric_xyz" in verdict.reason and "no series" in verdict.reason


def test_a_stopped_server_is_unknown_at_once(dead_port: int) -> None:
    src = PrometheusSource(f"http://127.0.0.1:{dead_port}", timeout=2.0)
    started = time.monotonic()
    obs = ask(src, GAUGE)[0]
    assert time.monotonic() - started < 2.0
    assert obs.value is None and not obs.no_series
    assert obs.error == f"query {GAUGE!r}: connection refused: http://127.0.0.1:{dead_port}"
    assert src.last_error is not None


def test_a_server_that_stops_gives_unknown_not_its_last_value_and_answers_again_when_back(prom: Prom) -> None:
    server = forwarder(prom.url)
    port = int(server.server_address[1])
    src = PrometheusSource(f"http://127.0.0.1:{port}", timeout=1.0)
    assert ask(src, GAUGE)[0].value == 42.5
    server.shutdown()
    server.server_close()
    stopped = ask(src, GAUGE)[0]
    assert stopped.value is None and not stopped.no_series
    assert stopped.error == f"query {GAUGE!r}: connection refused: http://127.0.0.1:{port}"
    server = forwarder(prom.url, port)
    try:
        assert ask(src, GAUGE)[0].value == 42.5
        assert src.last_error is None
    finally:
        server.shutdown()
        server.server_close()


def test_a_hung_server_is_unknown_within_one_timeout_however_many_queries(silent_port: int) -> None:
    src = PrometheusSource(f"http://127.0.0.1:{silent_port}", timeout=0.5)
    queries = [f"{GAUGE} * {i}" for i in range(40)]  # five times the requests allowed in flight
    started = time.monotonic()
    obs = ask(src, *queries)
    elapsed = time.monotonic() - started
    # A tick waits one timeout for a hung server, not one per batch of queries.
    assert elapsed < 1.5, elapsed
    assert all(o.value is None and "timeout after 0.5s" in (o.error or "") for o in obs)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b"<html>\x1b[31mnot prometheus</html>", "is not JSON: <html>\x1b[31mnot prometheus</html>"),
        (502, b"<html>bad gateway</html>", "HTTP 502 from URL: <html>bad gateway</html>"),
        (
            503,
            b'{"status":"error","errorType":"unavailable","error":"TSDB not ready"}',
            "HTTP 503 unavailable from URL: TSDB not ready",
        ),
        (
            422,
            b'{"status":"error","errorType":"execution","error":"query timed out"}',
            "Prometheus says execution: query timed out",
        ),
        (
            200,
            b'{"status":"success","data":{"resultType":"string","result":[1,"x"]}}',
            "returns a string, not a number",
        ),
        (
            200,
            b'{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}',
            "the value is NaN (e.g. a ratio of two zero rates: no traffic)",
        ),
        (200, b"[1, 2]", "is not a Prometheus API object"),
    ],
)
def test_a_server_answering_an_error_or_garbage_gives_no_value(
    status: int, body: bytes, expected: str
) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Fake(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        obs = ask(PrometheusSource(url), GAUGE)[0]
    finally:
        server.shutdown()
    assert obs.value is None
    assert (obs.error or "").endswith(expected.replace("URL", url)), obs.error


def test_credentials_from_the_environment_are_used_and_never_shown(prom: Prom) -> None:
    good = PrometheusSource(prom.proxy_url, token_env=TOKEN_ENV, environ={TOKEN_ENV: TOKEN})
    assert ask(good, GAUGE)[0].value == 42.5
    basic = PrometheusSource(prom.proxy_url, basic_auth_env=BASIC_ENV, environ={BASIC_ENV: BASIC})
    assert ask(basic, GAUGE)[0].value == 42.5

    wrong = PrometheusSource(prom.proxy_url, token_env=TOKEN_ENV, environ={TOKEN_ENV: TOKEN + "x"})
    refused = ask(wrong, GAUGE)[0]
    assert refused.value is None
    assert "HTTP 401" in (refused.error or "") and "credentials refused" in (refused.error or "")
    assert TOKEN not in (refused.error or "") and TOKEN not in (wrong.last_error or "")

    unset = PrometheusSource(prom.proxy_url, token_env=TOKEN_ENV, environ={})
    obs = ask(unset, GAUGE)[0]
    assert obs.error == f"query {GAUGE!r}: environment variable {TOKEN_ENV} (bearer token) is not set"

    none = PrometheusSource(prom.proxy_url)
    assert "HTTP 401" in (ask(none, GAUGE)[0].error or "")


def test_sparkline_points_come_from_query_range(prom: Prom) -> None:
    src = PrometheusSource(prom.url, step=1.0)
    assert src.series(GAUGE, 5) == [None] * 5  # asked: fetched from the next refresh on
    ask(src, GAUGE)
    points = src.series(GAUGE, 5)
    assert len(points) == 5
    assert [p for p in points if p is not None] and all(p in (None, 42.5) for p in points)
    assert points[-1] == 42.5 or points[-2] == 42.5  # the newest step may not be evaluated yet


def test_an_environment_on_prometheus_drives_gates_through_the_observer(prom: Prom, tmp_path: Path) -> None:
    main = tmp_path / "opsconsole.yaml"
    main.write_text(
        "store: sqlite:///${WORKSPACE}/state.db\n"
        "interval: 1s\n"
        "environments:\n"
        f"  production: {{metrics: {{kind: prometheus, url: '{prom.url}', timeout: 1s}}}}\n"
        'plans: ["plans/*.yaml"]\n'
        "flags: {emergency_shutdown: {default: false}}\n"
        "alarms:\n"
        "  rules:\n"
        f"    - {{name: Hot, environment: production, query: '{GAUGE} > 40', max: 0}}\n"
    )
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "p.yaml").write_text(
        "name: p\n"
        "phases:\n"
        "  - name: one\n"
        "    environment: production\n"
        "    guards:\n"
        f"      - {{kind: metric, name: temp, query: 'max({GAUGE})', max: 45}}\n"
        f"      - {{kind: metric, name: errors, query: 'sum(rate(demo_requests_total{{code=~\"5..\"}}[30s]))', max: 1}}\n"
    )
    config = load_config(main, {"WORKSPACE": str(tmp_path / "ws")})
    observer = Observer(config)

    async def run() -> tuple[Observation, Observation, str]:
        try:
            await observer.refresh(["production"], time.time())  # the config's queries: no warm-up
            alarms = observer.evaluate_alarms(time.time())
            return (
                observer.metric("production", f"max({GAUGE})", time.time()),
                observer.metric("production", 'sum(rate(demo_requests_total{code=~"5.."}[30s]))', 0.0),
                alarms["Hot"].state,
            )
        finally:
            await observer.close()

    temp, errors, hot = asyncio.run(run())
    assert temp.value == 42.5
    assert errors.value == 0.0
    assert hot == "firing"


def test_config_checks_promql_only_for_what_is_surely_wrong() -> None:
    assert promql_problem('sum(rate(x{code=~"5.."}[1m])) / sum(rate(x[1m]))') is None
    assert promql_problem('x{a="(("}') is None
    assert promql_problem("sum(rate(x[1m])") == "column 4: '(' is never closed"
    assert promql_problem("x]") == "column 2: unexpected ']'"
    assert promql_problem(" ") == "empty query"
    assert promql_problem('x{a="b}') == 'unterminated string (opened with ")'


def test_config_rejects_a_bad_promql_and_secret_settings_on_a_scrape_source(tmp_path: Path) -> None:
    main = tmp_path / "opsconsole.yaml"
    main.write_text(
        "store: sqlite:///${WORKSPACE}/state.db\n"
        "environments:\n"
        "  production: {metrics: {kind: prometheus, url: 'http://127.0.0.1:9', token_env: lower, window: 5s}}\n"
        "  staging: {metrics: {kind: scrape, url: 'http://127.0.0.1:9', token_env: T}}\n"
        "flags: {emergency_shutdown: {default: false}}\n"
        "alarms:\n"
        "  rules:\n"
        "    - {name: A, environment: production, query: 'sum(rate(x[1m])', max: 0}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(main, {"WORKSPACE": str(tmp_path)})
    text = str(info.value)
    assert "environments.production.metrics.token_env" in text and "'lower'" in text
    assert "environments.staging.metrics.token_env" in text and "is for kind: prometheus" in text
    assert "environments.production.metrics.window: window is for kind: scrape" in text
    assert "alarms.rules[0].query: bad query: column 4: '(' is never closed" in text


def test_a_query_first_asked_while_the_server_fails_is_answered_once_it_is_back(prom: Prom) -> None:
    environ: dict[str, str] = {}
    src = PrometheusSource(prom.proxy_url, token_env=TOKEN_ENV, environ=environ)
    assert "is not set" in (ask(src, GAUGE)[0].error or "")
    late = src.query(f"max({GAUGE})", time.time())  # asked while the source fails
    assert "is not set" in (late.error or "")
    environ[TOKEN_ENV] = TOKEN  # the credentials are back
    asyncio.run(_refresh(src))
    assert src.query(f"max({GAUGE})", time.time()).value == 42.5


async def _refresh(src: PrometheusSource) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        await src.refresh(client, time.time())


def test_credentials_in_the_url_are_used_and_never_shown(prom: Prom, dead_port: int) -> None:
    user, password = BASIC.split(":")
    proxied = prom.proxy_url.replace("http://", f"http://{user}:{password}@")
    src = PrometheusSource(proxied)
    answer = ask(src, GAUGE)[0]
    assert answer.value == 42.5 and password not in answer.source
    dead = PrometheusSource(f"http://{user}:{password}@127.0.0.1:{dead_port}")
    refused = ask(dead, GAUGE)[0]
    assert refused.value is None and "connection refused" in (refused.error or "")
    assert password not in (refused.error or "") + refused.source + (dead.last_error or "")
