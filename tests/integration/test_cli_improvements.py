"""`opsconsole improvements ...` as a user runs it, on a proposals file: listing, review with
reasons and overrides, exit codes, JSON, and agent text that tries to drive the terminal."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from .conftest import REPO
from .test_cli import cli

HOSTILE = "Fix \x1b]0;pwned\x07 [red]cache[/red] \x1b[2J" + "x" * 300

PROPOSALS = [
    {
        "id": "good",
        "title": "Raise the cache TTL",
        "description": "Lines\nof text",
        "tenant": "t1",
        "predicted_impact": {"metric": "latency_ms", "expected_change": -0.2},
        "quality_score": 0.97,
        "risk": 0.01,
    },
    {"id": "weak", "title": "Maybe faster", "quality_score": 0.5, "risk": 0.01},
    {"id": "hostile", "title": HOSTILE, "description": HOSTILE, "quality_score": 0.96, "risk": 0.02},
]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "proposals.json").write_text(json.dumps(PROPOSALS))
    (tmp_path / "opsconsole.yaml").write_text(
        textwrap.dedent(
            f"""
            roles: {{default: viewer, users: {{root: admin}}}}
            environments:
              production:
                flags: {{kind: file, path: "${{WORKSPACE}}/flags/production.json"}}
            flags: "{REPO}/config/flags.yaml"
            kill_switch: {{flags_off: [enable_autonomous_improvements], flags_on: [emergency_shutdown]}}
            improvements:
              production: {{proposals: proposals.json, quality_threshold: 0.9, risk_tolerance: 0.1}}
            plans: ["plans/*.yaml"]
            """
        )
    )
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "tune.yaml").write_text(
        "name: tune\nphases:\n  - {name: watch, environment: production, gates: [{kind: soak, min: 1h}]}\n"
    )
    return tmp_path


def run(ws: Path, *args: str):
    return cli("improvements", *args, "--workspace", str(ws), "--config", str(ws / "opsconsole.yaml"))


def test_list_review_and_exit_codes(ws: Path) -> None:
    assert run(ws, "sync").returncode == 0
    listed = run(ws, "list")
    assert listed.returncode == 0 and "observation" in listed.stdout
    assert [line.split()[0] for line in listed.stdout.splitlines()[3:]] == ["good", "hostile", "weak"]
    assert "weak    proposed       0.50  0.01 -      Maybe faster" in listed.stdout  # no tenant: "-", not cut

    assert run(ws, "reject", "good", "--reason", "").returncode == 1  # a reason is required
    approved = run(ws, "approve", "good", "--reason", "looks right")
    assert approved.returncode == 0 and "good approved" in approved.stdout
    # Under the quality threshold: refused without an override, allowed with one (root is admin).
    assert run(ws, "approve", "weak", "--reason", "r").returncode == 1
    assert run(ws, "approve", "weak", "--reason", "measured it", "--override").returncode == 0
    shown = json.loads(run(ws, "show", "weak", "--json").stdout)
    assert (shown["status"], shown["override"], shown["reviewer"]) == ("approved", True, "root")
    assert run(ws, "show", "nope").returncode == 2
    assert run(ws, "list", "--env", "staging").returncode == 2


def test_agent_text_never_reaches_the_terminal_as_control_codes(ws: Path) -> None:
    run(ws, "sync")
    for out in (run(ws, "list").stdout, run(ws, "show", "hostile").stdout):
        assert "\x1b" not in out and "\x07" not in out
        assert "[red]cache[/red]" in out  # markup is text, shown as sent
    rows = run(ws, "list").stdout.splitlines()[3:]
    assert rows and all(len(row) < 110 for row in rows), rows  # titles are cut in the table


def test_a_rollout_report_lists_the_improvements_decided_meanwhile_escaped(ws: Path) -> None:
    started = cli("rollout", "start", "tune", "--workspace", str(ws), "--config", str(ws / "opsconsole.yaml"))
    rollout_id = started.stdout.split()[0]
    run(ws, "sync")
    assert run(ws, "approve", "hostile", "--reason", "fine").returncode == 0
    report = cli("report", rollout_id, "--workspace", str(ws), "--config", str(ws / "opsconsole.yaml"))
    assert report.returncode == 0, report.stderr
    line = next(row for row in report.stdout.splitlines() if "production/hostile" in row)
    assert "\x1b" not in report.stdout and "approved" in line and "…" in line
    data = cli(
        "report",
        rollout_id,
        "--format",
        "json",
        "--workspace",
        str(ws),
        "--config",
        str(ws / "opsconsole.yaml"),
    )
    entries = json.loads(data.stdout)["improvements"]
    assert [(e["id"], e["status"]) for e in entries] == [("hostile", "approved")]


def test_a_reader_that_leaves_early_gets_no_traceback(ws: Path) -> None:
    """`opsconsole ... | head -1`: the pipe closes under the command; it stops quietly (exit 141)."""
    import subprocess
    import sys

    many = [
        {"id": f"more-{i}", "title": "t" * 200, "description": "d" * 2000, "quality_score": 0.9, "risk": 0.01}
        for i in range(300)
    ]  # about 700 KB of JSON: far more than a pipe holds
    (ws / "proposals.json").write_text(json.dumps(many))
    run(ws, "sync")
    args = [sys.executable, "-m", "opsconsole", "improvements", "list", "--json"]
    args += ["--workspace", str(ws), "--config", str(ws / "opsconsole.yaml")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err
