"""The CloudWatch metric source against moto's server on 127.0.0.1: GetMetricData answers gates and
guards (one metric, or metric math over metrics), through the observer as the runner uses it; no
datapoints, a query CloudWatch refuses, a dead or hung endpoint each give `unknown` naming the query
and why, within the timeout, and the event loop keeps running meanwhile.

What moto implements of metric math (moto 5.2): an expression that is one metric's id is answered;
any other expression (arithmetic, functions) is answered with no datapoints, and percentile
statistics (p99, tm90, IQM) fail with HTTP 500. So arithmetic math is checked here for what the
console sends and how it reads the answer, not for CloudWatch's arithmetic.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from opsconsole.engine.gates import GateMemory, evaluate
from opsconsole.engine.model import MetricSource, Observation, Verdict
from opsconsole.engine.observe import Observer
from opsconsole.engine.sources.cloudwatch import CloudWatchSource
from opsconsole.engine.sources.cwquery import QuerySyntaxError, parse_query

from .conftest import SECRET_KEY, cw, load, write_config


def put(endpoint: str, namespace: str, **values: float) -> None:
    cw(endpoint).put_metric_data(
        Namespace=namespace,
        MetricData=[{"MetricName": name, "Value": value, "Unit": "Count"} for name, value in values.items()],
    )


def ask(src: CloudWatchSource, *queries: str) -> list[Observation]:
    async def run() -> list[Observation]:
        for q in queries:
            src.query(q, 0.0)
        await src.refresh(None, time.time())
        return [src.query(q, time.time()) for q in queries]

    return asyncio.run(run())


def source(endpoint: str, timeout: float = 1.0) -> CloudWatchSource:
    return CloudWatchSource(
        MetricSource(kind="cloudwatch", url=endpoint, region="us-east-1", timeout=timeout, interval=0.0)
    )


def test_one_metric_and_metric_math_over_it_answer_the_newest_datapoint(
    cw_server: str, namespace: str
) -> None:
    put(cw_server, namespace, improvement_cycles_failed=4.0, improvements_rolled_back=1.0)
    one, math, dims = ask(
        source(cw_server),
        f"{namespace}:improvement_cycles_failed:Sum",
        f"failed; failed = {namespace}:improvement_cycles_failed:Sum; back = {namespace}:improvements_rolled_back:Sum:1m",
        f"{namespace}:improvement_cycles_failed{{Environment=nowhere}}:Sum",
    )
    assert (one.value, one.error) == (4.0, None)
    assert one.source == f"cloudwatch {cw_server}"
    assert (math.value, math.error) == (4.0, None)
    assert dims.value is None and dims.no_series and "no datapoints" in (dims.error or "")


def test_the_math_request_names_every_metric_once_with_ids_of_its_own() -> None:
    q = parse_query(
        "100 * bad / MAX([total, 1]); bad = NS:errors{Env=prod}:Sum; total = AWS/ELB:Requests:Sum:5m"
    )
    sent = q.data_queries("q3", 60)
    assert [d["Id"] for d in sent] == ["q3_bad", "q3_total", "q3"]
    assert sent[2] == {"Id": "q3", "Expression": "100 * q3_bad / MAX([q3_total, 1])", "ReturnData": True}
    assert sent[0]["MetricStat"] == {
        "Metric": {
            "Namespace": "NS",
            "MetricName": "errors",
            "Dimensions": [{"Name": "Env", "Value": "prod"}],
        },
        "Period": 60,
        "Stat": "Sum",
    }
    assert sent[1]["ReturnData"] is False and sent[1]["MetricStat"]["Period"] == 300  # type: ignore[index]


def test_bad_queries_are_refused_saying_what_is_wrong() -> None:
    for text, words in [
        ("", "empty query"),
        ("NS:metric", "is not a metric"),
        ("NS:metric:Median", "unknown statistic 'Median'"),
        ("NS:metric:Sum:7s", "period 7s is not one CloudWatch takes"),
        ("a + b; a = NS:x:Sum", "math uses 'b', which no '; b = ...' defines"),
        ("a; A = NS:x:Sum", "must start with a lower-case letter"),
        ("SUM(a; a = NS:x:Sum", "'(' is never closed"),
        ("a; a = NS:x{Env}:Sum", "dimension 'Env' should be name=value"),
    ]:
        try:
            parse_query(text)
        except QuerySyntaxError as exc:
            assert words in str(exc), (text, str(exc))
        else:
            raise AssertionError(f"{text!r} was accepted")


def test_a_query_cloudwatch_refuses_is_unknown_naming_it_and_the_others_still_answer(
    cw_server: str, namespace: str
) -> None:
    put(cw_server, namespace, latency=120.0)
    good, bad = ask(source(cw_server), f"{namespace}:latency:Average", f"{namespace}:latency:p99")
    assert good.value == 120.0 and good.error is None
    assert bad.value is None and not bad.no_series
    assert (bad.error or "").startswith(f"query '{namespace}:latency:p99': ")
    assert "500" in (bad.error or "") and "<html" not in (bad.error or "")


def test_a_dead_endpoint_is_unknown_at_once_naming_it(dead_port: int) -> None:
    endpoint = f"http://127.0.0.1:{dead_port}"
    started = time.monotonic()
    (obs,) = ask(source(endpoint), "NS:errors:Sum")
    assert time.monotonic() - started < 3
    assert obs.value is None and not obs.no_series
    assert "NS:errors:Sum" in (obs.error or "") and endpoint in (obs.error or "")
    assert SECRET_KEY not in (obs.error or "")


def test_a_hung_endpoint_is_unknown_within_its_timeout_and_the_loop_keeps_running(silent_port: int) -> None:
    src = source(f"http://127.0.0.1:{silent_port}", timeout=1.0)
    src.query("NS:errors:Sum", 0.0)

    async def run() -> tuple[float, int]:
        beats = 0

        async def heartbeat() -> None:
            nonlocal beats
            while True:
                await asyncio.sleep(0.05)
                beats += 1

        ticker = asyncio.create_task(heartbeat())
        started = time.monotonic()
        await src.refresh(None, time.time())
        took = time.monotonic() - started
        ticker.cancel()
        return took, beats

    took, beats = asyncio.run(run())
    assert took < 3.0
    assert beats >= 10  # the event loop was never blocked by boto3
    obs = src.query("NS:errors:Sum", time.time())
    assert obs.value is None and "timeout" in (obs.error or "").lower()


def test_gates_on_cloudwatch_are_evaluated_through_the_observer(
    cw_server: str, namespace: str, tmp_path: Path
) -> None:
    put(cw_server, namespace, circuit_breaker_opens=3.0)
    failing = f"{namespace}:circuit_breaker_opens:Sum"
    missing = f"{namespace}:never_written:Sum"
    main = write_config(
        tmp_path,
        cw_server,
        guards=f"      - {{kind: metric, name: opens, query: '{failing}', max: 1}}\n"
        f"      - {{kind: metric, name: gone, query: '{missing}', max: 1, on_missing: hold}}\n",
        rules=f"    - {{name: Opens, environment: production, query: '{failing}', max: 2}}\n",
    )
    config = load(main)
    observer = Observer(config)
    guards = config.plans["p"].phases[0].guards

    async def run() -> tuple[Observation, Observation, str]:
        try:
            await observer.refresh(["production"], time.time())  # the config's queries: no warm-up
            alarms = observer.evaluate_alarms(time.time())
            return (
                observer.metric("production", failing, time.time()),
                observer.metric("production", missing, time.time()),
                alarms["Opens"].state,
            )
        finally:
            await observer.close()

    opens, gone, rule = asyncio.run(run())
    assert evaluate(guards[0], opens, GateMemory(), 0.0)[0].status is Verdict.FAIL
    verdict = evaluate(guards[1], gone, GateMemory(), 0.0)[0]
    assert verdict.status is Verdict.UNKNOWN and missing in verdict.reason
    assert rule == "firing"


def test_missing_credentials_are_unknown_saying_where_boto3_looked(
    cw_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (obs,) = ask(source(cw_server, timeout=2.0), "NS:errors:Sum")
    assert obs.value is None and "no AWS credentials" in (obs.error or "")


@pytest.mark.parametrize(
    ("code", "status", "words"),
    [
        ("Throttling", 400, "throttled by cloudwatch us-east-1 (Throttling): Rate exceeded"),
        (
            "InvalidClientTokenId",
            403,
            "credentials refused by cloudwatch us-east-1 (InvalidClientTokenId): Rate exceeded",
        ),
        ("InvalidParameterValue", 400, "cloudwatch us-east-1 says InvalidParameterValue: Rate exceeded"),
    ],
)
def test_throttling_and_refused_credentials_are_said_as_such(code: str, status: int, words: str) -> None:
    from botocore.exceptions import ClientError

    from opsconsole.engine.sources import aws

    exc = ClientError(
        {"Error": {"Code": code, "Message": "Rate exceeded"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetMetricData",
    )
    assert aws.describe(exc, "cloudwatch us-east-1") == words
    assert aws.is_query_error(exc) is (code == "InvalidParameterValue")


def test_without_boto3_the_reason_says_how_to_install_it() -> None:
    from opsconsole.engine.sources import aws

    said = aws.describe(ModuleNotFoundError("No module named 'boto3'"), "cloudwatch us-east-1")
    assert said == "cloudwatch us-east-1 needs boto3, which is not installed (pip install 'opsconsole[aws]')"
