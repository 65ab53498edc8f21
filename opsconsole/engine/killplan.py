"""What `opsconsole kill` needs from the configuration, cached in the workspace.

Loading and validating the whole configuration (every plan, every flag, YAML with line numbers) is
most of what a fresh `kill` process would spend before the flag files are safe. Every engine that
opens the workspace for writing leaves this small JSON file beside the store instead: the
kill-switch section, the roles, each environment's flag files, and the definitions of the flags the
kill switch can touch (the killed ones, every canary, and their descendants). It is keyed by the
files the configuration was read from (path, size and modification time of each, and of each
plan directory); when any of them changed, or the file is missing or unreadable, the command loads
the configuration as usual. Nothing here is trusted beyond the workspace itself, which already holds
the flag files and the kill journal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from .fsutil import write_atomic
from .killfast import KILL_PLAN
from .killfast import PLAN_VERSION as VERSION
from .killfast import stamp as _stamp
from .model import Config, Environment, FlagDef, FlagTarget, KillSwitchSpec, Role


def _files(config: Config) -> list[str]:
    """The files the configuration was read from, and the plan directories (a new plan file changes
    its directory's modification time)."""
    paths = {os.path.abspath(config.path)}
    for defn in config.flags.values():
        if defn.where:
            paths.add(os.path.abspath(defn.where.rsplit(":", 1)[0]))
    for plan in config.plans.values():
        if plan.where:
            path = os.path.abspath(plan.where.rsplit(":", 1)[0])
            paths.update((path, os.path.dirname(path)))
    return sorted(paths)


def _relevant(config: Config, canaries: Iterable[str]) -> set[str]:
    spec = config.kill_switch
    names = set(spec.flags_off) | set(spec.flags_on) | set(canaries)
    children: dict[str, list[str]] = {}
    for name, defn in config.flags.items():
        if defn.depends_on is not None:
            children.setdefault(defn.depends_on, []).append(name)
    stack = list(names)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in names:
                names.add(child)
                stack.append(child)
    return names


def save(config: Config, workspace: Path, every_canary: dict[str, set[str]]) -> None:
    """Write the cache (quietly: a workspace that cannot hold it just loads the configuration)."""
    stamp = _stamp(_files(config))
    if stamp is None or any(mtime_ns > config.loaded_at * 1e9 for _, _, mtime_ns in stamp):
        return  # a source changed since this configuration was read: it would vouch for the wrong one
    canary_names = {n for names in every_canary.values() for n in names}
    flags = {}
    for name in sorted(_relevant(config, canary_names)):
        defn = config.flags.get(name)
        if defn is not None:
            flags[name] = {
                "type": defn.type,
                "depends_on": defn.depends_on,
                "environments": list(defn.environments),
                "variants": [list(v) for v in defn.variants],
            }
    spec = config.kill_switch
    body = {
        "version": VERSION,
        "config": os.path.abspath(config.path),
        "stamp": stamp,
        "kill_switch": {
            "flags_off": list(spec.flags_off),
            "flags_on": list(spec.flags_on),
            "abort_rollouts": spec.abort_rollouts,
            "pause_improvements": spec.pause_improvements,
        },
        "roles": {
            "default": config.default_role.name,
            "users": {u: r.name for u, r in sorted(config.users.items())},
        },
        "environments": {
            name: None
            if env.flags is None
            else {"path": env.flags.path, "flagd": env.flags.flagd, "dotenv": env.flags.dotenv}
            for name, env in config.environments.items()
        },
        "flags": flags,
        "every_canary": {env: sorted(v) for env, v in sorted(every_canary.items())},
    }
    data = (json.dumps(body, sort_keys=True) + "\n").encode()
    path = workspace / KILL_PLAN
    try:
        if path.exists() and path.read_bytes() == data:
            return
        write_atomic(path, data)
    except OSError:
        pass  # no room or no rights: `kill` loads the configuration instead


def load(config_path: Path, workspace: Path) -> tuple[Config, dict[str, set[str]]] | None:
    """The cached kill configuration and every canary any plan drives, or None when there is no
    cache for `config_path` or any file it came from has changed."""
    try:
        body = json.loads((workspace / KILL_PLAN).read_bytes())
        if body.get("version") != VERSION or body["config"] != os.path.abspath(config_path):
            return None
        if _stamp(p for p, _, _ in body["stamp"]) != body["stamp"]:
            return None
        ks = body["kill_switch"]
        spec = KillSwitchSpec(
            flags_off=tuple(ks["flags_off"]),
            flags_on=tuple(ks["flags_on"]),
            abort_rollouts=bool(ks["abort_rollouts"]),
            pause_improvements=bool(ks["pause_improvements"]),
        )
        environments = {
            name: Environment(
                name,
                flags=None
                if t is None
                else FlagTarget("file", str(t["path"]), t.get("flagd"), t.get("dotenv")),
            )
            for name, t in body["environments"].items()
        }
        flags = {
            name: FlagDef(
                name,
                type=str(d["type"]),
                depends_on=d["depends_on"],
                environments=tuple(d["environments"]),
                variants=tuple((str(v), int(w)) for v, w in d["variants"]),
            )
            for name, d in body["flags"].items()
        }
        config = Config(
            path=body["config"],
            default_role=Role[body["roles"]["default"]],
            users={u: Role[r] for u, r in body["roles"]["users"].items()},
            environments=environments,
            flags=flags,
            kill_switch=spec,
        )
        every = {env: set(names) for env, names in body["every_canary"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return config, every
