"""The kill switch's path through configuration loading is bounded: a hostile or broken configuration
makes `opsconsole kill` finish or refuse within seconds, never hang or run for minutes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import cli, flag_file

DEPTH = 40


def chained_config(ws: Path) -> Path:
    """A valid configuration whose flag definitions form a 40-deep `<<: [*a, *a]` chain."""
    rows = [
        "roles: {default: operator}",
        "environments:",
        "  production:",
        '    flags: {kind: file, path: "${WORKSPACE}/flags/production.json"}',
        "kill_switch:",
        "  flags_on: [emergency_shutdown]",
        "  flags_off: [f0]",
        "flags:",
        "  emergency_shutdown: {default: false}",
        "  f0: &a0 {default: true}",
    ]
    rows += [f"  f{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}], owner: t{i}}}" for i in range(1, DEPTH + 1)]
    path = ws / "opsconsole.yaml"
    path.write_text("\n".join(rows) + "\n")
    return path


def timed_kill(ws: Path, *extra: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.monotonic()
    try:
        p = cli("kill", "--reason", "bounded", "--workspace", str(ws), *extra, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("opsconsole kill was still loading its configuration after 30 s")
    return time.monotonic() - t0, p


def test_kill_with_a_forty_deep_merge_chain_is_done_within_seconds(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    chained_config(ws)
    elapsed, p = timed_kill(ws)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["recorded"] is True
    doc = flag_file(ws)
    assert doc["emergency_shutdown"] is True and doc["flags"]["f0"]["enabled"] is False
    assert elapsed < 10, elapsed


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_kill_with_a_config_path_that_is_not_a_file_refuses_within_seconds(tmp_path: Path, kind: str) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    if kind == "fifo":
        config = tmp_path / "opsconsole.yaml"
        os.mkfifo(config)
    elif kind == "directory":
        config = tmp_path / "conf.d"
        config.mkdir()
    else:
        config = Path("/dev/zero")
    elapsed, p = timed_kill(ws, "--config", str(config))
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert f"{config}: is a" in p.stderr and "not a regular file" in p.stderr, p.stderr
    assert not (ws / "flags").exists()  # a configuration that did not load changes nothing
    assert elapsed < 10, elapsed
