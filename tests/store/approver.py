"""One approver in a process of its own (multiprocessing, spawn): its own engine on the shared
store, the way a console on another machine would be. Kept free of pytest so a child imports little."""

from __future__ import annotations

from typing import Any

from tests.store.people import Person


def approve_in_process(
    config: str, workspace: str, person: Person, rollout_id: str, ready: Any, go: Any, out: Any
) -> None:
    """`person` opens its engine as itself: its own login on PostgreSQL (people.py)."""
    from opsconsole.engine import Rejected

    user = person.name
    try:
        engine = person.engine(config, workspace)
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
