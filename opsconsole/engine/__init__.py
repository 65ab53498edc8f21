"""The engine facade: the only part of the engine the console and the CLI import.

Everything that decides (rollout state machine, gates, flags) is pure code behind this; adapters
(store, sources, targets) load lazily. Names are resolved on first use (PEP 562) so that importing one
engine module, or the facade itself, does not pull in the whole engine: the console's first frame
and the CLI's start-up stay fast.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import schedules
    from .alarms import AlarmStatus
    from .authz import Forbidden
    from .core import Conflict, Engine, NotFound
    from .flags import EvalContext, Evaluation, FlagState, UnknownFlag, find_flag, near_miss
    from .flags import value_text as flag_value_text
    from .killswitch import ImprovementsPause, KillResult, KillState
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
    from .report import iso
    from .report import render as render_report
    from .rollout import Rejected, allowed_commands
    from .runner import EngineBusy, Runner
    from .session import MetricRow, Session
    from .stale import FlagAge
    from .store import StoreError
    from .units import format_duration, format_value, iso_utc
    from .views import phase_of, rollout_row, why

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
    "rollout_row": "views",
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
    "AlarmStatus": "alarms",
    "GateVerdict": "model",
    "Role": "model",
}

_RENAMED = {"render_report": "render", "flag_value_text": "value_text"}

__all__ = [
    "Actor",
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
    opsconsole.yaml (the demo writes one), else ./config/opsconsole.yaml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("OPSCONSOLE_CONFIG")
    if env:
        return Path(env)
    own = workspace / "opsconsole.yaml"
    if own.exists():
        return own
    return Path("config") / "opsconsole.yaml"


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
