"""The console's own figures sent with PutMetricData to moto's server, and read back from it; a
publish to a hung endpoint never holds up the kill switch, and its failure is said (a warning on the
bus, `last_error`), not fatal."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opsconsole.engine import Actor, Engine, open_engine
from opsconsole.engine.runner import Runner
from opsconsole.engine.targets.cloudwatch_publish import MetricPublisher

from .conftest import SECRET_KEY, cw, write_config

NAMES = {
    "rollbacks",
    "kill_switch_engaged",
    "approvals_waiting",
    "improvement_cycles_failed",
    "improvements_rolled_back",
    "circuit_breaker_opens",
}


def engine_publishing_to(tmp_path: Path, endpoint: str, namespace: str, interval: str = "0.1s") -> Engine:
    publish = (
        f"publish: {{kind: cloudwatch, namespace: {namespace}, region: us-east-1, endpoint: '{endpoint}',"
        f" timeout: 1s, interval: {interval}, dimensions: {{Console: test}}}}\n"
    )
    main = write_config(tmp_path, endpoint, extra=publish)
    return open_engine(str(main), tmp_path / "ws", actor=Actor("root", "test"))


def read_back(endpoint: str, namespace: str, name: str) -> float | None:
    now = datetime.now(UTC)
    got = cw(endpoint).get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=[{"Name": "Console", "Value": "test"}],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )
    points = got["Datapoints"]
    return max(float(p["Maximum"]) for p in points) if points else None


def test_figures_are_published_and_read_back_from_cloudwatch(cw_server: str, tmp_path: Path) -> None:
    namespace = f"OpsTest{secrets.token_hex(3)}"
    engine = engine_publishing_to(tmp_path, cw_server, namespace)
    try:
        assert engine.config.publish is not None
        publisher = MetricPublisher(engine, engine.config.publish)
        asyncio.run(publisher.publish())  # where counting starts: nothing sent
        assert publisher.published == 0
        engine.kill("test: publish the kill switch")
        asyncio.run(publisher.publish())
        assert publisher.last_error is None and publisher.published == 1
    finally:
        engine.close()
    listed = cw(cw_server).list_metrics(Namespace=namespace)["Metrics"]
    assert {m["MetricName"] for m in listed} == NAMES
    assert read_back(cw_server, namespace, "kill_switch_engaged") == 1.0
    assert read_back(cw_server, namespace, "approvals_waiting") == 0.0
    assert read_back(cw_server, namespace, "rollbacks") == 0.0


def test_the_runner_publishes_from_its_tick(cw_server: str, tmp_path: Path) -> None:
    namespace = f"OpsTest{secrets.token_hex(3)}"
    engine = engine_publishing_to(tmp_path, cw_server, namespace)
    try:
        runner = Runner(engine, interval=0.1)

        async def run() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(runner.run(stop))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                if runner.publisher is not None and runner.publisher.published >= 1:
                    break
            stop.set()
            await task

        asyncio.run(run())
        assert runner.publisher is not None and runner.publisher.published >= 1
    finally:
        engine.close()
    assert read_back(cw_server, namespace, "kill_switch_engaged") == 0.0


def test_a_hung_endpoint_never_holds_up_the_kill_switch_and_its_failure_is_said(
    tmp_path: Path, silent_port: int
) -> None:
    endpoint = f"http://127.0.0.1:{silent_port}"
    engine = engine_publishing_to(tmp_path, endpoint, "OpsTestHung")
    warnings: list[str] = []
    engine.bus.subscribe(
        lambda e: warnings.append(str(e.data.get("message"))) if e.kind == "warning" else None
    )
    try:
        assert engine.config.publish is not None
        publisher = MetricPublisher(engine, engine.config.publish)

        async def run() -> tuple[float, float]:
            await publisher.publish()  # the baseline
            assert publisher.kick(time.time())
            await asyncio.sleep(0.2)  # the put is now waiting on the hung endpoint
            started = time.monotonic()
            await asyncio.to_thread(engine.kill, "test: kill while publishing hangs")
            killed_in = time.monotonic() - started
            waited = time.monotonic()
            task: Any = publisher._task
            await task
            return killed_in, time.monotonic() - waited

        killed_in, publish_took = asyncio.run(run())
        assert killed_in < 1.0
        assert engine.kill_state().engaged
        assert publish_took < 4.0  # bounded by its timeout
        assert publisher.last_error is not None and endpoint in publisher.last_error
        assert "timeout" in publisher.last_error.lower()
        assert [w for w in warnings if "publishing to" in w]
        assert all(SECRET_KEY not in w for w in warnings)
    finally:
        engine.close()
