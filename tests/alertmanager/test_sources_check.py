"""`opsconsole sources check` reaches an environment's Alertmanager once (ok, latency, or why not), and
the Prometheus + Alertmanager example passes `config check`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import TOKEN, TOKEN_ENV, Alertmanager, free_port, write_workspace

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsconsole", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(REPO), **(env or {})},
    )


def checks(ws: Path, env: dict[str, str]) -> tuple[int, dict[tuple[str, str], dict[str, object]], str]:
    p = cli("sources", "check", "--workspace", str(ws), "--env", "production", "--json", env=env)
    report = json.loads(p.stdout)
    return p.returncode, {(c["environment"], c["role"]): c for c in report["checks"]}, p.stdout + p.stderr


def test_sources_check_reads_the_alerts_once_with_the_token_never_shown(
    alertmanager: Alertmanager, test_id: str, tmp_path: Path
) -> None:
    ws = write_workspace(tmp_path, alertmanager.url, test_id)
    code, by, out = checks(ws, {TOKEN_ENV: TOKEN})
    assert code == 0, out
    alarms = by[("production", "alarms")]
    assert alarms["ok"] is True and alarms["error"] is None
    assert alarms["kind"] == "alertmanager" and alarms["where"] == alertmanager.url
    assert isinstance(alarms["latency_ms"], float) and 0 <= alarms["latency_ms"] < 2000
    assert TOKEN not in out

    text = cli("sources", "check", "--workspace", str(ws), "--env", "production", env={TOKEN_ENV: TOKEN})
    assert text.returncode == 0, text.stdout + text.stderr
    first = text.stdout.splitlines()[0].split()
    assert first[:4] == ["ok", "production", "alarms", "alertmanager"] and first[-1] == alertmanager.url
    assert text.stdout.splitlines()[-1] == "all 2 reachable"


def test_sources_check_names_a_dead_alertmanager_and_a_missing_credential(
    test_id: str, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    ws = write_workspace(tmp_path, dead, test_id)
    code, by, out = checks(ws, {TOKEN_ENV: TOKEN})
    assert code == 1, out
    alarms = by[("production", "alarms")]
    assert alarms["ok"] is False and alarms["where"] == dead
    assert str(alarms["error"]).startswith(f"alertmanager {dead}: ConnectError")
    assert TOKEN not in out

    code, by, out = checks(ws, {})
    assert code == 1, out
    assert by[("production", "alarms")]["error"] == f"alertmanager: bearer_token_env {TOKEN_ENV} is not set"


def test_the_prometheus_alertmanager_example_passes_config_check(tmp_path: Path) -> None:
    example = "config/examples/prometheus-alertmanager.yaml"
    p = cli("config", "check", "--config", example, "--workspace", str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ok (1 plans" in p.stdout and "2 environments" in p.stdout
