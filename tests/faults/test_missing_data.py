"""Never promote blind: a metrics endpoint that hangs, answers 500 or answers garbage holds the canary
at every step, 0% included, and the `alarms` guard is unknown, not passing. A reachable endpoint
that has no series for the canary yet lets a 0% step through, and the reason says so.

A real HTTP server on 127.0.0.1 plays the metrics endpoint; a real engine (SQLite store, flag files,
the runner's own ticks) drives one canary rollout on a clock the test advances.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from opsconsole.engine.core import Engine
from opsconsole.engine.model import Actor, Rollout, Verdict
from opsconsole.engine.runner import Runner

from .conftest import flag_file, load_ws, write_workspace

HANG_SECONDS = 3.0
"""A hanging endpoint answers after this long: well past the source's 1 s timeout, and bounded."""

PLAN = """
name: blind
phases:
  - name: canary
    environment: production
    strategy: {kind: canary, flag: new_checkout, steps: [0, 5, 100], step_wait: 2s}
    guards:
      - kind: metric
        name: error_rate
        query: 'ratio(http_requests_total{version="v2",code=~"5.."}, http_requests_total{version="v2"})'
        max: 0.01
        failure_limit: 2
      - {kind: alarms, none_firing: ["Demo*"]}
"""

ALARMS = """
alarms:
  rules:
    - name: DemoHighErrorRate
      environment: production
      query: 'ratio(http_requests_total{code=~"5.."}, http_requests_total)'
      max: 0.05
      for: 5s
"""


class MetricsServer:
    """/metrics that serves only stable (v1) traffic, or fails the way `mode` says."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.requests += 1
                mode = outer.mode
                if mode == "hang":
                    time.sleep(HANG_SECONDS)
                    body, code = b"", 200
                elif mode == "500":
                    body, code = b"internal error", 500
                elif mode == "garbage":
                    body, code = b"<html>oops</html>\nhttp_requests_total{ 12 abc\n", 200
                else:
                    count = 100 * outer.requests
                    body = (
                        "# TYPE http_requests_total counter\n"
                        f'http_requests_total{{version="v1",code="200"}} {count}\n'
                    ).encode()
                    code = 200
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the scraper gave up on a hanging answer and closed the connection

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MetricsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def metrics() -> Iterator[MetricsServer]:
    with MetricsServer() as server:
        yield server


class World:
    """An engine on the test's clock, and its runner ticking one second of that clock at a time."""

    def __init__(self, tmp_path: Path, port: int) -> None:
        self.ws = write_workspace(tmp_path, port, plan=PLAN, extra=ALARMS)
        self.now = 1_000_000.0
        self.engine = Engine(load_ws(self.ws), self.ws, Actor("bob", "test"), clock=lambda: self.now)
        self.runner = Runner(self.engine)
        self.rid = self.engine.start_rollout("blind", "missing-data test").id

    def tick(self, times: int = 1) -> Rollout:
        async def run() -> None:
            for _ in range(times):
                await self.runner.tick()
                self.now += 1.0

        asyncio.run(self._closing(run()))
        return self.engine.rollout(self.rid)

    async def _closing(self, coro: object) -> None:
        try:
            await coro  # type: ignore[misc]
        finally:
            await self.runner.observer.close()

    def canary_percent(self) -> int:
        flags = flag_file(self.ws)["flags"]
        return int(flags["new_checkout"].get("rollout_percentage", 0))

    def guard(self, r: Rollout, name: str) -> tuple[Verdict, str]:
        v = next(v for v in r.verdicts if v.gate == name)
        return v.status, v.reason


@pytest.mark.parametrize(
    ("mode", "cause"),
    [("hang", "timeout after 1"), ("500", "HTTP 500 from"), ("garbage", "bad exposition at line")],
)
def test_a_failing_metrics_source_holds_the_canary_at_zero_percent(tmp_path, metrics, mode, cause):
    metrics.mode = mode
    world = World(tmp_path, metrics.port)
    started = time.monotonic()
    r = world.tick(6)  # 6 s of the test's clock, three times the step's wait
    elapsed = time.monotonic() - started
    assert r.phase_index == 0 and r.step_index == 0, r.reason
    assert world.canary_percent() == 0
    assert r.reason.startswith("guard error_rate source failed, holding at 0%"), r.reason
    assert cause in r.reason, r.reason
    status, reason = world.guard(r, "error_rate")
    assert status is Verdict.UNKNOWN and cause in reason
    status, reason = world.guard(r, "alarms")
    assert status is Verdict.UNKNOWN, reason  # its source is failing: "none firing" is not known
    assert "alarm source failed for DemoHighErrorRate" in reason and cause in reason
    assert metrics.requests >= 5
    # Every scrape is bounded by the source's 1 s timeout, whatever the endpoint does.
    assert elapsed < 6 * (1.0 + 1.5), elapsed


def test_a_reachable_source_without_canary_series_lets_zero_percent_through_and_says_so(tmp_path, metrics):
    world = World(tmp_path, metrics.port)
    r = world.tick(2)
    assert r.step_index == 0
    assert "guard error_rate: no canary traffic yet at 0%: allowed" in r.reason, r.reason
    assert world.guard(r, "alarms")[0] is Verdict.PASS
    r = world.tick(3)
    assert r.step_index == 1 and world.canary_percent() == 5
    timeline = [e.data["reason"] for e in world.engine.audit_events() if e.action == "rollout.transition"]
    assert "step 0% -> 5% (wait over; guard error_rate: no canary traffic yet at 0%: allowed)" in timeline
    # At 5% users are exposed: still no v2 series is no longer allowed.
    r = world.tick(4)
    assert r.step_index == 1 and world.canary_percent() == 5
    assert r.reason.startswith("guard error_rate has no data"), r.reason


def test_a_source_that_fails_mid_canary_holds_where_it_is(tmp_path, metrics):
    world = World(tmp_path, metrics.port)
    r = world.tick(5)
    assert r.step_index == 1, r.reason
    metrics.mode = "500"
    r = world.tick(4)
    assert r.step_index == 1 and world.canary_percent() == 5
    assert r.reason.startswith("guard error_rate source failed, holding at 5%"), r.reason
