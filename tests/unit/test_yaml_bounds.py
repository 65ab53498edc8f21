"""Configuration loading is bounded: merge keys expand in linear time, aliases cannot blow a document
up, nesting has a limit, only regular files of a bounded size are read. Every refusal names the file
(and the line) and what the limit is; nothing hangs.

Loads that could run away before the bounds existed run in a child process with a time and memory
limit, so a regression fails the test instead of taking the machine down.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from opsconsole.engine.config import ConfigError, load_config
from opsconsole.engine.config.bounds import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES

HEAD = """\
roles: {default: admin}
environments:
  production:
    flags: {kind: file, path: "${WORKSPACE}/flags/production.json"}
kill_switch:
  flags_on: [emergency_shutdown]
  flags_off: [f0]
"""


def merge_chain(depth: int) -> str:
    """Flag definitions f0..f<depth>, each merging the one before twice (`<<: [*a, *a]`): expanded by
    copying, the last one is 2**depth mappings."""
    lines = [HEAD, "flags:", "  emergency_shutdown: {default: false}", "  f0: &a0 {risk: low, default: true}"]
    for i in range(1, depth + 1):
        lines.append(f"  f{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}], owner: team{i}}}")
    return "\n".join(lines) + "\n"


def load_in_child(path: Path, seconds: float = 20) -> tuple[float, str]:
    """Load `path` in a child process limited to `seconds` and 1 GiB; (elapsed, what it printed)."""
    script = textwrap.dedent(
        f"""
        from opsconsole.engine.config import ConfigError, load_config
        try:
            c = load_config({str(path)!r}, {{"WORKSPACE": "/nonexistent"}})
            print("ok", len(c.flags))
        except ConfigError as exc:
            print("error", exc)
        """
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    t0 = time.monotonic()
    try:
        p = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=seconds, preexec_fn=limit
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading {path.name} did not finish within {seconds} s")
    assert p.returncode == 0, p.stderr[-2000:]
    return time.monotonic() - t0, p.stdout


def issues_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path, {"WORKSPACE": str(path.parent)})
    return [str(i) for i in err.value.issues]


def test_a_forty_deep_merge_chain_loads_in_linear_time(tmp_path: Path) -> None:
    path = tmp_path / "chain.yaml"
    path.write_text(merge_chain(40))
    elapsed, out = load_in_child(path)
    assert out.strip() == "ok 42", out
    assert elapsed < 10, elapsed  # a Python start-up and a small file; minutes before
    flags = load_config(path, {"WORKSPACE": str(tmp_path)}).flags
    assert flags["f40"].owner == "team40" and flags["f40"].default is True  # merged from f0
    assert flags["f39"].owner == "team39"


def test_merge_keys_still_override_and_report_problems_once(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        HEAD
        + "flags:\n  emergency_shutdown: {default: false}\n"
        + "  f0: &base {risk: low, owner: a, owner: b}\n"
        + "  f1: {<<: [*base, *base, 3], risk: high}\n"
    )
    found = issues_of(path)
    assert found == [
        f"{path}:10: flags.f0.owner: duplicate key 'owner' (first set at line 10)",
        f"{path}:11: flags.f1: '<<' merges a mapping, got 3",
    ], found


def test_alias_blow_up_is_refused_at_the_line_that_expands(tmp_path: Path) -> None:
    rows = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = tmp_path / "laughs.yaml"
    path.write_text(HEAD + "\n".join(rows) + "\n")
    elapsed, out = load_in_child(path)
    assert out.startswith("error"), out
    # a5 (line 13) is the first list that alone expands to more than MAX_NODES values (10**6 of them)
    assert f"{path}:13: expands to more than {MAX_NODES:,} values through aliases" in out, out
    assert elapsed < 10, elapsed


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    for body, line in (("loop: &l [1, *l]\n", 9), ("loop: &m {x: 1, <<: *m}\n", 9)):
        path = tmp_path / "loop.yaml"
        path.write_text(HEAD + "flags: {}\n" + body)
        found = issues_of(path)
        assert len(found) == 1 and found[0].startswith(f"{path}:{line}: "), found
        assert "refers to itself" in found[0], found


def test_nesting_deeper_than_the_limit_is_refused(tmp_path: Path) -> None:
    deep = "x: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n"
    path = tmp_path / "deep.yaml"
    path.write_text(HEAD + deep)
    found = issues_of(path)
    assert len(found) == 1 and f"nested more than {MAX_DEPTH} levels deep" in found[0], found
    assert found[0].startswith(f"{path}:8: "), found


def test_nesting_through_aliases_counts_too(tmp_path: Path) -> None:
    rows = ["n0: &n0 [x]"] + [f"n{i}: &n{i} [*n{i - 1}]" for i in range(1, MAX_DEPTH + 5)]
    path = tmp_path / "deep-alias.yaml"
    path.write_text(HEAD + "\n".join(rows) + "\n")
    found = issues_of(path)
    assert len(found) == 1 and f"nested more than {MAX_DEPTH} levels deep" in found[0], found


def test_a_huge_flat_document_is_refused_before_it_is_built(tmp_path: Path) -> None:
    path = tmp_path / "flat.yaml"
    path.write_text(HEAD + "x: [" + "1," * (MAX_FILE_BYTES // 2 - 200) + "1]\n")
    assert path.stat().st_size <= MAX_FILE_BYTES
    elapsed, out = load_in_child(path)
    assert out.startswith("error") and f"more than {MAX_NODES:,} values" in out, out
    assert elapsed < 10, elapsed


def test_a_file_over_the_size_cap_is_refused_naming_file_and_cap(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(HEAD + "# " + "x" * MAX_FILE_BYTES + "\n")
    found = issues_of(path)
    assert found == [f"{path}: is {path.stat().st_size:,} bytes; configuration files are limited to 4 MiB"]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_only_regular_files_are_read(tmp_path: Path, kind: str) -> None:
    if kind == "fifo":
        target = tmp_path / "pipe.yaml"
        os.mkfifo(target)
        expect = "is a FIFO, not a regular file"
    elif kind == "dev-zero":
        target = Path("/dev/zero")
        expect = "is a character device, not a regular file"
    else:
        target = tmp_path / "dir.yaml"
        target.mkdir()
        expect = "is a directory, not a regular file"
    main = tmp_path / "main.yaml"
    main.write_text(HEAD + f"flags: {target}\n")
    elapsed, out = load_in_child(main, seconds=15)
    assert out.startswith("error") and f"{target}: {expect}" in out, out
    elapsed, out = load_in_child(target, seconds=15)
    assert out.startswith("error") and f"{target}: {expect}" in out, out
