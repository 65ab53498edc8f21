"""--config, --workspace, --read-only and --json go before or after the command, as in git and kubectl:
each spelling below is a real `opsconsole` process on a real workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults.conftest import REPO, cli

from .conftest import write_workspace


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    # Port 9 (discard): nothing here scrapes it; kill, status and flags read configuration and files.
    return write_workspace(tmp_path, port=9)


def _engaged(ws: Path) -> bool:
    p = cli("status", "--json", "--workspace", str(ws))
    assert p.returncode == 0, p.stderr
    return bool(json.loads(p.stdout)["kill_switch"]["engaged"])


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_kill_takes_the_workspace_before_or_after_the_command(ws, before):
    where = ["--workspace", str(ws)]
    args = [*where, "kill", "--reason", "drill"] if before else ["kill", "--reason", "drill", *where]
    p = cli(*args)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["engaged"] is True
    assert _engaged(ws)


@pytest.mark.parametrize(
    "args",
    [
        ["--read-only", "--workspace", "{ws}", "kill", "--reason", "drill"],
        ["--workspace", "{ws}", "kill", "--read-only", "--reason", "drill"],
        ["kill", "--reason", "drill", "--workspace", "{ws}", "--read-only"],
    ],
    ids=["both-before", "split", "both-after"],
)
def test_read_only_is_honoured_wherever_it_stands(ws, args):
    p = cli(*(a.format(ws=ws) for a in args))
    assert p.returncode == 4, (p.stdout, p.stderr)
    assert "not permitted" in p.stderr
    assert not (ws / "flags" / "production.json").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--json", "--workspace", "{ws}", "flags", "list"],
        ["--workspace", "{ws}", "flags", "list", "--json"],
        ["flags", "list", "--json", "--workspace", "{ws}"],
    ],
    ids=["before", "mixed", "after"],
)
def test_json_and_workspace_before_or_after_the_command(ws, args):
    p = cli(*(a.format(ws=ws) for a in args))
    assert p.returncode == 0, p.stderr
    assert "new_checkout" in {row["name"] for row in json.loads(p.stdout)["production"]}


def test_config_before_the_command(tmp_path):
    ws = tmp_path / "ws"
    p = cli("--config", str(REPO / "config/opsconsole.yaml"), "--workspace", str(ws), "config", "check")
    assert p.returncode == 0, p.stderr
    assert "ok" in p.stdout
    assert not ws.exists()


def test_the_value_after_the_command_wins(ws, tmp_path):
    other = tmp_path / "elsewhere"
    p = cli("--workspace", str(other), "kill", "--reason", "drill", "--workspace", str(ws))
    assert p.returncode == 0, p.stderr
    assert _engaged(ws)
    assert not other.exists()


def test_json_for_a_command_without_json_output_is_bad_input(ws):
    p = cli("--json", "--workspace", str(ws), "all-clear", "--reason", "x")
    assert p.returncode == 2
    assert "--json" in p.stderr and "all-clear" in p.stderr


@pytest.mark.parametrize("args", [["--config"], ["--workspace"], ["--read-only", "--workspace"]])
def test_a_global_option_without_its_value_is_bad_input(args):
    p = cli(*args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "expected one argument" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize(
    ("argv", "workspace", "theme"),
    [
        (["--workspace", "W"], "W", None),
        (["--workspace=W", "--read-only", "--theme", "opsconsole-16"], "W", "opsconsole-16"),
        (["--theme", "opsconsole-16", "--workspace", "W"], "W", "opsconsole-16"),
    ],
)
def test_without_a_command_the_console_opens_with_the_global_options(argv, workspace, theme):
    # The parse alone: opening the console itself is covered by tests/tui/test_opening.py.
    from opsconsole.cli import _with_command, build_parser

    args = build_parser().parse_args(_with_command(argv))
    assert (args.command, args.workspace, args.theme) == ("console", workspace, theme)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--workspace", "W"],
        ["--workspace=W", "--read-only", "--theme", "opsconsole-16"],
        ["--theme", "opsconsole-16", "--workspace", "W"],
        ["console", "--env", "prod"],
        ["--config", "C", "console", "--workspace", "X", "--workspace", "Y"],
        ["--env", "e", "--config=C", "--read-only"],
    ],
)
def test_the_console_fast_path_reads_a_command_line_as_argparse_does(argv):
    # fastconsole.py opens the console without building every command's parser: what it reads must
    # be what argparse reads.
    from opsconsole.cli import _with_command, build_parser
    from opsconsole.cli.fastconsole import parse

    fast = parse(argv)
    assert fast is not None
    args = vars(build_parser().parse_args(_with_command(argv)))
    assert args["command"] == "console"
    assert fast == {key: args.get(key, False if key == "read_only" else None) for key in fast}


@pytest.mark.parametrize(
    "argv",
    [
        ["--json"],
        ["-h"],
        ["--work", "W"],
        ["--read-only=1"],
        ["--workspace", "-x"],
        ["--workspace=-x"],
        ["--workspace"],
        ["--workspace", "W", "console", "console"],
        ["status"],
        ["demo"],
        ["kill", "--reason", "r"],
    ],
)
def test_anything_else_goes_through_argparse(argv):
    from opsconsole.cli.fastconsole import parse

    assert parse(argv) is None
