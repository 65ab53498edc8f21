"""Credentials in metrics and health URLs: used for the requests, never shown, never stored.

A workspace whose metrics and health URLs carry `user:password@` and `?token=`, against the real demo
service (one endpoint that answers, one that refuses connections, one path that answers 404). A real
engine process runs the rollout; then every command's output, the console's Metrics pane and every
byte the workspace holds (the SQLite store dumped with `sqlite3`, its WAL, flag files) are searched
for the secrets."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sqlite3
import subprocess
import textwrap
from pathlib import Path

import pytest

from .conftest import cli, spawn, wait_for, write_workspace

PASSWORD, TOKEN = "s3cr3tPW", "s3cr3tTOKEN"
SECRETS = (PASSWORD, TOKEN)


def secret_url(port: int, path: str) -> str:
    return f"http://u:{PASSWORD}@127.0.0.1:{port}{path}?token={TOKEN}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (
            f"{where} shows {secret}: {text[max(0, text.find(secret) - 200) : text.find(secret) + 50]!r}"
        )


@pytest.fixture
def secret_ws(tmp_path: Path, service) -> tuple[Path, str]:
    port, dead = service.port, closed_port()
    plan = textwrap.dedent(
        f"""
        name: secret
        phases:
          - name: staging
            environment: staging
            gates:
              - {{kind: health, name: up, url: "{secret_url(port, "/health")}", timeout: 1s}}
              - {{kind: health, name: missing, url: "{secret_url(port, "/nope")}", timeout: 1s}}
              - {{kind: health, name: dead, url: "{secret_url(dead, "/health")}", timeout: 1s}}
              - {{kind: metric, name: requests, source: production, query: 'http_requests_total', min: 0}}
              - {{kind: metric, name: dead_metric, query: 'http_requests_total', min: 0}}
            approval: {{required: true, role: approver}}
        """
    )
    ws = write_workspace(tmp_path, port, plan=plan)
    config = ws / "opsconsole.yaml"
    text = config.read_text()
    live = f"http://127.0.0.1:{port}/metrics"
    assert text.count(live) == 2  # staging first, then production
    # staging's endpoint refuses connections; production scrapes the live service. Both carry secrets.
    text = text.replace(live, secret_url(dead, "/metrics"), 1).replace(live, secret_url(port, "/metrics"), 1)
    config.write_text(text)
    w = ("--workspace", str(ws))
    p = cli("rollout", "start", "secret", *w)
    assert p.returncode == 0, p.stderr
    rid = p.stdout.split()[0]
    engine = spawn("engine", *w, "--interval", "0.5")
    try:

        def verdicts_stored() -> bool:
            doc = json.loads(cli("report", rid, "--format", "json", *w).stdout)
            gates = {v["gate"] for v in doc["verdicts"]}
            return {"up", "missing", "dead", "requests", "dead_metric"} <= gates

        wait_for(verdicts_stored, 30, "verdicts of every gate in the store")
    finally:
        engine.terminate()
        out, _ = engine.communicate(timeout=15)
    assert_no_secret(out, "engine output")
    return ws, rid


def test_no_command_output_and_no_stored_byte_holds_a_secret(secret_ws):
    ws, rid = secret_ws
    w = ("--workspace", str(ws))
    runs = {
        "status": ("status",),
        "status --json": ("status", "--json", "--all"),
        "gates check": ("gates", "check", rid),
        "gates check --json": ("gates", "check", rid, "--json"),
        "report": ("report", rid),
        "report json": ("report", rid, "--format", "json"),
        "report md": ("report", rid, "--format", "md"),
        "audit": ("audit",),
        "audit --json": ("audit", "--json"),
        "flags list": ("flags", "list"),
        "config check": ("config", "check"),
    }
    shown = {}
    for name, args in runs.items():
        p = cli(*args, *w)
        assert p.returncode in (0, 1, 3), f"{name}: {p.stdout} {p.stderr}"
        assert_no_secret(p.stdout + p.stderr, name)
        shown[name] = p.stdout
    # The failures are still explained, with the URL minus its secrets.
    checked = json.loads(shown["gates check --json"])
    by_gate = {v["gate"]: v for v in checked}
    assert by_gate["up"]["status"] == "pass", by_gate["up"]
    assert by_gate["requests"]["status"] == "pass", by_gate["requests"]
    assert by_gate["missing"]["status"] == "fail" and "404" in by_gate["missing"]["reason"]
    assert "u:***@127.0.0.1" in by_gate["missing"]["reason"] and "token=***" in by_gate["missing"]["reason"]
    assert "u:***@" in by_gate["dead"]["reason"] and "u:***@" in by_gate["dead_metric"]["reason"]
    assert "u:***@" in by_gate["up"]["source"]

    files = [f for f in ws.rglob("*") if f.is_file() and f.name != "opsconsole.yaml"]
    assert any(f.suffix == ".db" for f in files)
    for f in files:
        assert_no_secret(f.read_bytes().decode("latin-1"), f"workspace file {f.name}")
    for db in (f for f in files if f.suffix == ".db"):
        if shutil.which("sqlite3"):  # the dump an operator would take
            dump = subprocess.run(
                ["sqlite3", str(db), ".dump"], capture_output=True, text=True, timeout=30, check=True
            ).stdout
        else:
            with sqlite3.connect(db) as conn:
                dump = "\n".join(conn.iterdump())
        assert "verdict_history" in dump
        assert_no_secret(dump, f"sqlite3 dump of {db.name}")


def test_metrics_pane_shows_source_errors_without_the_secret(secret_ws):
    from opsconsole.tui.app import OpsConsoleApp

    from .conftest import engine_as

    ws, _rid = secret_ws
    engine = engine_as(ws, "root")

    async def scenario() -> str:
        app = OpsConsoleApp(engine, run_engine=True, environment="staging")
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("2")

            def pane_text() -> str:
                pane = app.panes["metrics"]
                texts = [str(w.render()) for w in pane.query("*") if hasattr(w, "render")]
                table_cells = [
                    str(cell)
                    for table in pane.query("DataTable")
                    for row in range(table.row_count)  # type: ignore[attr-defined]
                    for cell in table.get_row_at(row)  # type: ignore[attr-defined]
                ]
                return "\n".join(texts + table_cells)

            for _ in range(200):
                await pilot.pause(0.05)
                text = pane_text()
                if "connection refused" in text:  # the dead source's error, URL and all
                    return text
            raise AssertionError(f"the dead source's error never showed:\n{pane_text()}")

    text = asyncio.run(scenario())
    assert_no_secret(text, "Metrics pane")
    assert "u:***@127.0.0.1" in text and "token=***" in text
