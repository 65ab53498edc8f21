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
    from .flags import EvalContext, Evaluation, FlagState
    from .killswitch import KillResult, KillState
    from .model import (
        Actor,
        Config,
        FlagSchedule,
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
    from .rollout import Rejected
    from .runner import EngineBusy, Runner
    from .session import MetricRow, Session
    from .stale import FlagAge
    from .store import StoreError
    from .units import format_duration, format_value
    from .views import phase_of, rollout_row, stopped_traffic, traffic_text, why

DEFAULT_WORKSPACE = ".opsconsole"

_LAZY = {
    "Forbidden": "authz",
    "Conflict": "core",
    "Engine": "core",
    "NotFound": "core",
    "KillResult": "killswitch",
    "KillState": "killswitch",
    "Actor": "model",
    "Config": "model",
    "Rollout": "model",
    "RolloutState": "model",
    "Verdict": "model",
    "Rejected": "rollout",
    "Session": "session",
    "MetricRow": "session",
    "Runner": "runner",
    "EngineBusy": "runner",
    "rollout_row": "views",
    "stopped_traffic": "views",
    "traffic_text": "views",
    "why": "views",
    "phase_of": "views",
    "format_value": "units",
    "format_duration": "units",
    "iso": "report",
    "render_report": "report",
    "FlagState": "flags",
    "EvalContext": "flags",
    "Evaluation": "flags",
    "FlagSchedule": "model",
    "ScheduleState": "model",
    "ScheduleStep": "model",
    "FlagAge": "stale",
    "StoreError": "store",
    "AlarmStatus": "alarms",
    "GateVerdict": "model",
    "Role": "model",
}

_RENAMED = {"render_report": "render"}

__all__ = [
    "Actor",
    "AlarmStatus",
    "EngineBusy",
    "EvalContext",
    "Evaluation",
    "FlagAge",
    "FlagSchedule",
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
    "format_duration",
    "format_value",
    "iso",
    "render_report",
    "rollout_row",
    "stopped_traffic",
    "traffic_text",
    "why",
    "phase_of",
    "Config",
    "Conflict",
    "Engine",
    "Forbidden",
    "KillResult",
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
