"""The demo environment end to end on 127.0.0.1: the sample service reads a real flag file, the
traffic generator loads it, and the scrape source turns its /metrics into the numbers gates decide
on. The faults must be visible in those numbers, or the demo's guards would have nothing to catch."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from opsconsole.demo.service import BUCKETS, DemoService
from opsconsole.demo.traffic import TrafficGenerator
from opsconsole.engine.flags import in_rollout
from opsconsole.engine.sources.promtext import parse
from opsconsole.engine.sources.scrape import ScrapeSource

V2_ERROR_RATIO = 'ratio(http_requests_total{version="v2",code=~"5.."}, http_requests_total{version="v2"})'
P95 = 'quantile(0.95, http_request_duration_seconds{version="%s"})'
USERS = [f"user-{n}" for n in range(120)]


def write_flags(path: Path, percentage: int, *, enabled: bool = True, shutdown: bool = False) -> None:
    """As the engine does: a whole new file renamed into place."""
    doc = {
        "version": 1,
        "environment": "production",
        "emergency_shutdown": shutdown,
        "flags": {
            "new_checkout": {
                "enabled": enabled,
                "rollout_strategy": "percentage",
                "rollout_percentage": percentage,
            }
        },
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


@pytest.fixture
def flag_file(tmp_path: Path) -> Path:
    path = tmp_path / "feature_flags.json"
    write_flags(path, 50)
    return path


@pytest.fixture
def service(flag_file: Path) -> Iterator[DemoService]:
    with DemoService(flag_file, seed=7) as svc:
        yield svc


def versions(svc: DemoService, users: list[str]) -> dict[str, str]:
    """Each user's version as the service answers it (8 requests at a time: the service sleeps a few ms)."""
    with httpx.Client(base_url=svc.url, trust_env=False, timeout=5.0) as client:

        def ask(user: str) -> str:
            response = client.get("/", params={"user": user})
            assert response.status_code == 200
            assert response.json() == {"version": response.headers["X-Version"], "user": user}
            return response.headers["X-Version"]

        with ThreadPoolExecutor(8) as pool:
            return dict(zip(users, pool.map(ask, users), strict=True))


# ------------------------------------------------------------------------------------------ the service


def test_faults_show_in_the_scraped_error_ratio_and_latency(service):
    """One run of traffic, the fault switched every 3 s; each phase is judged over a 2 s window that
    starts after the switch, exactly as a guard would see it."""
    traffic = TrafficGenerator(service.url, rps=60, concurrency=32, max_seconds=15, seed=3)
    source = ScrapeSource(service.url + "/metrics", timeout=1.0, window=2.0)
    seen: dict[str, dict[str, float | None]] = {}

    async def run() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            for fault in ("none", "canary-errors", "canary-latency"):
                service.fault = fault
                for _ in range(6):
                    await asyncio.sleep(0.5)
                    assert await source.refresh(client, time.monotonic()) is None
                now = time.monotonic()
                seen[fault] = {
                    "errors": source.query(V2_ERROR_RATIO, now).value,
                    "p95_v1": source.query(P95 % "v1", now).value,
                    "p95_v2": source.query(P95 % "v2", now).value,
                    "rps": source.query("rate(http_requests_total)", now).value,
                    "canary": source.query("demo_canary_percentage", now).value,
                }

    traffic.start()
    try:
        asyncio.run(run())
    finally:
        traffic.stop()
    assert seen["none"]["errors"] == 0.0
    assert seen["none"]["canary"] == 50.0
    assert seen["none"]["p95_v2"] is not None and seen["none"]["p95_v2"] < 0.1
    assert seen["canary-errors"]["errors"] is not None and seen["canary-errors"]["errors"] > 0.1
    latency = seen["canary-latency"]
    assert latency["p95_v2"] is not None and latency["p95_v2"] > 0.5
    assert latency["p95_v1"] is not None and latency["p95_v1"] < 0.1  # the old version stays healthy
    assert latency["errors"] == 0.0
    # slow answers hold workers, not the schedule: throughput stays near the target
    assert latency["rps"] is not None and latency["rps"] > 40
    assert traffic.failed == 0
    assert set(traffic.by_version) == {"v1", "v2"}
    assert traffic.by_status.get(500, 0) > 0


def test_users_stick_to_their_version_and_raising_the_percentage_keeps_v2_users(service, flag_file):
    first = versions(service, USERS)
    assert versions(service, USERS) == first
    assert first == {u: "v2" if in_rollout(50, "new_checkout", u) else "v1" for u in USERS}
    on_v2 = {u for u, v in first.items() if v == "v2"}
    assert 30 < len(on_v2) < 90

    write_flags(flag_file, 80)
    raised = versions(service, USERS)
    now_on_v2 = {u for u, v in raised.items() if v == "v2"}
    assert on_v2 < now_on_v2  # nobody who had v2 lost it, and more users have it now


@pytest.mark.parametrize(
    "make_unsafe",
    [
        pytest.param(lambda p: p.unlink(), id="missing"),
        pytest.param(lambda p: p.write_text('{"flags": {"new_checkout": {"enabled": tr'), id="truncated"),
        pytest.param(lambda p: p.write_text('["not", "the", "schema"]'), id="not-an-object"),
        pytest.param(
            lambda p: p.write_text(
                '{"flags": {"new_checkout": {"enabled": true, "rollout_percentage": NaN}}}'
            ),
            id="nan-percentage",
        ),
        pytest.param(lambda p: write_flags(p, 100, shutdown=True), id="emergency-shutdown"),
        pytest.param(lambda p: write_flags(p, 100, enabled=False), id="disabled"),
    ],
)
def test_everyone_gets_v1_when_the_flag_file_says_so_or_cannot_be_trusted(service, flag_file, make_unsafe):
    make_unsafe(flag_file)
    assert set(versions(service, USERS[:40]).values()) == {"v1"}
    assert parse_metrics(service)[("demo_canary_percentage", ())] == 0


def test_a_service_started_without_a_flag_file_serves_v1(tmp_path):
    with DemoService(tmp_path / "nowhere" / "flags.json") as svc:
        assert set(versions(svc, USERS[:20]).values()) == {"v1"}


def parse_metrics(svc: DemoService) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(svc.url + "/metrics", trust_env=False)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, sample.labels): sample.value for sample in parse(response.text)}


def test_metrics_are_valid_exposition_text_with_every_series(service):
    versions(service, USERS[:30])
    text = httpx.get(service.url + "/metrics", trust_env=False).text
    assert "# TYPE http_requests_total counter" in text
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert "# TYPE demo_canary_percentage gauge" in text
    metrics = parse_metrics(service)
    answered = sum(v for (name, _), v in metrics.items() if name == "http_requests_total")
    assert answered == 30
    # every version x code series exists from the start, so the first error is an increase
    assert metrics[("http_requests_total", (("code", "500"), ("version", "v2")))] == 0
    for version in ("v1", "v2"):
        bounds = [
            dict(labels)["le"]
            for (name, labels) in metrics
            if name.endswith("_bucket") and (("version", version) in labels)
        ]
        assert bounds == [str(b) for b in BUCKETS] + ["+Inf"]
        count = metrics[("http_request_duration_seconds_count", (("version", version),))]
        assert (
            metrics[("http_request_duration_seconds_bucket", (("le", "+Inf"), ("version", version)))] == count
        )
    assert metrics[("demo_canary_percentage", ())] == 50


def test_health_not_found_and_fault_validation(service):
    health = httpx.get(service.url + "/health", trust_env=False)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert httpx.get(service.url + "/nope", trust_env=False).status_code == 404
    with pytest.raises(ValueError, match="unknown fault 'slow'"):
        service.fault = "slow"
    assert service.fault == "none"


def test_stop_is_prompt_with_slow_requests_in_flight(flag_file):
    write_flags(flag_file, 100)
    svc = DemoService(flag_file, fault="canary-latency").start()
    url = svc.url
    traffic = TrafficGenerator(url, rps=40, concurrency=8, max_seconds=10).start()
    time.sleep(0.3)
    started = time.monotonic()
    traffic.stop()
    svc.stop()
    assert time.monotonic() - started < 1.5
    assert not traffic.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health", trust_env=False, timeout=1.0)


# ------------------------------------------------------------------------------------------ traffic


def test_traffic_stops_by_itself_after_max_requests(service):
    traffic = TrafficGenerator(service.url, rps=200, max_requests=25, seed=1).start()
    assert traffic.join(timeout=5.0)
    assert traffic.sent == 25 and traffic.failed == 0
    assert sum(traffic.by_version.values()) == 25


def test_traffic_refuses_hosts_other_than_loopback():
    for url in ("http://example.com:80", "http://10.0.0.1:8080", "https://127.0.0.1:1", "ftp://127.0.0.1"):
        with pytest.raises(ValueError):
            TrafficGenerator(url)


def test_connection_errors_count_as_failures():
    port = free_port()
    traffic = TrafficGenerator(f"http://127.0.0.1:{port}", rps=100, max_requests=5).start()
    assert traffic.join(timeout=5.0)
    assert (traffic.sent, traffic.failed, traffic.by_version) == (5, 5, {})


# ------------------------------------------------------------------------------------------ scrape errors


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refresh(url: str, timeout: float = 1.0) -> tuple[str | None, ScrapeSource]:
    source = ScrapeSource(url, timeout=timeout)

    async def run() -> str | None:
        async with httpx.AsyncClient(trust_env=False) as client:
            return await source.refresh(client, time.monotonic())

    return asyncio.run(run()), source


def test_scrape_errors_say_what_and_where(service):
    error, source = refresh(service.url + "/nope")
    assert error == f"HTTP 404 from {service.url}/nope"
    assert source.query("up", time.monotonic()).error == error
    error, _ = refresh(service.url + "/health")
    assert error is not None and error.startswith("bad exposition at line 1: expected a metric name")
    assert error.endswith(f"({service.url}/health)")
    url = f"http://127.0.0.1:{free_port()}/metrics"
    assert refresh(url)[0] == f"connection refused: {url}"


@pytest.fixture
def trickling_server() -> Iterator[str]:
    """Answers 200 and then sends its body one byte every 0.1 s: no single read ever times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n")
            while not done.wait(0.1):
                try:
                    conn.sendall(b"#")
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/metrics"
    finally:
        done.set()
        listener.close()
        thread.join(timeout=2.0)


def test_a_trickling_endpoint_cannot_hang_the_refresh(trickling_server):
    started = time.monotonic()
    error, _ = refresh(trickling_server, timeout=0.5)
    assert error == f"timeout after 0.5s: {trickling_server}"
    assert time.monotonic() - started < 1.5
