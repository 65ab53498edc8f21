"""Team-mode workspaces on the shared PostgreSQL store, and a process of its own that changes flags
(multiprocessing, spawn: another machine's console as far as the store can tell). Kept free of
pytest so a child imports little."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

FLAGS = """
flags:
  dark_mode: {default: false, owner: web}
  search_v2: {default: false, owner: search}
"""

MAIN = """
store: {store}
interval: {interval}
roles:
  default: viewer
  logins: {{{login}: alice}}
  users: {{alice: operator, bob: operator, carol: operator}}
environments:
  staging:
    flags: {{kind: file, path: "${{WORKSPACE}}/flags/staging.json"}}
flags: flags.yaml
plans: ["{plans}/*.yaml"]
kill_switch: {{flags_off: [search_v2], flags_on: []}}
"""


PLAN = """
name: darkmode
phases:
  - name: staging_on
    environment: staging
    flags: {dark_mode: true}
    approval: {required: true, role: approver}
"""


def write_workspace(ws: Path, store_url: str, interval: str = "1s") -> Path:
    """A workspace (its own flag files: another host's) on the shared store; its config's path.
    A console test sets a long `interval`: a client console also re-reads the store every interval,
    which must not be what shows the change."""
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "flags.yaml").write_text(textwrap.dedent(FLAGS))
    (ws / "plans").mkdir(exist_ok=True)
    (ws / "plans" / "darkmode.yaml").write_text(textwrap.dedent(PLAN))
    path = ws / "opsconsole.yaml"
    # With a PostgreSQL store the person acting is the login: the server's acts as alice.
    login = store_url.split("://", 1)[1].split("@", 1)[0]
    main = MAIN.format(store=store_url, plans=ws / "plans", interval=interval, login=login)
    path.write_text(textwrap.dedent(main))
    return path


def open_engine(ws: Path, user: str = "alice") -> Any:
    from opsconsole.engine.config import load_config
    from opsconsole.engine.core import Engine
    from opsconsole.engine.model import Actor

    return Engine(load_config(ws / "opsconsole.yaml", {"WORKSPACE": str(ws)}), ws, Actor(user, "test"))


def flag_in_file(ws: Path, name: str) -> Any:
    """Whether this workspace's staging flag file turns `name` on (None: no file yet)."""
    import json

    path = ws / "flags" / "staging.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc["flags"][name]["enabled"] if name in doc.get("flags", {}) else None


def flip_flags(workspace: str, user: str, name: str, values: list[bool], go: Any, out: Any) -> None:
    """Set `name` to each of `values` in turn when `go` is set (then each next one when `go` is
    set again, the parent clearing it); puts (value, wall time just before the command) per change."""
    ws = Path(workspace)
    try:
        engine = open_engine(ws, user)
    except BaseException as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}"))
        return
    out.put(("ready", time.time()))
    try:
        for value in values:
            if not go.wait(60):
                return
            go.clear()
            before = time.time()
            engine.set_flag("staging", name, value, f"{user} flips it")
            out.put((value, before))
    except BaseException as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        engine.close()
