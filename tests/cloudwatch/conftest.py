"""CloudWatch for the tests: the session's one moto server (tests/moto_server.py, shared with
tests/s3), asked for by tests that use `cw_server`. Each test writes its metrics under a namespace and
alarms under a prefix of its own, so tests sharing the server never see each other's data.

Also here: a port that accepts connections and never answers (a hung endpoint) and one nothing
listens on (a dead endpoint).
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .. import moto_server
from ..moto_server import ACCESS_KEY, SECRET_KEY, free_port

__all__ = ["ACCESS_KEY", "SECRET_KEY", "cw", "free_port", "load", "write_config"]


@pytest.fixture(scope="session")
def cw_server(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The endpoint URL of the session's one moto server."""
    return moto_server.endpoint(pytestconfig, tmp_path_factory.getbasetemp())


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials and region from boto3's usual chain (the environment here)."""
    moto_server.aws_environment(monkeypatch, tmp_path)


def cw(endpoint: str) -> Any:
    """A plain boto3 CloudWatch client for the test's own writes and reads."""
    import boto3

    return boto3.session.Session().client("cloudwatch", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def namespace() -> str:
    return f"Test{secrets.token_hex(4)}"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers: a hung endpoint."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


@pytest.fixture
def dead_port() -> int:
    """A port nothing listens on: a stopped endpoint."""
    return free_port()


def write_config(
    tmp_path: Path,
    endpoint: str,
    *,
    namespace: str = "SelfBuilding",
    prefix: str = "SelfBuilding-",
    guards: str = "",
    rules: str = "",
    extra: str = "",
    timeout: str = "1s",
) -> Path:
    """A main file whose production environment reads CloudWatch metrics and alarms at `endpoint`
    (every tick: interval 0.1s), and a plan whose production phase has `guards` (YAML list items)."""
    main = tmp_path / "opsconsole.yaml"
    main.write_text(
        "store: sqlite:///${WORKSPACE}/state.db\n"
        "interval: 1s\n"
        "roles: {default: admin}\n"
        "environments:\n"
        "  production:\n"
        f"    metrics: {{kind: cloudwatch, region: us-east-1, endpoint: '{endpoint}', timeout: {timeout},"
        " interval: 0.1s}\n"
        f"    alarms: {{kind: cloudwatch, region: us-east-1, endpoint: '{endpoint}', timeout: {timeout},"
        f" interval: 0.1s, prefix: {prefix}, severity: critical}}\n"
        'plans: ["plans/*.yaml"]\n'
        "flags: {emergency_shutdown: {default: false}, enable_autonomous_improvements: {default: true}}\n"
        "kill_switch: {flags_off: [enable_autonomous_improvements], flags_on: [emergency_shutdown]}\n"
        + (f"alarms:\n  rules:\n{rules}" if rules else "")
        + extra
    )
    (tmp_path / "plans").mkdir(exist_ok=True)
    (tmp_path / "plans" / "p.yaml").write_text(
        "name: p\n"
        "phases:\n"
        "  - name: one\n"
        "    environment: production\n"
        "    gates: [{kind: soak, min: 1h}]\n" + (f"    guards:\n{guards}" if guards else "")
    )
    return main


def load(main: Path) -> Any:
    from opsconsole.engine.config import load_config

    return load_config(main, {"WORKSPACE": str(main.parent / "ws")})
