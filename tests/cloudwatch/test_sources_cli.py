"""`opsconsole sources check` and `config check` on CloudWatch settings: every CloudWatch source and
the publish target reached once against moto's server (a dead endpoint fails naming it, exit 1), the
example configuration passes, and bad settings are errors naming the key and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsconsole.engine.config import ConfigError

from .conftest import ACCESS_KEY, SECRET_KEY, load, write_config

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(REPO),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_CONFIG_FILE": "/nonexistent",
        "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO)),
    }
    return subprocess.run(
        [sys.executable, "-m", "opsconsole", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**base, **(env or {})},
    )


def test_sources_check_reaches_cloudwatch_and_fails_naming_a_dead_endpoint(
    cw_server: str, tmp_path: Path, dead_port: int
) -> None:
    dead = f"http://127.0.0.1:{dead_port}"
    publish = f"publish: {{kind: cloudwatch, namespace: OpsCheck, region: us-east-1, endpoint: '{dead}', timeout: 1s}}\n"
    main = write_config(tmp_path, cw_server, extra=publish)
    p = cli("sources", "check", "--config", str(main), "--workspace", str(tmp_path / "ws"), "--json")
    assert p.returncode == 1, p.stderr
    report = json.loads(p.stdout)
    by = {(c["environment"], c["role"]): c for c in report["checks"]}
    assert set(by) == {("production", "metrics"), ("production", "alarms"), ("*", "publish")}
    for key in (("production", "metrics"), ("production", "alarms")):
        assert by[key]["ok"] is True and by[key]["kind"] == "cloudwatch", by[key]
        assert by[key]["where"] == f"cloudwatch {cw_server}"
    failed = by[("*", "publish")]
    assert failed["ok"] is False and dead in failed["error"]
    assert SECRET_KEY not in p.stdout + p.stderr

    text = cli("sources", "check", "--config", str(main), "--workspace", str(tmp_path / "ws"))
    assert text.returncode == 1
    assert "FAIL *" in text.stdout and "2 of 3 reachable" in text.stdout


def test_the_cloudwatch_example_passes_config_check(tmp_path: Path) -> None:
    p = cli(
        "config",
        "check",
        "--config",
        str(REPO / "config/examples/cloudwatch.yaml"),
        env={"WORKSPACE": str(tmp_path)},
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ok (1 plans" in p.stdout


def test_bad_cloudwatch_settings_are_errors_naming_the_key_and_why(tmp_path: Path) -> None:
    main = write_config(
        tmp_path,
        "http://127.0.0.1:9",
        guards="      - {kind: metric, name: x, query: 'a + b; a = NS:x:Sum', max: 1}\n"
        "      - {kind: metric, name: y, query: 'NS:x:Median', max: 1}\n",
        extra="publish: {kind: sns, namespace: X}\n",
    )
    text = main.read_text().replace(
        "region: us-east-1, endpoint", "region: mars, url: 'http://x', endpoint", 1
    )
    text = text.replace("alarms: {kind: cloudwatch", "alarms: {kind: alertmanger", 1)
    main.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(main)
    msg = str(info.value)
    assert "environments.production.metrics.url: kind: cloudwatch has no url" in msg
    assert "environments.production.metrics.region: expected an AWS region like us-east-1, got 'mars'" in msg
    assert (
        "environments.production.alarms.kind: unknown kind 'alertmanger' (did you mean 'alertmanager'?)"
        in msg
    )
    assert "guards[0].query: bad query: math uses 'b', which no '; b = ...' defines" in msg
    assert "guards[1].query: bad query: unknown statistic 'Median'" in msg
    assert "publish.kind: unknown kind 'sns' (available: cloudwatch)" in msg


def test_one_moto_server_serves_the_session(
    cw_server: str, pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests import moto_server

    assert moto_server.endpoint(pytestconfig, tmp_path_factory.getbasetemp()) == cw_server


def test_gates_check_asks_cloudwatch_alarms_even_without_a_metric_gate(
    cw_server: str, tmp_path: Path
) -> None:
    from .test_alarms import make_alarm

    prefix = f"SBcli{os.getpid()}-"
    make_alarm(cw_server, f"{prefix}HighRollbackRate", "ALARM", "Threshold Crossed: [4.0] > 2.0")
    main = write_config(
        tmp_path, cw_server, prefix=prefix, guards=f"      - {{kind: alarms, none_firing: ['{prefix}*']}}\n"
    )
    ws = ["--config", str(main), "--workspace", str(tmp_path / "ws")]
    started = cli("rollout", "start", "p", *ws, "--reason", "check")
    assert started.returncode == 0, started.stdout + started.stderr
    rid = started.stdout.split()[0]
    p = cli("gates", "check", rid, *ws, "--json")
    verdicts = {v["gate"]: v for v in json.loads(p.stdout)}
    alarms = next(v for name, v in verdicts.items() if v["status"] != "pending" and name != "soak")
    assert alarms["status"] == "fail", p.stdout
    assert f"{prefix}HighRollbackRate" in json.dumps(alarms)
