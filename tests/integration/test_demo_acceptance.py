"""Issue 2's acceptance, run as a user would: the headless demo end to end (about a minute)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


def demo(ws: Path, fault: str) -> tuple[int, dict, str]:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "opsconsole",
            "demo",
            "--headless",
            "--auto-approve",
            "--fault",
            fault,
            "--workspace",
            str(ws),
            "--timeout",
            "150",
        ],
        capture_output=True,
        text=True,
        timeout=200,
        cwd=REPO,
    )
    return p.returncode, json.loads(p.stdout), p.stderr


def test_demo_completes_with_every_phase_and_step(tmp_path):
    code, doc, err = demo(tmp_path / "w", "none")
    assert code == 0, err
    r = doc["rollout"]
    assert r["state"] == "completed"
    assert [p["name"] for p in r["phases"]] == ["staging", "production-canary"]
    assert all(p["state"] == "completed" for p in r["phases"])
    assert [s["percent"] for s in r["phases"][1]["steps"]] == [0, 5, 10, 25, 50, 75, 100]
    assert all(s["started_at"] and s["ended_at"] for p in r["phases"] for s in p["steps"])
    assert doc["canary_flag"]["rollout_percentage"] == 100
    assert doc["traffic"]["by_version"].get("v2", 0) > 0
    assert "approved by demo" in err


def test_demo_with_canary_errors_rolls_back_within_interval_plus_one_second(tmp_path):
    ws = tmp_path / "w"
    code, doc, err = demo(ws, "canary-errors")
    assert code == 0, err
    assert doc["rollout"]["state"] == "rolled_back"
    assert "error_rate" in doc["rollout"]["reason"] or "rollback" in doc["rollout"]["reason"]
    flag = json.loads((ws / "flags" / "production.json").read_text())["flags"]["new_checkout"]
    assert flag["rollout_percentage"] == 0 and flag["enabled"] is False
    assert doc["reaction_s"] is not None and doc["reaction_s"] <= 1.0 + 1.0
