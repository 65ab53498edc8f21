"""The console's first look at the rollouts, with the standard library alone.

The console's first frame should show where the rollouts stand, and importing the engine (its model's
dozens of dataclasses, the configuration's validation, the store) costs more than the rest of that
frame. So every console that opens the engine leaves a small JSON file beside the store,
`console-look.json`: for each plan, what the Rollouts table needs from it (phase names, traffic
steps, the canary's environment and flag, the flag's default), the environments (which is
production), the store's file and its schema version. Like `kill-plan.json` (killplan.py) it is
keyed by the files the configuration was read from (path, size and modification time of each).

`read` gives the rows the engine would show (views.rollout_row: id, phase, percentage, state, why;
and the first rollout's gate verdicts with their units, for the lines under the table) straight
from the SQLite file, opened read-only, or None whenever it cannot vouch for them: no cache (or one
of an older version, which did not say which phases deploy a Docker service), a
configuration changed since, a store that is not SQLite, missing, locked, damaged or of another
schema version, a rollout in a state it does not know or whose plan left the configuration. The
console then waits for the engine, as before; the engine takes the table over either way.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from .units import format_duration, iso_utc

TYPE_CHECKING = False  # not typing's: see engine/__init__.py

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    from .core import Engine

LOOK = "console-look.json"
VERSION = 2
MAX_ROWS = 200
"""As many rollouts as the console's table shows (tui/panes/rollouts.py)."""
BUSY_TIMEOUT = 0.05
"""How long the reader waits for a locked store before it leaves the rows to the engine (s)."""

PENDING_WHY = "waiting for the engine to start the first phase"
"""views.why for a pending rollout."""
STOPPED = frozenset({"aborted", "rolling_back", "rolled_back"})
"""views.STOPPED by value: the row says what the new version gets now, from the canary flag or the
Docker service's deploy records."""
DOCKER_KINDS = ("recreate", "rolling", "blue_green")
"""Phase strategies that deploy a Docker service (`service` and `image`) and move all its traffic."""
DEPLOY_RECORDS = 50
"""How many of a service's latest deploy records say what a stopped Docker phase's version gets: a
phase deploy older than that was replaced long since (0%)."""
UNDERSTOOD = frozenset({"pending", "progressing", "paused", "awaiting_approval", "completed"} | STOPPED)
"""model.RolloutState by value: a state this reader does not know leaves the rows to the engine."""


class FirstLook:
    """What the Rollouts pane shows before the engine is open."""

    __slots__ = ("rows", "environments")

    def __init__(self, rows: list[dict[str, Any]], environments: dict[str, bool]) -> None:
        self.rows = rows
        """views.rollout_row's keys the table and the line under it use, newest rollout first."""
        self.environments = environments
        """Environment name -> production, in the configuration's order."""


def _stamp(paths: Iterable[str]) -> list[list[Any]] | None:
    """killfast.stamp (the same [path, size, mtime_ns] list, so both caches agree on what "changed"
    means), without importing the kill switch's module on the way to the first frame."""
    out: list[list[Any]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            return None
        out.append([path, st.st_size, st.st_mtime_ns])
    return out


def traffic_text(row: Mapping[str, Any]) -> str:
    """ "50%" while the step's percentage is what the new version gets; "0% (was 50%)" once it was
    stopped and the canary flag no longer says the step's percentage. (Here rather than in views.py,
    which re-exports it, so that the console's first frame can word its rows without the engine.)"""
    step, now = row["percent"], row["traffic"]
    if step is None:
        return "?"
    return f"{now}% (was {step}%)" if now is not None and now != step else f"{step}%"


def deploy_traffic(records: Iterable[Mapping[str, Any]], rollout: str, percent: int) -> int:
    """What the version a stopped rollout's Docker phase deployed gets now, from its service's deploy
    records (the store's, newest first; `rollout` is `ID:INDEX`, the phase deploy's): 0 when that
    deploy never moved traffic or no longer serves (not started, refused or gone back by itself,
    reverted: the previous version serves again, or replaced by a later deploy); `percent` (the
    step's) while it may still serve: in flight, its revert pending, running or failed, or nothing to
    go back to. Shared with views.stopped_traffic, so the first frame says what the engine says."""
    later: list[Mapping[str, Any]] = []
    mine: Mapping[str, Any] | None = None
    for record in records:
        if record.get("rollout") == rollout and not record.get("revert_of"):
            mine = record
            break
        later.append(record)
    if mine is None:
        return 0  # never deployed (or so long ago that it was replaced since)
    blue_green = mine.get("strategy") == "blue_green"
    if mine.get("phase") != "done":  # the rollout stopped it while it ran: at its next safe point
        return 0 if blue_green and mine.get("phase") == "bg_started" else percent
    if mine.get("outcome") != "ok":
        kept = blue_green and mine.get("new") and mine.get("serving") == mine.get("new")
        unsure = mine.get("strategy") == "rolling" and mine.get("outcome") == "rollback_failed"
        return percent if kept or unsure else 0
    reverts = [r for r in later if r.get("revert_of") == rollout]
    if reverts:
        last = reverts[0]
        if last.get("phase") == "done":
            return 0 if last.get("outcome") == "ok" else percent
        # Being reverted: a blue-green revert has moved the traffic back from its switch on.
        return 0 if last.get("strategy") == "blue_green" and last.get("phase") == "bg_switched" else percent
    replaced = any(r.get("phase") == "done" and r.get("outcome") == "ok" for r in later)
    return 0 if replaced else percent


def save(engine: Engine) -> None:
    """Write the cache for `engine`'s configuration (quietly: without it the console waits for the
    engine, as it did before)."""
    from .killplan import _files  # the same files kill-plan.json is keyed by
    from .store.schema import LATEST_VERSION

    config = engine.config
    stamp = _stamp(_files(config))
    if stamp is None or any(mtime_ns > config.loaded_at * 1e9 for _, _, mtime_ns in stamp):
        return  # a source changed since this configuration was read: it would vouch for the wrong one
    scheme, sep, rest = config.store.partition("://")
    if not sep or scheme.lower() != "sqlite" or not rest.startswith("/") or len(rest) < 2:
        return
    plans = {}
    for name, plan in config.plans.items():
        phases = []
        for phase in plan.phases:
            s = phase.strategy
            flag = s.flag if s is not None and s.flag else None
            defn = config.flags.get(flag) if flag else None
            docker = s is not None and s.kind in DOCKER_KINDS and s.service and s.image
            phases.append(
                {
                    "name": phase.name,
                    "environment": phase.environment,
                    "steps": list(phase.steps),
                    "flag": flag,
                    "flag_default": int(defn.default) if defn is not None else 0,
                    "service": s.service if docker and s is not None else None,
                    "step_wait": s.step_wait if s is not None else 0.0,
                    "guards": {g.name: g.interval for g in phase.guards},
                    "units": {
                        g.name: g.unit or ("s" if g.kind == "soak" else "")
                        for g in (*phase.gates, *phase.guards)
                    },
                }
            )
        plans[name] = phases
    body = {
        "version": VERSION,
        "config": os.path.abspath(config.path),
        "workspace": os.path.abspath(engine.workspace),
        "stamp": stamp,
        "store": os.path.abspath(rest[1:]),
        "interval": config.interval,
        "schema_version": LATEST_VERSION,
        "environments": {str(n): bool(e.production) for n, e in config.environments.items()},
        "plans": plans,
    }
    data = (json.dumps(body, sort_keys=True) + "\n").encode()
    path = engine.workspace / LOOK
    try:
        if path.exists() and path.read_bytes() == data:
            return
        from .fsutil import write_atomic

        write_atomic(path, data)
    except OSError:
        pass


def read(
    config_path: str | os.PathLike[str], workspace: Path, clock: Callable[[], float] = time.time
) -> FirstLook | None:
    """The rows the engine would show for the rollouts in `workspace`'s store, or None when this
    reader cannot vouch for them (see the module's docstring). Never raises, never writes. `clock`
    is the engine's (a progressing rollout's row counts its step wait down)."""
    try:
        with open(workspace / LOOK, "rb") as fh:
            body = json.loads(fh.read())
        if (
            body.get("version") != VERSION
            or body["config"] != os.path.abspath(config_path)
            or body["workspace"] != os.path.abspath(workspace)
            or _stamp(p for p, _, _ in body["stamp"]) != body["stamp"]
        ):
            return None
        rows = _rows(body, clock())
        if rows is None:
            return None
        return FirstLook(rows, {str(k): bool(v) for k, v in body["environments"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, sqlite3.Error):
        return None


def _rows(body: dict[str, Any], now: float) -> list[dict[str, Any]] | None:
    store = str(body["store"])
    if not os.path.isfile(store):
        return None  # mode=ro would not create it, but say so without asking SQLite
    uri = "file:" + Path(store).as_posix().replace("?", "%3f").replace("#", "%23") + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    try:
        # One read transaction: the rollouts and the flags they need as of one moment.
        conn.execute("BEGIN")
        (version,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        if version != body["schema_version"]:
            return None  # an older or newer schema: the engine knows what to make of it
        found = conn.execute(
            "SELECT id, plan, state, started_by, body FROM rollouts"
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            (MAX_ROWS,),
        ).fetchall()
        rows = []
        deploys: dict[str, list[dict[str, Any]]] = {}
        for rid, plan_name, state, started_by, text in found:
            row = _row(body, rid, plan_name, state, started_by, json.loads(text), conn, now, deploys)
            if row is None:
                return None
            rows.append(row)
        return rows
    finally:
        conn.close()


def _row(
    body: dict[str, Any],
    rid: str,
    plan_name: str,
    state: str,
    started_by: str,
    data: dict[str, Any],
    conn: sqlite3.Connection,
    now: float,
    deploys: dict[str, list[dict[str, Any]]],
) -> dict[str, Any] | None:
    """views.rollout_row for a rollout in a state this reader understands, else None; with
    `why_static` (views.why(live=False)), the verdicts as stored and their units. `deploys`: the
    services' deploy records read so far (one read per service)."""
    if state not in UNDERSTOOD:
        return None
    phases = body["plans"].get(plan_name)
    if not phases:
        return None  # a plan that left the configuration: the engine words that
    phase = phases[min(int(data["phase_index"]), len(phases) - 1)]
    steps = phase["steps"]
    percent = int(steps[min(int(data["step_index"]), len(steps) - 1)])
    traffic: int | None = percent
    if state in STOPPED and phase["flag"]:
        got = conn.execute(
            "SELECT value FROM flags WHERE environment = ? AND name = ?",
            (phase["environment"], phase["flag"]),
        ).fetchone()
        value = json.loads(got[0]) if got is not None else phase["flag_default"]
        if not isinstance(value, bool | int):
            return None
        traffic = int(value)
    elif state in STOPPED and phase["service"]:
        service = str(phase["service"])
        if service not in deploys:
            deploys[service] = [
                {**json.loads(text), "phase": deploy_phase}
                for deploy_phase, text in conn.execute(
                    "SELECT phase, body FROM deploys WHERE service = ?"
                    " ORDER BY started_at DESC, updated_at DESC, id DESC LIMIT ?",
                    (service, DEPLOY_RECORDS),
                ).fetchall()
            ]
        traffic = deploy_traffic(deploys[service], f"{rid}:{int(data['phase_index'])}", percent)
    verdicts = [dict(v) for v in data["verdicts"]]
    if state == "pending":
        why = static = PENDING_WHY
    elif state == "progressing":
        why, static = _progressing_why(body, phase, data, verdicts, now)
    else:
        why = static = str(data["reason"])
    return {
        "id": str(rid),
        "plan": str(plan_name),
        "state": str(state),
        "phase": str(phase["name"]),
        "percent": percent,
        "traffic": traffic,
        "started_by": str(started_by),
        "why": why,
        "why_static": static,
        "verdicts": verdicts,
        "units": {str(k): str(v) for k, v in phase["units"].items()},
    }


def _progressing_why(
    body: dict[str, Any],
    phase: dict[str, Any],
    data: dict[str, Any],
    verdicts: list[dict[str, Any]],
    now: float,
) -> tuple[str, str]:
    """views.why for a progressing rollout: (live, not live)."""
    blocking = [v for v in verdicts if v["status"] != "pass"]
    guards = phase["guards"]
    for v in blocking:
        if v["gate"] in guards and v["status"] == "fail":
            every = guards[v["gate"]] or body["interval"]
            left = format_duration(max(0, int(v["failure_limit"]) - int(v["failures"])) * every)
            text = (
                f"guard {v['gate']}: {v['reason']}; rollback in {left} if it keeps failing "
                f"({v['failures']}/{v['failure_limit']})"
            )
            return text, text
    steps = phase["steps"]
    wait = float(phase["step_wait"])
    started = float(data["step_started_at"])
    left_s = wait - (now - started)
    step = int(data["step_index"])
    if left_s > 0 and step < len(steps) - 1:
        due = iso_utc(started + wait, "seconds")[11:19]
        return f"next step in {format_duration(left_s)}", f"next step: {steps[step + 1]}% at {due} UTC"
    if blocking:
        text = f"{blocking[0]['gate']}: {blocking[0]['reason']}"
        return text, text
    return str(data["reason"]), str(data["reason"])
