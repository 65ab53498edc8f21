"""`opsconsole backup ...` as a user runs it: a real process, real files, exit codes and JSON."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

ME = pwd.getpwuid(os.getuid()).pw_name


def cli(tmp_path: Path, *args: str, role: str = "operator") -> subprocess.CompletedProcess[str]:
    data = tmp_path / "data"
    if not data.exists():
        data.mkdir()
        (data / "a.txt").write_text("alpha\n")
    cfg = tmp_path / "opsconsole.yaml"
    cfg.write_text(
        f"roles:\n  default: viewer\n  users:\n    {ME}: {role}\n"
        f"backups:\n  site:\n    kind: files\n    paths: [{data}]\n    state: true\n    keep_last: 1\n"
        f"  other:\n    kind: files\n    paths: [{data}]\n"
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "opsconsole",
            *args,
            "--config",
            str(cfg),
            "--workspace",
            str(tmp_path / "ws"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )


def test_run_verify_list_prune(tmp_path: Path) -> None:
    first = cli(tmp_path, "backup", "run", "site", "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["status"] == "ok" and doc["trigger"] == "manual" and Path(doc["locations"][0]).exists()
    v = cli(tmp_path, "backup", "verify", "site")
    assert v.returncode == 0, v.stderr
    assert "verified" in v.stdout and "every checksum matches" in v.stdout
    assert cli(tmp_path, "backup", "run", "site").returncode == 0
    ls = cli(tmp_path, "backup", "list", "--json")
    assert ls.returncode == 0, ls.stderr
    listed = json.loads(ls.stdout)
    assert listed["targets"]["site"]["state"] == "unverified"  # the newest is not verified yet
    assert listed["targets"]["other"]["why"] == "no backup yet"
    assert [r["status"] for r in listed["runs"]] == ["ok", "verified"]
    text = cli(tmp_path, "backup", "list", "site")
    assert "UNVERIFIED" in text.stdout and doc["id"] in text.stdout
    dry = cli(tmp_path, "backup", "prune", "site", "--dry-run")
    assert dry.returncode == 0 and "newest verified backup" in dry.stdout and "would delete" not in dry.stdout
    assert Path(doc["locations"][0]).exists()


def test_corrupt_copy_fails_verify_with_exit_1(tmp_path: Path) -> None:
    doc = json.loads(cli(tmp_path, "backup", "run", "site", "--json").stdout)
    Path(doc["locations"][0]).write_bytes(b"garbage")
    p = cli(tmp_path, "backup", "verify", "site")
    assert p.returncode == 1 and "verify_failed" in p.stdout and "checksum" in p.stdout


def test_restore_exit_codes(tmp_path: Path) -> None:
    assert cli(tmp_path, "backup", "run", "site").returncode == 0
    out = tmp_path / "out"
    p = cli(tmp_path, "backup", "restore", "site", "--into", str(out))
    assert p.returncode == 0, p.stderr
    assert any(out.rglob("a.txt"))
    assert cli(tmp_path, "backup", "restore", "site", "--overwrite", "--confirm", "site").returncode == 4
    p = cli(tmp_path, "backup", "restore", "site", "--overwrite", "--confirm", "nope", role="approver")
    assert p.returncode == 1 and "typed back" in p.stderr
    p = cli(
        tmp_path, "backup", "restore", "site", "--overwrite", "--confirm", "site", "--json", role="approver"
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["safety_backup"]
    assert cli(tmp_path, "backup", "run", "nosuch").returncode == 2
    assert cli(tmp_path, "backup", "run").returncode == 2  # two targets: name one
    assert cli(tmp_path, "backup", "run", "site", role="viewer").returncode == 4
