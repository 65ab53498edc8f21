"""`opsconsole engine` as an operator meets it: a second engine on a held workspace says only that it
is refused, and SIGHUP (the terminal closing) stops an engine the way SIGTERM does."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from opsconsole.engine.runner import Runner
from tests.faults.conftest import cli, spawn, wait_for, write_workspace


def _engine(ws: Path) -> Any:
    """A running engine: it holds the workspace and has said so (its signal handlers are in place)."""
    proc = spawn("engine", "--workspace", str(ws))
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("engine running on"), first
    wait_for(lambda: Runner.holder(ws) == proc.pid, 30, "the engine holding the workspace")
    return proc


def test_a_refused_second_engine_prints_only_its_refusal(tmp_path: Path, service: Any) -> None:
    ws = write_workspace(tmp_path, service.port)
    first = _engine(ws)
    try:
        second = cli("engine", "--workspace", str(ws), timeout=30)
        assert second.returncode == 1, second
        assert "engine running" not in second.stdout + second.stderr
        assert second.stdout == ""
        assert f"another engine (pid {first.pid}) is running on {ws}" in second.stderr
        assert Runner.holder(ws) == first.pid  # the refusal did not disturb the running engine
    finally:
        first.terminate()
        first.communicate(timeout=30)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_stops_the_engine_cleanly_and_frees_the_workspace(
    tmp_path: Path, service: Any, sig: signal.Signals
) -> None:
    ws = write_workspace(tmp_path, service.port)
    proc = _engine(ws)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert Runner.holder(ws) is None
