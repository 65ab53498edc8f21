"""A real Alertmanager for the tests: one per session on a free 127.0.0.1 port, its storage in the
session's temp dir, no gossip port (`--cluster.listen-address=` empty), started only when a test asks
for `alertmanager`.

Tests share it, so each test's alerts carry a label of their own (`test: <token>`) and its workspace's
environment filters on that label: one test never sees another's alerts or silences. Where the binary
is missing the tests skip with the reason, except in CI, where that is a failure.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsconsole.engine.config import load_config
from opsconsole.engine.core import Engine
from opsconsole.engine.identity import os_user
from opsconsole.engine.model import Actor, Config
from tests.integration.conftest import REPO

BINARIES = ("prometheus-alertmanager", "alertmanager")
CONFIG = """
route:
  receiver: "null"
  group_wait: 1s
receivers:
  - name: "null"
inhibit_rules:
  - source_matchers: ['alertname="OpsDatacenterDown"']
    target_matchers: ['alertname="OpsHostDown"']
    equal: [test]
"""
"""No notifications go anywhere; OpsDatacenterDown inhibits OpsHostDown of the same test."""

TOKEN = "am-test-Token-5521"
"""The bearer token the workspace's environment names; tests check no message ever carries it."""
TOKEN_ENV = "OPSCONSOLE_TEST_AM_TOKEN"

PLAN = """
name: guarded
phases:
  - name: canary
    environment: production
    strategy: {kind: canary, flag: new_checkout, steps: [0, 50, 100], step_wait: 1s}
    gates:
      - {kind: alarms, name: no_pages, none_firing: ["Ops*"]}
"""


def _binary() -> str | None:
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Alertmanager:
    url: str

    def post(self, test: str, alertname: str, **labels: str) -> None:
        """Post one firing alert labelled with the test's token; `annotations` via `annotate`."""
        self.post_alerts([alert(test, alertname, **labels)])

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        resp = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=5)
        resp.raise_for_status()

    def alerts(self, test: str) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.url}/api/v2/alerts", params={"filter": f'test="{test}"'}, timeout=5)
        resp.raise_for_status()
        return list(resp.json())

    def silences(self, test: str) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.url}/api/v2/silences", params={"filter": f'test="{test}"'}, timeout=5)
        resp.raise_for_status()
        return list(resp.json())


def alert(
    test: str, alertname: str, annotations: Mapping[str, str] | None = None, **labels: str
) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "labels": {"alertname": alertname, "test": test, **labels},
        "annotations": dict(annotations or {}),
        "startsAt": (now - dt.timedelta(seconds=30)).isoformat(),
        "endsAt": (now + dt.timedelta(minutes=10)).isoformat(),
    }


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    binary = _binary()
    if binary is None:
        reason = "Alertmanager missing: no prometheus-alertmanager on PATH (make system-deps installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs a real Alertmanager: {reason}", pytrace=False)
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("alertmanager")
    (base / "alertmanager.yml").write_text(CONFIG)
    port = free_port()
    log = (base / "log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={base / 'alertmanager.yml'}",
            f"--storage.path={base / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {(base / 'log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("alertmanager not ready within 20s")
            time.sleep(0.1)
        yield Alertmanager(url)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def test_id() -> str:
    """The label value that keeps this test's alerts and silences its own."""
    return f"t{secrets.token_hex(4)}"


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return TOKEN


def write_workspace(
    tmp_path: Path,
    am_url: str,
    test: str,
    *,
    timeout: str = "1s",
    extra: str = "",
    alarms: str | None = None,
    cli_role: str = "operator",
) -> Path:
    """A workspace whose production environment reads `am_url`, filtered on the test's label, with
    the bearer token from TOKEN_ENV, and a plan whose canary gate wants no Ops* alert firing.
    `alarms`: production's whole `alarms:` entry instead (one line, YAML flow style); `cli_role`: the
    role of the account running the tests, whom the CLI acts as."""
    alarms_block = (
        "        " + alarms
        if alarms is not None
        else textwrap.indent(
            textwrap.dedent(
                f"""\
            alarms:
              kind: alertmanager
              url: "{am_url}"
              timeout: {timeout}
              bearer_token_env: {TOKEN_ENV}
              matchers: {{test: "{test}"}}"""
            ),
            "        ",
        )
    )
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    (tmp_path / "plans").mkdir(exist_ok=True)
    (tmp_path / "plans" / "plan.yaml").write_text(PLAN)
    main = f"""
    interval: 1s
    roles:
      default: viewer
      users: {{alice: approver, bob: operator, carol: viewer, "{os_user()}": {cli_role}}}
    environments:
      staging:
        flags: {{kind: file, path: "${{WORKSPACE}}/flags/staging.json"}}
      production:
{alarms_block}
        flags: {{kind: file, path: "${{WORKSPACE}}/flags/production.json"}}
    plans: ["{tmp_path}/plans/*.yaml"]
    flags: "{REPO}/config/flags.yaml"
    kill_switch:
      flags_off: [phase_4_deployment]
      flags_on: [emergency_shutdown]
    """
    (ws / "opsconsole.yaml").write_text(textwrap.dedent(main) + textwrap.dedent(extra))
    return ws


def load_ws(ws: Path) -> Config:
    return load_config(ws / "opsconsole.yaml", {"WORKSPACE": str(ws)})


def engine_for(ws: Path, user: str = "bob", **kwargs: Any) -> Engine:
    return Engine(load_ws(ws), ws, Actor(user, "test"), **kwargs)
