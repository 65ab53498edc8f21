"""The engine facade: the only part of the engine the console, the CLI and the demo import.

Everything that decides (rollout state machine, gates, flags) is pure code behind this; adapters
(store, sources, targets) load lazily. Names are resolved on first use (PEP 562) so that importing one
engine module, or the facade itself, does not pull in the whole engine: the console's first frame
and the CLI's start-up stay fast.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

# Not `from typing import …`: typing costs a fresh `opsconsole kill` ~4 ms before its files are safe
# (cli/fastkill.py); mypy reads this name as typing.TYPE_CHECKING.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from . import schedules
    from .alarms import AlarmStatus
    from .authz import Authz, Forbidden
    from .backups.errors import BackupError
    from .backups.model import (
        BackupRun,
        BackupTarget,
        Restorability,
        RestoreResult,
        RetentionDecision,
        RunStatus,
        TargetStatus,
    )
    from .checks import check_now
    from .config import ConfigError, load_config, parse_duration
    from .config.issues import suggest
    from .config.notifications import missing_secrets as missing_notification_secrets
    from .core import Conflict, Engine, FilesBehind, NotFound
    from .deploy.model import DeployReport
    from .deploy.model import Outcome as DeployOutcome
    from .deploy.service import deploy_service
    from .deploy.status import ServiceStatus, age_text, deploy_lines, rollout_deploys, service_status
    from .firstlook import FirstLook, traffic_text
    from .firstlook import read as read_first_look
    from .firstlook import save as save_first_look
    from .flags import (
        EvalContext,
        Evaluation,
        FlagState,
        UnknownFlag,
        find_flag,
        in_rollout,
        near_miss,
        parse_env_value,
        validate_value,
    )
    from .flags import value_text as flag_value_text
    from .fsutil import write_atomic
    from .health import clock_text
    from .health import read as read_health
    from .identity import current_actor, superuser_warning
    from .improvements.decide import ImprovementStats
    from .improvements.mcp_client import McpAgent
    from .improvements.model import (
        TRANSITIONS,
        AgentEndpoint,
        Improvement,
        ImprovementSettings,
        ImprovementStatus,
        Sample,
        TenantSettings,
    )
    from .improvements.protocol import PredictedImpact, Proposal, proposal_document
    from .improvements.service import PartlyRefused
    from .improvements.source import AgentError, AgentSource
    from .improvements.state import QueueMode, SyncResult
    from .killfast import engage as engage_from_kill_plan
    from .killplan import load as load_kill_plan
    from .killswitch import JOURNAL as KILL_JOURNAL
    from .killswitch import RECORD_WAIT as KILL_RECORD_WAIT
    from .killswitch import (
        ImprovementsPause,
        KillResult,
        KillState,
        SafeFiles,
        make_safe,
        wait_for_notifications,
    )
    from .killswitch import record as record_kill
    from .killswitch import store_trouble as kill_store_trouble
    from .leader import WhoRuns, who_runs
    from .leader import check as check_engine
    from .live import LiveFeed, TeamStatus
    from .live import start as start_live
    from .model import (
        Actor,
        Config,
        FlagDef,
        FlagSchedule,
        FlagValue,
        GateVerdict,
        Role,
        Rollout,
        RolloutState,
        ScheduleState,
        ScheduleStep,
        Verdict,
    )
    from .redact import redact_text
    from .report import iso
    from .report import render as render_report
    from .rollout import Rejected, allowed_commands
    from .runner import EngineBusy, Runner
    from .session import MetricRow, Session
    from .sources.alertmanager import AlarmSourceError, Silence
    from .sources.check import SourceCheck, check_sources
    from .stale import FlagAge
    from .store import StoreError
    from .store.grants import GrantReport, grant_store, store_login
    from .store.transfer import copy_store, migrate_store
    from .targets.notify import OutboxSummary
    from .targets.notify import summary as notification_summary
    from .units import format_duration, format_value, iso_utc
    from .views import phase_of, rollout_row, stopped_traffic, why

DEFAULT_WORKSPACE = ".opsconsole"

_LAZY = {
    "Forbidden": "authz",
    "Conflict": "core",
    "Engine": "core",
    "NotFound": "core",
    "KillResult": "killswitch",
    "KillState": "killswitch",
    "ImprovementsPause": "killswitch",
    "Actor": "model",
    "Config": "model",
    "FlagDef": "model",
    "Rollout": "model",
    "RolloutState": "model",
    "Verdict": "model",
    "Rejected": "rollout",
    "allowed_commands": "rollout",
    "Session": "session",
    "MetricRow": "session",
    "Runner": "runner",
    "EngineBusy": "runner",
    "check_engine": "leader",  # `opsconsole engine --check`
    "who_runs": "leader",  # status and the schedules' note: on PostgreSQL the database says
    "WhoRuns": "leader",
    "rollout_row": "views",
    "stopped_traffic": "views",
    "traffic_text": "firstlook",  # views re-exports it; this way the first frame imports no model
    "why": "views",
    "phase_of": "views",
    "format_value": "units",
    "format_duration": "units",
    "iso_utc": "units",
    "iso": "report",
    "render_report": "report",
    "FlagState": "flags",
    "EvalContext": "flags",
    "Evaluation": "flags",
    "UnknownFlag": "flags",
    "find_flag": "flags",
    "near_miss": "flags",
    "flag_value_text": "flags",
    "FlagSchedule": "model",
    "FlagValue": "model",
    "ScheduleState": "model",
    "ScheduleStep": "model",
    "FlagAge": "stale",
    "StoreError": "store",
    "copy_store": "store.transfer",
    "grant_store": "store.grants",
    "GrantReport": "store.grants",
    "store_login": "store.grants",
    "migrate_store": "store.transfer",
    "AlarmStatus": "alarms",
    "GateVerdict": "model",
    "Role": "model",
    # the CLI and the demo
    "Authz": "authz",
    "check_now": "checks",
    "check_sources": "sources.check",
    "SourceCheck": "sources.check",
    "ConfigError": "config",
    "load_config": "config",
    "parse_duration": "config",
    "suggest": "config.issues",
    "FilesBehind": "core",
    "in_rollout": "flags",
    "parse_env_value": "flags",
    "validate_value": "flags",
    "write_atomic": "fsutil",
    "clock_text": "health",
    "read_health": "health",
    "current_actor": "identity",
    "superuser_warning": "identity",
    "KILL_JOURNAL": "killswitch",
    "KILL_RECORD_WAIT": "killswitch",
    "kill_store_trouble": "killswitch",
    "make_safe": "killswitch",
    "SafeFiles": "killswitch",
    "engage_from_kill_plan": "killfast",
    "record_kill": "killswitch",
    "load_kill_plan": "killplan",
    "FirstLook": "firstlook",
    "read_first_look": "firstlook",
    "save_first_look": "firstlook",
    "wait_for_notifications": "killswitch",
    "redact_text": "redact",
    # notifications: the outbox at a glance (status, header), and what `config check` says is unset
    "notification_summary": "targets.notify",
    "OutboxSummary": "targets.notify",
    "missing_notification_secrets": "config.notifications",
    # the improvement queue, and its agent over MCP (the demo starts one)
    "McpAgent": "improvements.mcp_client",
    "Improvement": "improvements.model",
    "ImprovementStatus": "improvements.model",
    "ImprovementSettings": "improvements.model",
    "TenantSettings": "improvements.model",
    "AgentEndpoint": "improvements.model",
    "Sample": "improvements.model",
    "TRANSITIONS": "improvements.model",
    "Proposal": "improvements.protocol",
    "PredictedImpact": "improvements.protocol",
    "proposal_document": "improvements.protocol",
    "ImprovementStats": "improvements.decide",
    "QueueMode": "improvements.state",
    "SyncResult": "improvements.state",
    "PartlyRefused": "improvements.service",
    "AgentError": "improvements.source",
    "AgentSource": "improvements.source",
    # backups
    "BackupError": "backups.errors",
    "BackupRun": "backups.model",
    "BackupTarget": "backups.model",
    "Restorability": "backups.model",
    "RestoreResult": "backups.model",
    "RetentionDecision": "backups.model",
    "RunStatus": "backups.model",
    "TargetStatus": "backups.model",
    # team mode: live updates from the shared store
    "LiveFeed": "live",
    "TeamStatus": "live",
    "start_live": "live",
    # alarm sources
    "AlarmSourceError": "sources.alertmanager",
    "Silence": "sources.alertmanager",
    # Docker deployments
    "deploy_service": "deploy.service",
    "DeployReport": "deploy.model",
    "DeployOutcome": "deploy.model",
    "ServiceStatus": "deploy.status",
    "service_status": "deploy.status",
    "rollout_deploys": "deploy.status",
    "deploy_lines": "deploy.status",
    "age_text": "deploy.status",
}

_RENAMED = {
    "DeployOutcome": "Outcome",
    "kill_store_trouble": "store_trouble",
    "check_engine": "check",
    "notification_summary": "summary",
    "missing_notification_secrets": "missing_secrets",
    "render_report": "render",
    "read_health": "read",
    "KILL_JOURNAL": "JOURNAL",
    "KILL_RECORD_WAIT": "RECORD_WAIT",
    "record_kill": "record",
    "load_kill_plan": "load",
    "read_first_look": "read",
    "save_first_look": "save",
    "engage_from_kill_plan": "engage",
    "flag_value_text": "value_text",
    "start_live": "start",
}

__all__ = [
    "Actor",
    "LiveFeed",
    "TeamStatus",
    "start_live",
    "kill_store_trouble",
    "who_runs",
    "WhoRuns",
    "check_engine",
    "AlarmStatus",
    "EngineBusy",
    "EvalContext",
    "Evaluation",
    "FlagAge",
    "FlagSchedule",
    "FlagValue",
    "FlagState",
    "ScheduleState",
    "ScheduleStep",
    "schedules",
    "GateVerdict",
    "MetricRow",
    "Role",
    "Runner",
    "Session",
    "StoreError",
    "copy_store",
    "grant_store",
    "GrantReport",
    "store_login",
    "migrate_store",
    "UnknownFlag",
    "allowed_commands",
    "find_flag",
    "flag_value_text",
    "format_duration",
    "format_value",
    "iso_utc",
    "near_miss",
    "iso",
    "render_report",
    "rollout_row",
    "stopped_traffic",
    "traffic_text",
    "why",
    "phase_of",
    "Config",
    "FlagDef",
    "Conflict",
    "Engine",
    "Forbidden",
    "KillResult",
    "ImprovementsPause",
    "KillState",
    "NotFound",
    "Rejected",
    "Rollout",
    "RolloutState",
    "Verdict",
    "config_path",
    "load",
    "open_engine",
    # the CLI and the demo
    "Authz",
    "check_now",
    "check_sources",
    "SourceCheck",
    "ConfigError",
    "load_config",
    "parse_duration",
    "suggest",
    "FilesBehind",
    "in_rollout",
    "parse_env_value",
    "validate_value",
    "write_atomic",
    "clock_text",
    "read_health",
    "current_actor",
    "superuser_warning",
    "KILL_JOURNAL",
    "KILL_RECORD_WAIT",
    "load_kill_plan",
    "FirstLook",
    "read_first_look",
    "save_first_look",
    "wait_for_notifications",
    "make_safe",
    "SafeFiles",
    "engage_from_kill_plan",
    "record_kill",
    "redact_text",
    "notification_summary",
    "OutboxSummary",
    "missing_notification_secrets",
    "Improvement",
    "ImprovementStatus",
    "ImprovementSettings",
    "TenantSettings",
    "AgentEndpoint",
    "Sample",
    "TRANSITIONS",
    "Proposal",
    "PredictedImpact",
    "proposal_document",
    "ImprovementStats",
    "QueueMode",
    "SyncResult",
    "PartlyRefused",
    "AgentError",
    "AgentSource",
    "McpAgent",
    "BackupError",
    "BackupRun",
    "BackupTarget",
    "Restorability",
    "RestoreResult",
    "RetentionDecision",
    "RunStatus",
    "TargetStatus",
    "AlarmSourceError",
    "Silence",
    "deploy_service",
    "ServiceStatus",
    "service_status",
    "rollout_deploys",
    "deploy_lines",
    "age_text",
    "DeployReport",
    "DeployOutcome",
]


_MODULES = frozenset({"schedules"})
"""Pure helper modules the console may use whole (parsing schedule times, describing plans)."""


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), _RENAMED.get(name, name))


def config_path(explicit: str | None, workspace: Path) -> Path:
    """Which configuration a command uses: --config, else $OPSCONSOLE_CONFIG, else the workspace's own
    opsconsole.yaml (the demo writes one), else ./config/opsconsole.yaml, else the default configuration
    that ships with the package."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("OPSCONSOLE_CONFIG")
    if env:
        return Path(env)
    own = workspace / "opsconsole.yaml"
    if own.exists():
        return own
    here = Path("config") / "opsconsole.yaml"
    if here.exists():
        return here
    from ..shipped import shipped

    return shipped("config") / "opsconsole.yaml"


def load(config: str | None, workspace: str | Path | None) -> tuple[Config, Path]:
    """Load and validate configuration without touching the workspace. Raises config.ConfigError."""
    from .config import load_config

    ws = Path(workspace or DEFAULT_WORKSPACE).absolute()
    path = config_path(config, ws)
    return load_config(path, {"WORKSPACE": str(ws)}), ws


def open_engine(
    config: str | None = None,
    workspace: str | Path | None = None,
    *,
    read_only: bool = False,
    actor: Actor | None = None,
) -> Engine:
    from .core import Engine
    from .identity import current_actor

    cfg, ws = load(config, workspace)
    ws.mkdir(parents=True, exist_ok=True)
    return Engine(cfg, ws, actor or current_actor(), read_only=read_only)
