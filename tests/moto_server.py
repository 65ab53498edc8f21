"""ONE moto server (`moto_server`) for the whole test session, on a free 127.0.0.1 port, shared by
every package that talks to AWS (tests/s3 and tests/cloudwatch): each conftest's session fixture
calls `endpoint()`, which starts the server the first time and returns the same URL afterwards; it is
stopped when pytest ends. Where moto is missing the caller skips with the reason, except in CI
(`CI=true`), where that is a failure.

Also here: the AWS credentials the tests put in the environment (boto3's usual chain, nothing from
~/.aws or a metadata service) and `free_port`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ACCESS_KEY = "AKIATESTOPSCONSOLE01"
SECRET_KEY = "s3-test-Secret-5512/xyz"
"""The credentials boto3 finds in the environment; tests check no message carries the secret."""
START_WAIT = 30.0
"""Bound on waiting for moto_server to listen."""

_running: tuple[subprocess.Popen[bytes], str] | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _executable() -> str | None:
    """The test environment's own moto_server (beside this Python) first: `make test` runs pytest
    without the venv on PATH, and another moto on PATH may be another version."""
    beside = Path(sys.executable).with_name("moto_server")
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("moto_server")


def endpoint(config: pytest.Config, log_dir: Path) -> str:
    """The endpoint URL of the session's moto server, started on first use."""
    global _running
    if _running is not None and _running[0].poll() is None:
        return _running[1]
    exe = _executable()
    if exe is None:
        reason = "moto_server missing (pip install 'moto[server]', in the test extra)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs a real AWS endpoint (moto): {reason}", pytrace=False)
        pytest.skip(reason)
    port = free_port()
    log = log_dir / "moto_server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    config.add_cleanup(lambda: _stop(proc))
    deadline = time.monotonic() + START_WAIT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"moto_server exited ({proc.returncode}): {log.read_text()[-2000:]}", pytrace=False)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            break
        if time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(
                f"moto_server did not listen within {START_WAIT:g} s: {log.read_text()[-2000:]}",
                pytrace=False,
            )
        time.sleep(0.1)
    _running = (proc, url)
    return url


def _stop(proc: subprocess.Popen[bytes]) -> None:
    global _running
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    if _running is not None and _running[0] is proc:
        _running = None


def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials from boto3's usual chain (the environment here); nothing from ~/.aws or a metadata
    service. Clients made by an earlier test (with its credentials) are dropped first."""
    from opsconsole.engine.sources import aws

    aws.forget_clients()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
