"""The package as a user installs it (`pip install .`, a wheel, pipx): the wheel is built from a clean
copy of the sources, installed into a fresh virtual environment that cannot see the checkout, and run
from a directory with no config/ or themes/ in it. The default configuration, the shipped plans and
flag definitions and the themes must come with the package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow

SOURCES = ("pyproject.toml", "README.md", "opsconsole", "config", "themes")


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_wheel_runs_outside_the_checkout(tmp_path):
    started = time.monotonic()
    # A copy, not the checkout: a stale build/ there would ship files that no longer exist.
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    # Only what pip needs (its cache and index settings); no PYTHONPATH, no virtual environment.
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "PATH", "TMPDIR") or k.startswith("PIP_")}
    env["PATH"] = "/usr/bin:/bin"

    dist = tmp_path / "dist"
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(src),
        ],
        tmp_path,
        env,
        120,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("opsconsole-*.whl")

    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env, 60)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    # The checkout's pip installs into the new environment: no pip bootstrap, the same download cache.
    installed = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(wheel)],
        tmp_path,
        env,
        300,
    )
    assert installed.returncode == 0, installed.stderr

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([str(python), "-c", "import opsconsole; print(opsconsole.__file__)"], work, env, 30)
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr

    opsconsole = str(venv / "bin" / "opsconsole")
    check = _run([opsconsole, "config", "check", "--workspace", str(work / "ws")], work, env, 60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert str(venv) in check.stdout and "ok (" in check.stdout

    themes = _run(
        [
            str(python),
            "-c",
            "from opsconsole.tui.themes import load_themes; e = []; t = load_themes(errors=e); "
            "print(sorted(x.name for x in t), e)",
        ],
        work,
        env,
        60,
    )
    assert "opsconsole-dark" in themes.stdout and themes.stdout.strip().endswith("[]"), (
        themes.stdout + themes.stderr
    )

    demo = _run(
        [
            opsconsole,
            "demo",
            "--headless",
            "--auto-approve",
            "--fault",
            "none",
            "--workspace",
            str(work / "demo"),
        ],
        work,
        env,
        200,
    )
    assert demo.returncode == 0, demo.stderr
    assert json.loads(demo.stdout)["rollout"]["state"] == "completed"
    print(f"wheel built, installed and run in {time.monotonic() - started:.0f} s")
