"""CloudWatch alarms (DescribeAlarms) against moto's server: their state, reason and since feed the
`alarms` gate through the observer, with their source; an alarm set to ALARM fails its gate; an
endpoint that is down gives `unknown`, never "none firing", and does not clear a firing alarm.

moto 5.2 has no PutCompositeAlarm, so a composite alarm cannot be made there: how one is read is
checked on DescribeAlarms' documented answer shape instead.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from opsconsole.engine.gates import GateMemory, evaluate
from opsconsole.engine.model import CloudWatchAlarms, Observation, Verdict
from opsconsole.engine.observe import Observer
from opsconsole.engine.sources.cloudwatch import CloudWatchAlarmSource

from .conftest import cw, load, write_config


@pytest.fixture
def prefix() -> str:
    return f"SB{secrets.token_hex(3)}-"


def make_alarm(endpoint: str, name: str, state: str = "OK", reason: str = "", data: str = "{}") -> None:
    client = cw(endpoint)
    client.put_metric_alarm(
        AlarmName=name,
        MetricName="improvement_cycles_failed",
        Namespace="SelfBuilding",
        Statistic="Sum",
        Period=3600,
        EvaluationPeriods=1,
        Threshold=3,
        ComparisonOperator="GreaterThanThreshold",
    )
    if state != "OK" or reason:
        client.set_alarm_state(
            AlarmName=name, StateValue=state, StateReason=reason or state, StateReasonData=data
        )


def observe_alarms(observer: Observer, config: Any) -> tuple[Observation, dict[str, Any]]:
    """One tick's refresh and the production guard's `alarms` observation."""
    phase = config.plans["p"].phases[0]
    spec = phase.guards[0]

    async def run() -> tuple[Observation, dict[str, Any]]:
        await observer.refresh(["production"], time.time())
        alarms = dict(observer.evaluate_alarms(time.time()))
        obs = await observer.observe(spec, cast(Any, None), phase, time.time())
        return obs, alarms

    return asyncio.run(run())


def guarded(tmp_path: Path, endpoint: str, prefix: str, pattern: str | None = None) -> Any:
    main = write_config(
        tmp_path,
        endpoint,
        prefix=prefix,
        guards=f"      - {{kind: alarms, none_firing: ['{pattern or prefix + '*'}']}}\n",
    )
    return load(main)


def test_an_alarm_set_to_alarm_fails_its_gate_with_state_reason_since_and_source(
    cw_server: str, prefix: str, tmp_path: Path
) -> None:
    make_alarm(
        cw_server,
        f"{prefix}HighFailureRate",
        "ALARM",
        "Threshold Crossed: [5.0] > 3.0",
        '{"recentDatapoints": [5.0]}',
    )
    make_alarm(cw_server, f"{prefix}HighRollbackRate")
    make_alarm(cw_server, "Other-Alarm", "ALARM")  # another prefix: not this environment's
    config = guarded(tmp_path, cw_server, prefix)
    observer = Observer(config)
    obs, alarms = observe_alarms(observer, config)
    firing = alarms[f"{prefix}HighFailureRate"]
    assert (firing.state, firing.environment, firing.severity) == ("firing", "production", "critical")
    assert firing.reason == "Threshold Crossed: [5.0] > 3.0" and firing.value == 5.0
    assert firing.source == f"cloudwatch {cw_server}"
    assert firing.since is not None and abs(firing.since - time.time()) < 60
    assert alarms[f"{prefix}HighRollbackRate"].state == "ok"
    assert "Other-Alarm" not in alarms
    spec = config.plans["p"].phases[0].guards[0]
    verdict = evaluate(spec, obs, GateMemory(), 0.0)[0]
    assert verdict.status is Verdict.FAIL and f"{prefix}HighFailureRate" in obs.detail

    cw(cw_server).set_alarm_state(AlarmName=f"{prefix}HighFailureRate", StateValue="OK", StateReason="back")
    obs, alarms = observe_alarms(observer, config)
    assert alarms[f"{prefix}HighFailureRate"].state == "ok"
    assert evaluate(spec, obs, GateMemory(), 0.0)[0].status is Verdict.PASS


def test_insufficient_data_is_unknown_without_blocking_as_a_failed_source_would(
    cw_server: str, prefix: str, tmp_path: Path
) -> None:
    make_alarm(cw_server, f"{prefix}Quiet", "INSUFFICIENT_DATA", "no datapoints")
    config = guarded(tmp_path, cw_server, prefix)
    obs, alarms = observe_alarms(Observer(config), config)
    quiet = alarms[f"{prefix}Quiet"]
    assert quiet.state == "unknown" and not quiet.source_failed
    assert quiet.reason.startswith("INSUFFICIENT_DATA")
    assert obs.error is None and obs.value == 0.0


def test_a_dead_endpoint_before_any_answer_is_unknown_for_every_alarm_the_prefix_could_name(
    prefix: str, tmp_path: Path, dead_port: int
) -> None:
    endpoint = f"http://127.0.0.1:{dead_port}"
    config = guarded(tmp_path, endpoint, prefix, pattern=f"{prefix}High*")
    obs, alarms = observe_alarms(Observer(config), config)
    assert list(alarms) == [f"{prefix}*"]
    assert alarms[f"{prefix}*"].state == "unknown" and endpoint in alarms[f"{prefix}*"].reason
    spec = config.plans["p"].phases[0].guards[0]
    verdict = evaluate(spec, obs, GateMemory(), 0.0)[0]
    # The environment's own alarm source failing makes "none firing" unknown, as for Alertmanager.
    assert verdict.status is Verdict.UNKNOWN and "alarm source of production" in (obs.error or "")
    assert endpoint in (obs.error or "")


def test_a_firing_alarm_stays_firing_while_the_endpoint_is_down(cw_server: str, prefix: str) -> None:
    make_alarm(cw_server, f"{prefix}Breaker", "ALARM", "breaker open")
    make_alarm(cw_server, f"{prefix}Calm")
    spec = CloudWatchAlarms(region="us-east-1", endpoint=cw_server, prefix=prefix, timeout=1.0, interval=0.0)
    src = CloudWatchAlarmSource("production", spec)
    assert asyncio.run(src.refresh(None, time.time())) is None
    since = src.alarms[f"{prefix}Breaker"].since
    src.spec = CloudWatchAlarms(
        region="us-east-1", endpoint="http://127.0.0.1:9", prefix=prefix, timeout=1.0, interval=0.0
    )
    error = asyncio.run(src.refresh(None, time.time()))
    assert error is not None
    breaker, calm = src.alarms[f"{prefix}Breaker"], src.alarms[f"{prefix}Calm"]
    assert breaker.state == "firing" and breaker.since == since and "last seen in ALARM" in breaker.reason
    assert calm.state == "unknown" and calm.source_failed


def test_a_composite_alarm_is_read_with_its_rule_state_and_since() -> None:
    src = CloudWatchAlarmSource("production", CloudWatchAlarms(prefix="SelfBuilding-"))
    at = datetime(2026, 11, 29, 23, 0, tzinfo=UTC)
    status = src._status(
        "composite",
        {
            "AlarmName": "SelfBuilding-Any",
            "AlarmRule": 'ALARM("SelfBuilding-HighFailureRate") OR ALARM("SelfBuilding-HighRollbackRate")',
            "StateValue": "ALARM",
            "StateReason": "arn:aws:cloudwatch:...:alarm:SelfBuilding-HighFailureRate transitioned to ALARM",
            "StateUpdatedTimestamp": datetime(2026, 11, 29, 23, 5, tzinfo=UTC),
            "StateTransitionedTimestamp": at,
        },
    )
    assert (status.name, status.state, status.since) == ("SelfBuilding-Any", "firing", at.timestamp())
    assert status.reason.startswith('composite (ALARM("SelfBuilding-HighFailureRate") OR')
