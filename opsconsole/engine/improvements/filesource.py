"""Proposals from a file, for teams without an agent: YAML or JSON, in the agent's shape.

The file holds a list of proposals, or `{improvements: [...]}` (what `list_improvements` returns).
It is read again on every sync, so editing it is how a team submits, and a broken edit is reported
as a `protocol` error naming the entry and field while the queue keeps what it had.

A file cannot deploy anything by itself: deploy and rollback raise AgentError("unsupported") unless
the environment names a `deploy_command` / `rollback_command`, argv lists run with the improvement's
id appended (and, for a rollback, the reason), without a shell, bounded by `command_timeout`; exit
status 0 means done, anything else is the command's refusal with the tail of its output.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import yaml

from ..redact import redact_text
from .model import ImprovementSettings
from .protocol import (
    ActionResult,
    CycleResult,
    ImprovementList,
    Proposal,
    ProtocolError,
    SystemStatus,
    TelemetryInsights,
    parse_proposals,
)
from .source import AgentError

MAX_FILE_BYTES = 64 * 1024 * 1024
"""A proposals file larger than this is refused: the queue must not be filled by one runaway file."""

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class FileSource:
    def __init__(self, settings: ImprovementSettings) -> None:
        assert settings.proposals_file is not None
        self.path = Path(settings.proposals_file)
        self.settings = settings
        self.name = f"file {self.path.name}"
        self.can_deploy = bool(settings.deploy_command)
        """Without a deploy_command approved items wait, with the reason shown, rather than fail."""

    async def system_status(self) -> SystemStatus:
        try:
            mtime = self.path.stat().st_mtime
        except OSError as exc:
            raise AgentError("unreachable", f"{self.path}: {exc.strerror or exc}") from None
        return SystemStatus("ok", message=f"proposals file {self.path}", last_cycle_at=mtime)

    async def insights(self, time_range_hours: float) -> TelemetryInsights:
        return TelemetryInsights()

    async def trigger_cycle(self, analysis_window_hours: float, max_improvements: int) -> CycleResult:
        # A file has no analysis to run: what it proposes is what list_improvements reads.
        return CycleResult(cycle_id="")

    async def list_improvements(self, since_hours: float | None = None) -> ImprovementList:
        return ImprovementList(await asyncio.to_thread(self.read))

    def read(self) -> tuple[Proposal, ...]:
        """The file's proposals, checked (blocking: callers off the event loop use a thread)."""
        try:
            size = self.path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise AgentError(
                    "protocol", f"{self.path}: {size} bytes, more than the {MAX_FILE_BYTES} accepted"
                )
            text = self.path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise AgentError("unreachable", f"{self.path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise AgentError("protocol", f"{self.path}: not UTF-8 text ({exc.reason})") from None
        doc = _parse(text, self.path)
        if isinstance(doc, dict) and "improvements" in doc:
            doc = doc["improvements"]
        try:
            return parse_proposals(doc, self.path.name)
        except ProtocolError as exc:
            raise AgentError("protocol", str(exc)) from None

    async def deploy(self, improvement_id: str) -> ActionResult:
        if not self.settings.deploy_command:
            raise AgentError(
                "unsupported",
                f"a proposals file cannot deploy; deploy {improvement_id} by hand or set deploy_command",
            )
        return await self._run(self.settings.deploy_command, improvement_id, [improvement_id])

    async def rollback(self, improvement_id: str, reason: str) -> ActionResult:
        if not self.settings.rollback_command:
            raise AgentError(
                "unsupported",
                f"a proposals file cannot roll back; undo {improvement_id} by hand or set rollback_command",
            )
        return await self._run(self.settings.rollback_command, improvement_id, [improvement_id, reason])

    async def close(self) -> None:
        return None

    async def _run(self, argv: tuple[str, ...], improvement_id: str, extra: list[str]) -> ActionResult:
        shown = redact_text(" ".join(argv))
        timeout = self.settings.command_timeout
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                *extra,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.path.parent if self.path.parent.is_dir() else None,
            )
        except OSError as exc:
            raise AgentError("unreachable", redact_text(f"cannot run {shown}: {exc}")) from None
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AgentError("timeout", f"{shown} ran longer than {timeout:g}s") from None
        tail = redact_text(out.decode(errors="replace").strip()[-500:])
        took = time.monotonic() - started
        if proc.returncode != 0:
            return ActionResult(improvement_id, False, f"{shown} exited {proc.returncode}: {tail}")
        return ActionResult(improvement_id, True, tail, "done", {"seconds": round(took, 3)})


def _parse(text: str, path: Path) -> Any:
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_LOADER)  # noqa: S506  # a safe loader (C or Python)
    except (ValueError, yaml.YAMLError) as exc:
        raise AgentError(
            "protocol", f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}"
        ) from None
