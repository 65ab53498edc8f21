"""`opsconsole sources check` and the Metrics pane on an environment whose metrics come from a real
Prometheus; the example configuration passes `config check`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from opsconsole.engine import Session
from opsconsole.engine.model import MetricSource
from tests.integration.conftest import write_workspace
from tests.tui.conftest import console, engine_for, screen_text, sync, until

from .conftest import TOKEN, TOKEN_ENV, Prom

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


def workspace(tmp_path: Path, production: str, staging: str, extra: str = "") -> Path:
    """A workspace whose production and staging metrics come from the given `metrics:` mappings."""
    ws = write_workspace(tmp_path, 9, extra=extra)
    main = ws / "opsconsole.yaml"
    lines = main.read_text().splitlines()
    out, env = [], ""
    for line in lines:
        if line.strip() in ("staging:", "production:"):
            env = line.strip()[:-1]
        if line.strip().startswith("metrics:"):
            line = (
                line[: line.index("metrics:")] + f"metrics: {production if env == 'production' else staging}"
            )
        out.append(line)
    main.write_text("\n".join(out) + "\n")
    return ws


def test_sources_check_reaches_each_source_once_and_fails_naming_the_dead_one(
    prom: Prom, tmp_path: Path, dead_port: int
) -> None:
    ws = workspace(
        tmp_path,
        production=f"{{kind: prometheus, url: '{prom.proxy_url}', token_env: {TOKEN_ENV}, timeout: 1s}}",
        staging=f"{{kind: prometheus, url: 'http://127.0.0.1:{dead_port}', timeout: 1s}}",
    )
    env = {TOKEN_ENV: TOKEN}
    p = cli("sources", "check", "--workspace", str(ws), "--json", env=env)
    assert p.returncode == 1, p.stderr
    report = json.loads(p.stdout)
    assert report["ok"] is False
    by = {(c["environment"], c["role"]): c for c in report["checks"]}
    assert set(by) == {
        ("staging", "metrics"),
        ("staging", "flags"),
        ("production", "metrics"),
        ("production", "flags"),
    }
    assert by[("production", "metrics")]["ok"] is True and by[("production", "metrics")]["error"] is None
    assert by[("production", "metrics")]["where"] == prom.proxy_url
    assert by[("staging", "metrics")]["error"] == f"connection refused: http://127.0.0.1:{dead_port}"
    assert all(c["latency_ms"] >= 0 for c in report["checks"])
    assert TOKEN not in p.stdout + p.stderr

    one = cli("sources", "check", "--workspace", str(ws), "--env", "production", env=env)
    assert one.returncode == 0, one.stdout + one.stderr
    assert one.stdout.splitlines()[-1] == "all 2 reachable"
    assert one.stdout.startswith("ok   production metrics prometheus")

    refused = cli("sources", "check", "--workspace", str(ws), "--env", "production", env={TOKEN_ENV: "wrong"})
    assert refused.returncode == 1
    assert "HTTP 401" in refused.stdout and "credentials refused" in refused.stdout
    assert "wrong" not in refused.stdout

    bad = cli("sources", "check", "--workspace", str(ws), "--env", "prodution")
    assert bad.returncode == 2
    assert "unknown environment 'prodution'" in bad.stderr and "production" in bad.stderr


def test_sources_check_on_a_scrape_source(tmp_path: Path, dead_port: int) -> None:
    ws = write_workspace(tmp_path, dead_port)
    p = cli("sources", "check", "--workspace", str(ws), "--env", "staging", "--json")
    assert p.returncode == 1
    metrics = next(c for c in json.loads(p.stdout)["checks"] if c["role"] == "metrics")
    assert metrics["kind"] == "scrape"
    assert metrics["error"] == f"connection refused: http://127.0.0.1:{dead_port}/metrics"


def test_the_prometheus_example_passes_config_check(tmp_path: Path) -> None:
    p = cli("config", "check", "--config", "config/examples/prometheus.yaml", "--workspace", str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert "ok (1 plans" in p.stdout


PLAN = """
name: watch
phases:
  - name: canary
    environment: production
    strategy: {kind: canary, flag: new_checkout, steps: [0, 50, 100], step_wait: 1s}
    guards:
      - {kind: metric, name: temperature, query: 'max(demo_temperature)', max: 50}
      - {kind: metric, name: broken, query: 'rate(demo_requests_total)', max: 1}
"""


@sync
async def test_the_metrics_pane_shows_prometheus_values_sparklines_and_its_refusals(
    prom: Prom, tmp_path: Path
) -> None:
    ws = write_workspace(tmp_path, 9, plan=PLAN)
    main = ws / "opsconsole.yaml"
    text = main.read_text()
    scrape = 'metrics: {kind: scrape, url: "http://127.0.0.1:9/metrics", timeout: 1s, window: 10s}'
    assert scrape in text
    main.write_text(text.replace(scrape, f"metrics: {{kind: prometheus, url: '{prom.url}', timeout: 1s}}"))
    engine = engine_for(ws)
    assert engine.config.environments["production"].metrics == MetricSource(
        kind="prometheus", url=prom.url, timeout=1.0
    )
    app = console(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("2")
        session: Session = app.session
        await until(pilot, lambda: "42.5" in screen_text(app), "the gauge's value", seconds=10)
        await until(pilot, lambda: "bad_data" in screen_text(app), "Prometheus's refusal", seconds=10)
        rows = {r.name: r for r in session.metric_rows(5)}
        await until(
            pilot,
            lambda: any(v == 42.5 for v in session.metric_rows(5)[0].series),
            "sparkline points from query_range",
            seconds=10,
        )
    assert rows["temperature"].value == 42.5 and rows["temperature"].error is None
    assert rows["broken"].value is None
    assert "query 'rate(demo_requests_total)': Prometheus says bad_data" in (rows["broken"].error or "")


GATES_PLAN = """
name: checked
phases:
  - name: canary
    environment: production
    gates:
      - {kind: metric, name: temperature, query: 'max(demo_temperature)', max: 50}
      - {kind: metric, name: nothing, query: 'sum(no_such_series_total)', max: 1}
"""


def test_gates_check_evaluates_promql_through_prometheus(prom: Prom, tmp_path: Path) -> None:
    ws = write_workspace(tmp_path, 9, plan=GATES_PLAN)
    main = ws / "opsconsole.yaml"
    scrape = 'metrics: {kind: scrape, url: "http://127.0.0.1:9/metrics", timeout: 1s, window: 10s}'
    main.write_text(
        main.read_text().replace(scrape, f"metrics: {{kind: prometheus, url: '{prom.url}', timeout: 1s}}")
    )
    started = cli("rollout", "start", "checked", "--workspace", str(ws), "--reason", "check")
    assert started.returncode == 0, started.stderr
    rid = started.stdout.split()[0]
    p = cli("gates", "check", rid, "--workspace", str(ws), "--json")
    assert p.returncode == 3, p.stdout + p.stderr  # one gate passes, the other is unknown: pending
    verdicts = {v["gate"]: v for v in json.loads(p.stdout)}
    passed, unknown = verdicts["temperature"], verdicts["nothing"]
    assert (passed["status"], passed["value"], passed["source"]) == ("pass", 42.5, prom.url)
    assert (unknown["status"], unknown["value"], unknown["no_series"]) == ("unknown", None, True)
    assert unknown["reason"].startswith("no data (query 'sum(no_such_series_total)': returned no series)")
