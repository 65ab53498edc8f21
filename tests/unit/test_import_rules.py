"""The import rules (the engine never imports the screen; pure modules do no I/O), checked two ways:
the import-linter contracts in pyproject.toml, and at run time (a fresh interpreter that uses the
engine must never have loaded textual or a heavy client)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(exe)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_engine_at_run_time_loads_no_screen_and_no_heavy_client(tmp_path):
    code = f"""
import sys
from opsconsole.engine import open_engine
eng = open_engine("{REPO}/config/opsconsole.yaml", "{tmp_path}/ws")
eng.rollouts()
eng.export_flags()
bad = sorted(m for m in sys.modules if m.split(".")[0] in {{"textual", "boto3", "docker", "psycopg", "mcp"}})
print(",".join(bad))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
