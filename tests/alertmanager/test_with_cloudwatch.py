"""Both alarm sources in one configuration: production's Alertmanager and staging's CloudWatch alarms
(the session's moto server) feed one alarm list, each alarm naming its source, and one `alarms` gate;
the runner's tick starts both reads without waiting for them."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any, cast

import pytest

from opsconsole.engine.alarms import FIRING
from opsconsole.engine.model import AlarmSource, CloudWatchAlarms
from opsconsole.engine.observe import Observer
from opsconsole.tui.panes.metrics import source_short
from tests import moto_server

from .conftest import Alertmanager, load_ws, write_workspace


@pytest.fixture
def cw_endpoint(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> str:
    moto_server.aws_environment(monkeypatch, tmp_path_factory.mktemp("aws"))
    return moto_server.endpoint(pytestconfig, tmp_path_factory.getbasetemp())


def cloudwatch_alarm(endpoint: str, name: str) -> None:
    import boto3

    client: Any = boto3.session.Session().client("cloudwatch", endpoint_url=endpoint, region_name="us-east-1")
    client.put_metric_alarm(
        AlarmName=name,
        MetricName="errors",
        Namespace="Both",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    client.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="errors over 1")


def test_alertmanager_and_cloudwatch_alarms_share_the_list_and_the_gate(
    alertmanager: Alertmanager, test_id: str, cw_endpoint: str, tmp_path: Path, token: str
) -> None:
    prefix = f"Ops{secrets.token_hex(3)}-"
    ws = write_workspace(tmp_path, alertmanager.url, test_id)
    main = ws / "opsconsole.yaml"
    staging = (
        f"  staging:\n    alarms: {{kind: cloudwatch, region: us-east-1, endpoint: '{cw_endpoint}',"
        f" timeout: 2s, interval: 0.1s, prefix: {prefix}}}\n"
    )
    main.write_text(main.read_text().replace("  staging:\n", staging, 1))
    config = load_ws(ws)
    assert isinstance(config.environments["production"].alarms, AlarmSource)
    assert config.environments["staging"].alarms == CloudWatchAlarms(
        region="us-east-1", endpoint=cw_endpoint, timeout=2.0, interval=0.1, prefix=prefix
    )
    alertmanager.post(test_id, "OpsDiskFull", severity="critical")
    cloudwatch_alarm(cw_endpoint, f"{prefix}Errors")
    phase = config.plans["guarded"].phases[0]

    async def run() -> tuple[list[Any], dict[str, Any], Any]:
        observer = Observer(config)
        try:
            # The runner's tick: both reads started, neither awaited, so nothing from them yet.
            await observer.refresh((), time.time(), wait_for_alarms=False)
            reads = list(observer._alarm_reads.values())
            assert len(reads) == 2 and not observer.evaluate_alarms(time.time())
            await asyncio.wait_for(asyncio.gather(*reads), 10)
            alarms = dict(observer.evaluate_alarms(time.time()))
            obs = await observer.observe(phase.gates[0], cast(Any, None), phase, time.time())
            return reads, alarms, obs
        finally:
            await observer.close()

    _, alarms, obs = asyncio.run(run())
    by_name = {a.name: a for a in alarms.values()}
    disk, errors = by_name["OpsDiskFull"], by_name[f"{prefix}Errors"]
    assert disk.state == FIRING and disk.environment == "production" and disk.source == "alertmanager"
    assert errors.state == FIRING and errors.environment == "staging"
    assert errors.source == f"cloudwatch {cw_endpoint}" and errors.reason == "errors over 1"
    assert (source_short(disk.source), source_short(errors.source), source_short("rules")) == (
        "am",
        "cw",
        "rule",
    )
    assert obs.error is None and obs.value == 2.0
    assert set(obs.detail.split(", ")) == {"OpsDiskFull", f"{prefix}Errors"}
