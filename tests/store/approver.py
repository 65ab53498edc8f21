"""One approver in a process of its own (multiprocessing, spawn): its own engine on the shared
store, the way a console on another machine would be. Kept free of pytest so a child imports little."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def approve_in_process(
    config: str, workspace: str, user: str, rollout_id: str, ready: Any, go: Any, out: Any
) -> None:
    from opsconsole.engine import Rejected
    from opsconsole.engine.config import load_config
    from opsconsole.engine.core import Engine
    from opsconsole.engine.model import Actor

    ws = Path(workspace)
    try:
        engine = Engine(load_config(config, {"WORKSPACE": str(ws)}), ws, Actor(user, "test"))
    except BaseException as exc:
        ready.put(user)
        out.put((user, f"error: {type(exc).__name__}: {exc}"))
        return
    ready.put(user)
    go.wait(60)
    try:
        engine.approve(rollout_id, f"{user} approves")
        out.put((user, "ok"))
    except Rejected as exc:
        out.put((user, f"refused: {exc}"))
    except BaseException as exc:
        out.put((user, f"error: {type(exc).__name__}: {exc}"))
    finally:
        engine.close()
