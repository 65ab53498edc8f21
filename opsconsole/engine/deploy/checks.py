"""Health probes and host commands (tests, builds, smoke tests), each bounded in time."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from ..redact import redact_text
from .dockertarget import DockerTarget
from .model import CommandStep, HealthSpec

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
Stop = Callable[[], str | None]
"""Asked at each safe point of a deploy: a reason to stop there (the kill switch engaged), or None."""


def probe_http(url: str, timeout: float) -> str | None:
    """None when `url` answers 2xx within `timeout`, else why not."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{url}: {reason}"
    return None if 200 <= status < 300 else f"{url} answered {status}"


def wait_healthy(
    target: DockerTarget, container: Any, health: HealthSpec, port: int | None, stop: Stop | None = None
) -> str | None:
    """Wait for one replica: None once healthy, else why not (it exited, `failure_limit` probes in a
    row failed after the start period, `max_wait` passed, or `stop` asked to stop)."""
    started = time.monotonic()
    failures = 0
    last = "no probe yet"
    while True:
        why = stop() if stop is not None else None
        if why:
            return f"stopped while {container.name} was checked: {why}"
        state = target.state(container)
        if state.get("Status") not in ("running", "created"):
            tail = target.logs_tail(container)
            return f"{container.name} {state.get('Status')} (exit code {state.get('ExitCode')})" + (
                f": {tail}" if tail else ""
            )
        if health.docker:
            status = (state.get("Health") or {}).get("Status")
            if status is None:
                return f"{container.name}: its image has no HEALTHCHECK (set health.url instead)"
            if status == "healthy":
                return None
            if status == "unhealthy":
                logs = (state.get("Health") or {}).get("Log") or [{}]
                output = " ".join(str(logs[-1].get("Output", "")).split())
                return (
                    f"{container.name} unhealthy (the image's HEALTHCHECK){': ' + output if output else ''}"
                )
            last = f"health {status}"
        elif health.url:
            url = health.url.replace("{port}", str(port or ""))
            error = probe_http(url, health.timeout)
            if error is None:
                return None
            last = error
            if time.monotonic() - started >= health.start_period:
                failures += 1
                if failures >= health.failure_limit:
                    return f"{container.name} unhealthy: {failures} failed checks in a row, last: {last}"
        else:
            return None  # no health check configured: running is all that is asked
        if time.monotonic() - started > health.max_wait:
            return f"{container.name} not healthy within {health.max_wait:g}s (last: {last})"
        time.sleep(health.interval)


def run_command(step: CommandStep, env: dict[str, str]) -> tuple[bool, str]:
    """Run `sh -c command` with a timeout (the whole process group is killed when it passes).
    Returns (ok, detail): the exit code or timeout and the output's last line, secrets redacted."""
    proc = subprocess.Popen(
        ["sh", "-c", step.command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **env},
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=step.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return False, f"{step.name}: timed out after {step.timeout:g}s"
    lines = [ln for ln in out.decode("utf-8", "replace").splitlines() if ln.strip()]
    tail = redact_text(lines[-1].strip())[:200] if lines else ""
    if proc.returncode == 0:
        return True, tail
    return False, f"{step.name}: exit code {proc.returncode}" + (f": {tail}" if tail else "")
