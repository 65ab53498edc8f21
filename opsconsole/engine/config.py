"""Loading and validating the configuration: the main file, its plans and its flags.

Everything is checked before anything is used, and every problem found is reported in one pass with
its file, line and dotted key ("config/plans/x.yaml:12: phases[1].gates[0].max: expected a number,
got 'abc'"), because an engineer fixing a config at 3 a.m. should not have to run the check ten
times. Loading only reads files; a config that fails to load never changes any state.

Relative paths (plans, flags file, flag targets) are relative to the directory of the file that names
them, not to the current directory, so a config means the same thing wherever the console starts.
Strings may use `${NAME}` / `${NAME:-default}`: the caller's variables (WORKSPACE), CONFIG_DIR (the
directory of the file being read), then the process environment; `$${` is a literal `${`.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from yaml.nodes import Node, ScalarNode, SequenceNode

from .model import (
    AlarmRule,
    ApprovalSpec,
    Config,
    Environment,
    FlagDef,
    FlagTarget,
    FlagValue,
    GateSpec,
    KillSwitchSpec,
    MetricSource,
    Notification,
    Phase,
    Plan,
    Role,
    Strategy,
)
from .units import format_duration
from .yamlsrc import ConfigIssue, Fields, YamlSource, interpolate, item, suggest

__all__ = [
    "STEP_PRESETS",
    "ConfigError",
    "ConfigIssue",
    "format_duration",
    "load_config",
    "load_plan",
    "parse_duration",
    "parse_steps",
]

STEP_PRESETS: dict[str, tuple[int, ...]] = {
    "safe": (0, 5, 10, 25, 50, 75, 100),
    "fast": (0, 25, 50, 100),
    "instant": (0, 100),
}
"""Named canary step lists, from the phase-4 deployer's strategies."""

DEFAULT_STORE = "sqlite:///${WORKSPACE:-.opsconsole}/state.db"
NOTIFY_EVENTS = ("kill_switch", "all_clear", "rollback", "approval_needed", "inconclusive", "completed")
"""Events the engine sends; a typo here would mean a notification that silently never comes."""

# Keys Textual's Input (and the terminal) use for editing: the kill switch must work while typing.
_EDITING_KEYS = frozenset(
    {f"ctrl+{c}" for c in "abcdefhijkmuvwxyz"}
    | {"enter", "tab", "backspace", "delete", "left", "right", "up", "down", "home", "end", "escape", "space"}
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_FLAG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ROLES = ("viewer", "operator", "approver", "admin")


# ------------------------------------------------------------------------------------------ values


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = ("d", "h", "m", "s", "ms")


def parse_duration(text: str) -> float:
    """Seconds in `text`: "1500ms", "30s", "5m", "2h", "4d", or a combination largest unit first
    ("1h30m"). A bare number is an error: "30" could mean seconds or minutes, so say which."""
    s = str(text).strip()
    total, pos, last = 0.0, 0, -1
    while s and pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None or _UNIT_ORDER.index(m.group(2)) <= last:
            break  # not a number+unit here, or units out of order ("5m1h", "1m1m")
        last = _UNIT_ORDER.index(m.group(2))
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if s and pos == len(s):
        return total
    hint = f" (add a unit: {s}s)" if re.fullmatch(r"\d+(\.\d+)?", s) else ""
    raise ValueError(f"expected a duration like 30s, 5m, 2h, 4d, got {text!r}{hint}")


def _positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"must be longer than 0s, got {text!r}")
    return seconds


def parse_steps(value: str | Sequence[int]) -> tuple[int, ...]:
    """Canary steps: a preset name (safe, fast, instant), "0,5,20,100", or a list of ints; each
    0..100 and never decreasing."""
    if isinstance(value, str):
        text = value.strip()
        if text in STEP_PRESETS:
            return STEP_PRESETS[text]
        parts = [p.strip() for p in text.split(",")]
        if not all(re.fullmatch(r"\d+", p) for p in parts):
            raise ValueError(
                f"expected {', '.join(STEP_PRESETS)}, a list like [0, 10, 50, 100] or a string like "
                f'"0,5,20,100", got {value!r}'
            )
        steps = [int(p) for p in parts]
    else:
        steps = list(value)
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
            raise ValueError(f"steps must be whole numbers 0..100, got {steps!r}")
    if not steps:
        raise ValueError("needs at least one step")
    for s in steps:
        if not 0 <= s <= 100:
            raise ValueError(f"step {s} is out of range (0..100)")
    for before, after in zip(steps, steps[1:], strict=False):
        if after < before:
            raise ValueError(f"steps must not decrease: {after} comes after {before}")
    return tuple(steps)


def _fraction(text: str) -> float:
    """max_increase: "10%" or 0.1, both meaning a tenth over the baseline."""
    s = text.strip()
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise ValueError(f"expected a fraction like 0.1 or a percentage like 10%, got {text!r}") from None
    if value < 0:
        raise ValueError(f"must not be negative, got {text!r}")
    return value


def _name(kind: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        if not _NAME.fullmatch(text):
            raise ValueError(f"{kind} names use letters, digits, '_', '.', '-', got {text!r}")
        return text

    return check


def _http_url(text: str) -> str:
    if not re.match(r"https?://[^/\s]+", text):
        raise ValueError(f"expected an http:// or https:// URL, got {text!r}")
    return text


def _query_problem(expr: str) -> str | None:
    """The scrape source's own syntax check; skipped when that module is not there."""
    try:
        from .sources.scrape import validate_query
    except ImportError:
        return None
    return validate_query(expr)


# ------------------------------------------------------------------------------------------ errors


class ConfigError(Exception):
    """The configuration cannot be used; `issues` lists every problem found, in file order."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


def _raise_if_any(issues: list[ConfigIssue], first_file: str) -> None:
    if not issues:
        return
    order: dict[str, int] = {first_file: 0}
    for i in issues:
        order.setdefault(i.file, len(order))
    raise ConfigError(sorted(issues, key=lambda i: (order[i.file], i.line or 0)))


# ------------------------------------------------------------------------------------------ loading


@dataclass
class _Catalog:
    """What plans are checked against; None means "not known here" (a plan file read on its own)."""

    environments: dict[str, Environment] | None = None
    flags: dict[str, FlagDef] | None = None


def _resolve(base: Path, text: str) -> Path:
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else base / path


def load_config(path: str | Path, variables: Mapping[str, str] | None = None) -> Config:
    """Read and check the main file, its flags and its plans. Raises ConfigError listing every issue."""
    path = Path(path)
    issues: list[ConfigIssue] = []
    src, root = YamlSource.open(path, str(path), dict(variables or {}), issues)
    config = _main(src, root, path) if root is not None else None
    _raise_if_any(issues, src.file)
    assert config is not None
    return config


def load_plan(
    path: str | Path,
    variables: Mapping[str, str] | None = None,
    *,
    environments: Mapping[str, Environment] | None = None,
    flags: Mapping[str, FlagDef] | None = None,
) -> Plan:
    """Read and check one plan file. Environment and flag references are checked only against what is
    passed in (a plan read on its own cannot know them)."""
    path = Path(path)
    issues: list[ConfigIssue] = []
    catalog = _Catalog(
        dict(environments) if environments is not None else None, dict(flags) if flags is not None else None
    )
    src, root = YamlSource.open(path, str(path), dict(variables or {}), issues)
    plan = _plan(src, root, "", catalog) if root is not None else None
    _raise_if_any(issues, src.file)
    assert plan is not None
    return plan


_MAIN_KEYS = (
    "store",
    "interval",
    "roles",
    "environments",
    "plans",
    "flags",
    "alarms",
    "notifications",
    "kill_switch",
)


def _main(src: YamlSource, root: Node, path: Path) -> Config | None:
    f = src.mapping(root, "", _MAIN_KEYS)
    if f is None:
        return None
    base = path.parent
    store = f.text("store") if "store" in f else interpolate(DEFAULT_STORE, src.lookup)[0]
    if store and not re.match(r"(sqlite:///|postgres(ql)?://)", store):
        f.issue("store", f"expected sqlite:///path or postgresql://user@host/db, got {store!r}")
    interval = f.parsed("interval", _positive_duration, 1.0)
    default_role, users = _roles(src, f)
    flags = _flags_section(src, f, base)
    environments = _environments(src, f, base)
    catalog = _Catalog(environments, flags)
    alarm_rules = _alarms(src, f, environments)
    notifications = _notifications(src, f)
    kill_switch, kill_key = _kill_switch(src, f, flags)
    plans = _plans(src, f, base, catalog)
    return Config(
        path=str(path),
        store=store or DEFAULT_STORE,
        default_role=default_role,
        users=users,
        environments=environments,
        plans=plans,
        flags=flags,
        alarm_rules=alarm_rules,
        notifications=notifications,
        kill_switch=kill_switch,
        interval=interval,
        kill_key=kill_key,
    )


def _roles(src: YamlSource, main: Fields) -> tuple[Role, dict[str, Role]]:
    f = main.mapping("roles", ("default", "users"))
    if f is None:
        return Role.VIEWER, {}
    default = Role.parse(f.choice("default", _ROLES, "viewer"))
    users: dict[str, Role] = {}
    u = f.mapping("users")
    for user, rnode in u or ():
        role = src.choice(rnode, f.path("users") + "." + user, _ROLES)
        if role is not None:
            users[user] = Role.parse(role)
    return default, users


# ------------------------------------------------------------------------------------------ flags


_FLAG_KEYS = ("type", "default", "description", "risk", "owner", "depends_on")


def _flags_section(src: YamlSource, main: Fields, base: Path) -> dict[str, FlagDef]:
    node = main.get("flags")
    if node is None:
        return {}
    if isinstance(node, ScalarNode):
        text = src.text(node, main.path("flags"))
        if text is None:
            return {}
        fpath = _resolve(base, text)
        fsrc, root = YamlSource.open(fpath, str(fpath), src.variables, src.issues)
        if root is None:
            return {}
        top = fsrc.mapping(root, "", ("flags",), required=("flags",))
        defs_node = top.get("flags") if top is not None else None
        return _flag_defs(fsrc, defs_node, "flags") if defs_node is not None else {}
    return _flag_defs(src, node, main.path("flags"))


def _flag_defs(src: YamlSource, node: Node, key: str) -> dict[str, FlagDef]:
    f = src.mapping(node, key)
    if f is None:
        return {}
    defs: dict[str, FlagDef] = {}
    parents: dict[str, Node] = {}
    for name, dnode in f:
        path = f.path(name)
        if not _FLAG_NAME.fullmatch(name):
            src.issue(
                f.keys[name],
                path,
                "flag names use letters, digits and '_' (the name is also an environment variable)",
            )
        d = src.mapping(dnode, path, _FLAG_KEYS)
        if d is None:
            continue
        ftype = d.choice("type", ("boolean", "percentage"), "boolean")
        default = _flag_default(src, d, ftype)
        depends_on = d.text("depends_on")
        if depends_on is not None:
            parents[name] = d.get("depends_on")  # type: ignore[assignment]
        defs[name] = FlagDef(
            name=name,
            type=ftype,
            default=default,
            description=d.text("description", ""),
            risk=d.choice("risk", ("low", "medium", "high"), "low"),
            owner=d.text("owner", ""),
            depends_on=depends_on,
            where=src.where(dnode),
        )
    for name, pnode in parents.items():
        parent = defs[name].depends_on
        if parent not in defs:
            src.issue(
                pnode, f.path(name) + ".depends_on", f"unknown flag '{parent}'{suggest(str(parent), defs)}"
            )
    for cycle in _cycles(defs):
        src.issue(
            parents[cycle[0]], f.path(cycle[0]) + ".depends_on", "dependency cycle: " + " -> ".join(cycle)
        )
    return defs


def _flag_default(src: YamlSource, d: Fields, ftype: str) -> FlagValue:
    node = d.get("default")
    if node is None:
        return 0 if ftype == "percentage" else False
    if ftype == "boolean":
        return bool(src.boolean(node, d.path("default")))
    ok, raw = src.scalar(node, d.path("default"), "a percentage")
    if isinstance(raw, bool):
        return 100 if raw else 0
    return (src.integer(node, d.path("default"), minimum=0, maximum=100) if ok else None) or 0


def _cycles(defs: Mapping[str, FlagDef]) -> list[list[str]]:
    """Each dependency cycle once, as the path that closes it: ["a", "b", "a"]."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    found: list[list[str]] = []
    for start in defs:
        path: list[str] = []
        name: str | None = start
        while name is not None and name in defs and state.get(name) is None:
            state[name] = 1
            path.append(name)
            name = defs[name].depends_on
        if name is not None and state.get(name) == 1:
            found.append(path[path.index(name) :] + [name])
        for n in path:
            state[n] = 2
    return found


# ------------------------------------------------------------------------------------------ environments


_ENV_KEYS = ("production", "metrics", "flags", "theme_accent")
_ENV_LATER = {
    "alarms": "alarm sources (alertmanager, cloudwatch) are not available yet; use alarms.rules in the main file",
    "target": "deployment targets (docker, http_switch, command) are not available yet",
}


def _kind(f: Fields, available: Sequence[str], later: Sequence[str] = ()) -> str | None:
    kind = f.text("kind")
    if kind is None or kind in available:
        return kind
    if kind in later:
        f.issue("kind", f"kind '{kind}' is not available yet (available: {', '.join(available)})")
    else:
        f.issue("kind", f"unknown kind '{kind}'{suggest(kind, available)}")
    return None


def _environments(src: YamlSource, main: Fields, base: Path) -> dict[str, Environment]:
    f = main.mapping("environments")
    envs: dict[str, Environment] = {}
    for name, enode in f or ():
        path = f.path(name) if f else name
        if not _NAME.fullmatch(name):
            src.issue(enode, path, f"environment names use letters, digits, '_', '.', '-', got {name!r}")
        e = src.mapping(enode, path, _ENV_KEYS, unavailable=_ENV_LATER)
        if e is None:
            continue
        envs[name] = Environment(
            name=name,
            metrics=_metric_source(src, e),
            flags=_flag_target(src, e, base),
            production=e.boolean("production", name == "production" or name.startswith("prod")),
            theme_accent=e.text("theme_accent"),
        )
    return envs


def _metric_source(src: YamlSource, env: Fields) -> MetricSource | None:
    m = env.mapping("metrics", ("kind", "url", "timeout", "window"), required=("kind", "url"))
    if m is None:
        return None
    kind = _kind(m, ("scrape",), ("prometheus", "cloudwatch"))
    url = m.parsed("url", _http_url)
    timeout = m.parsed("timeout", _positive_duration, 2.0)
    window = m.parsed("window", _positive_duration, 10.0)
    if kind is None or url is None:
        return None
    return MetricSource(kind=kind, url=url, timeout=timeout, window=window)


def _flag_target(src: YamlSource, env: Fields, base: Path) -> FlagTarget | None:
    later = {"flagd_path": "flagd export is not available yet (the seed-schema JSON file is)"}
    t = env.mapping("flags", ("kind", "path"), required=("kind", "path"), unavailable=later)
    if t is None:
        return None
    kind = _kind(t, ("file",), ("flagd", "env", "dotenv"))
    path = t.text("path")
    if kind is None or path is None:
        return None
    return FlagTarget(kind=kind, path=str(_resolve(base, path)))


# ------------------------------------------------------------------------------------------ alarms, notifications, kill switch


def _alarms(src: YamlSource, main: Fields, envs: Mapping[str, Environment]) -> tuple[AlarmRule, ...]:
    a = main.mapping("alarms", ("rules",))
    items = a.sequence("rules") if a is not None else []
    rules: list[AlarmRule] = []
    seen: dict[str, str] = {}
    keys = ("name", "environment", "query", "max", "min", "for", "severity")
    for key, n in items:
        r = src.mapping(n, key, keys, required=("name", "environment", "query"))
        if r is None:
            continue
        name, env = r.text("name"), r.text("environment")
        if name in seen:
            r.issue("name", f"alarm rule '{name}' is already defined at {seen[name]}")
        elif name:
            seen[name] = r.where()
        _check_metrics_env(r, "environment", env, envs)
        query = _query(r)
        lo, hi = r.number("min"), r.number("max")
        if not {"min", "max"} & set(r.keys):
            r.issue(None, "an alarm rule needs max or min")
        rules.append(
            AlarmRule(
                name=name or "",
                environment=env or "",
                query=query or "",
                max=hi,
                min=lo,
                for_=r.parsed("for", parse_duration, 0.0),
                severity=r.choice("severity", ("info", "warning", "critical"), "warning"),
                where=r.where(),
            )
        )
    return tuple(rules)


def _check_metrics_env(f: Fields, name: str, env: str | None, envs: Mapping[str, Environment] | None) -> None:
    """`env` must exist and have a metrics source (where queries run)."""
    if env is None or envs is None:
        return
    if env not in envs:
        f.issue(name, f"unknown environment '{env}'{suggest(env, envs)}")
    elif envs[env].metrics is None:
        f.issue(name, f"environment '{env}' has no metrics source (add metrics: to it)")


def _query(f: Fields) -> str | None:
    query = f.text("query")
    if query is not None:
        problem = _query_problem(query)
        if problem:
            f.issue("query", f"bad query: {problem}")
    return query


def _notifications(src: YamlSource, main: Fields) -> tuple[Notification, ...]:
    items = main.sequence("notifications")
    out: list[Notification] = []
    for key, n in items:
        f = src.mapping(n, key, ("kind", "url", "events", "timeout"), required=("kind", "url"))
        if f is None:
            continue
        kind = _kind(f, ("webhook",), ("slack", "pagerduty", "telegram", "email"))
        url = f.parsed("url", _http_url)
        events = f.texts("events", [])
        for i, event in enumerate(events):
            if event not in NOTIFY_EVENTS:
                enode = f.get("events")
                assert isinstance(enode, SequenceNode)
                src.issue(
                    enode.value[i],
                    item(f.path("events"), i),
                    f"unknown event '{event}'{suggest(event, NOTIFY_EVENTS)}",
                )
        timeout = f.parsed("timeout", _positive_duration, 2.0)
        if kind and url:
            out.append(Notification(kind=kind, url=url, events=tuple(events), timeout=timeout))
    return tuple(out)


def _kill_switch(src: YamlSource, main: Fields, flags: Mapping[str, FlagDef]) -> tuple[KillSwitchSpec, str]:
    k = main.mapping("kill_switch", ("key", "flags_off", "flags_on", "abort_rollouts", "pause_improvements"))
    if k is None:
        # Without a kill_switch section the seed's kill flag is still raised, if it exists.
        return KillSwitchSpec(
            flags_on=("emergency_shutdown",) if "emergency_shutdown" in flags else ()
        ), "ctrl+backslash"
    key = k.text("key", "ctrl+backslash").strip().lower()
    if key in _EDITING_KEYS or len(key) == 1:
        k.issue(
            "key",
            f"'{key}' edits text in input fields; the kill switch must work while typing (e.g. ctrl+backslash)",
        )
    off = _flag_list(src, k, "flags_off", flags, [])
    on = _flag_list(
        src, k, "flags_on", flags, ["emergency_shutdown"] if "emergency_shutdown" in flags else []
    )
    for name in set(off) & set(on):
        k.issue("flags_on", f"flag '{name}' is in both flags_off and flags_on")
    for name in on:
        if name in flags and flags[name].type != "boolean":
            k.issue("flags_on", f"flag '{name}' is a {flags[name].type} flag; flags_on takes boolean flags")
    spec = KillSwitchSpec(
        flags_off=tuple(off),
        flags_on=tuple(on),
        abort_rollouts=k.boolean("abort_rollouts", True),
        pause_improvements=k.boolean("pause_improvements", True),
    )
    return spec, key


def _flag_list(
    src: YamlSource, f: Fields, name: str, flags: Mapping[str, FlagDef], default: list[str]
) -> list[str]:
    if name not in f:
        return default
    items = f.sequence(name)
    out: list[str] = []
    for key, n in items:
        flag = src.text(n, key)
        if flag is None:
            continue
        if flag not in flags:
            src.issue(n, key, f"unknown flag '{flag}'{suggest(flag, flags)}")
        out.append(flag)
    return out


# ------------------------------------------------------------------------------------------ plans


def _plans(src: YamlSource, main: Fields, base: Path, catalog: _Catalog) -> dict[str, Plan]:
    items = main.sequence("plans")
    plans: dict[str, Plan] = {}
    loaded: set[Path] = set()

    def add(plan: Plan | None, psrc: YamlSource, pnode: Node, key: str) -> None:
        if plan is None or not plan.name:
            return
        if plan.name in plans:
            psrc.issue(pnode, key, f"plan '{plan.name}' is already defined at {plans[plan.name].where}")
        else:
            plans[plan.name] = plan

    for key, n in items:
        if not isinstance(n, ScalarNode):
            add(_plan(src, n, key, catalog), src, n, key + ".name")
            continue
        text = src.text(n, key)
        if text is None:
            continue
        pattern = _resolve(base, text)
        if glob.has_magic(str(pattern)):
            paths = [Path(p) for p in sorted(glob.glob(str(pattern)))]
            if not paths:
                src.issue(n, key, f"'{text}' matches no file")
        else:
            paths = [pattern]
        for p in paths:
            if p.resolve() in loaded:
                continue
            loaded.add(p.resolve())
            psrc, root = YamlSource.open(p, str(p), src.variables, src.issues)
            if root is not None:
                add(_plan(psrc, root, "", catalog), psrc, root, "name")
    return plans


def _plan(src: YamlSource, node: Node, key: str, catalog: _Catalog) -> Plan | None:
    f = src.mapping(node, key, ("name", "description", "phases"), required=("name", "phases"))
    if f is None:
        return None
    name = f.parsed("name", _name("plan"), "")
    phases: list[Phase] = []
    seen: dict[str, int] = {}
    for pkey, n in f.sequence("phases", nonempty=True):
        phase = _phase(src, n, pkey, catalog)
        if phase is None:
            continue
        if phase.name in seen:
            src.issue(
                n, pkey + ".name", f"phase '{phase.name}' is already defined at line {seen[phase.name]}"
            )
        seen[phase.name] = n.start_mark.line + 1
        phases.append(phase)
    return Plan(name=name, phases=tuple(phases), description=f.text("description", ""), where=f.where())


_PHASE_KEYS = ("name", "environment", "flags", "gates", "guards", "strategy", "approval")


def _phase(src: YamlSource, node: Node, key: str, catalog: _Catalog) -> Phase | None:
    f = src.mapping(node, key, _PHASE_KEYS, required=("name", "environment"))
    if f is None:
        return None
    name = f.text("name", "")
    env = f.text("environment")
    envs = catalog.environments
    known = envs.get(env) if envs is not None and env is not None else None
    if env is not None and envs is not None and known is None:
        f.issue("environment", f"unknown environment '{env}'{suggest(env, envs)}")
    flags = _phase_flags(src, f, catalog)
    strategy = _strategy(src, f, catalog)
    if known is not None and known.flags is None:
        if flags:
            f.issue(
                "flags", f"environment '{env}' has no flag target to write these flags to (add flags: to it)"
            )
        if strategy is not None and strategy.flag:
            f.issue(
                "strategy", f"environment '{env}' has no flag target for the canary flag (add flags: to it)"
            )
    names: dict[str, str] = {}
    gates = _checks(src, f, "gates", env, catalog, names)
    guards = _checks(src, f, "guards", env, catalog, names)
    return Phase(
        name=name,
        environment=env or "",
        flags=flags,
        gates=gates,
        guards=guards,
        strategy=strategy,
        approval=_approval(src, f),
    )


def _phase_flags(src: YamlSource, phase: Fields, catalog: _Catalog) -> dict[str, FlagValue]:
    f = phase.mapping("flags")
    out: dict[str, FlagValue] = {}
    known = catalog.flags
    for name, vnode in f or ():
        key = f.path(name) if f else name
        if known is not None and name not in known:
            src.issue(f.keys[name] if f else vnode, key, f"unknown flag '{name}'{suggest(name, known)}")
            continue
        ftype = known[name].type if known is not None else None
        ok, value = src.scalar(vnode, key, "true or false")
        if not ok:
            continue
        percentage = isinstance(value, int) and ftype != "boolean" and 0 <= value <= 100
        if isinstance(value, bool) or percentage:
            out[name] = value
        elif ftype == "boolean":
            src.issue(vnode, key, f"'{name}' is a boolean flag: expected true or false, got {value!r}")
        else:
            src.issue(vnode, key, f"expected true, false or a percentage 0..100, got {value!r}")
    return out


def _strategy(src: YamlSource, phase: Fields, catalog: _Catalog) -> Strategy | None:
    f = phase.mapping("strategy", ("kind", "flag", "steps", "step_wait"), required=("kind",))
    if f is None:
        return None
    kind = f.choice("kind", ("canary", "blue_green", "rolling", "recreate"))
    flag = f.text("flag")
    known = catalog.flags
    if kind == "canary" and "flag" not in f:
        f.missing("flag", "the percentage flag the canary moves")
    if flag is not None and known is not None:
        if flag not in known:
            f.issue("flag", f"unknown flag '{flag}'{suggest(flag, known)}")
        elif kind == "canary" and known[flag].type != "percentage":
            f.issue("flag", f"a canary moves a percentage flag; '{flag}' is a {known[flag].type} flag")
    return Strategy(
        kind=kind or "canary",
        flag=flag,
        steps=_steps(src, f),
        step_wait=f.parsed("step_wait", parse_duration, 0.0),
    )


def _steps(src: YamlSource, f: Fields) -> tuple[int, ...]:
    node = f.get("steps")
    if node is None:
        return STEP_PRESETS["safe"]
    if isinstance(node, SequenceNode):
        values = [
            src.integer(n, item(f.path("steps"), i), minimum=0, maximum=100) for i, n in enumerate(node.value)
        ]
        ints = [v for v in values if v is not None]
        if len(ints) < len(values):
            return STEP_PRESETS["safe"]
        try:
            return parse_steps(ints)
        except ValueError as exc:
            f.issue("steps", str(exc))
            return STEP_PRESETS["safe"]
    return f.parsed("steps", parse_steps, STEP_PRESETS["safe"])


def _approval(src: YamlSource, phase: Fields) -> ApprovalSpec:
    f = phase.mapping("approval", ("required", "role", "distinct_approvers"))
    if f is None:
        return ApprovalSpec()
    return ApprovalSpec(
        required=f.boolean("required", False),
        role=Role.parse(f.choice("role", ("approver", "admin"), "approver")),
        distinct_approvers=f.integer("distinct_approvers", 1, minimum=1),
    )


# ------------------------------------------------------------------------------------------ gates


_GATE_COMMON = (
    "kind",
    "name",
    "on_missing",
    "failure_limit",
    "inconclusive_limit",
    "escalate_after",
    "interval",
    "timeout",
)
_GATE_KINDS: dict[str, tuple[str, ...]] = {
    "metric": ("query", "source", "min", "max", "max_increase", "unit"),
    "health": ("url", "retries", "expect_status", "body_contains"),
    "smoke": ("command",),
    "soak": ("min",),
    "alarms": ("none_firing",),
    "checklist": ("items",),
}
_GATE_KEYS = frozenset(_GATE_COMMON).union(*_GATE_KINDS.values())
_GATE_LATER = ("backup", "improvements")
_NOT_GUARDS = {
    "soak": "a soak never fails, so it cannot guard; put it under gates:",
    "checklist": "a checklist is ticked once, so it cannot guard; put it under gates:",
}


def _checks(
    src: YamlSource, phase: Fields, section: str, env: str | None, catalog: _Catalog, names: dict[str, str]
) -> tuple[GateSpec, ...]:
    """The phase's gates or guards; `names` is shared by both, so every check has its own name."""
    items = phase.sequence(section)
    out: list[GateSpec] = []
    for key, n in items:
        spec = _gate(src, n, key, env, catalog, guard=section == "guards")
        if spec is None:
            continue
        if spec.name and spec.name in names:
            src.issue(
                n,
                key + ".name",
                f"'{spec.name}' is already a check name in this phase ({names[spec.name]}); give one a name:",
            )
            continue
        names[spec.name] = spec.where
        out.append(spec)
    return tuple(out)


def _gate(
    src: YamlSource, node: Node, key: str, env: str | None, catalog: _Catalog, *, guard: bool
) -> GateSpec | None:
    f = src.mapping(node, key)
    if f is None:
        return None
    kinds = tuple(_GATE_KINDS)
    kind = f.text("kind")
    if kind is None:
        if "kind" not in f.keys or "kind" in f.empty:
            f.missing("kind", "one of " + ", ".join(kinds))
        f.only(_GATE_KEYS)
        return None
    if kind not in _GATE_KINDS:
        if kind == "approval":
            f.issue("kind", "approval is not a gate kind: use the phase's approval: key")
        elif kind in _GATE_LATER:
            f.issue("kind", f"kind '{kind}' is not available yet (available: {', '.join(kinds)})")
        else:
            f.issue("kind", f"unknown kind '{kind}'{suggest(kind, kinds)}")
        f.only(_GATE_KEYS)
        return None
    own = set(_GATE_COMMON) | set(_GATE_KINDS[kind])
    elsewhere = {k: f"'{k}' does not apply to a {kind} check" for k in _GATE_KEYS - own}
    f.only(own, elsewhere)
    if guard and kind in _NOT_GUARDS:
        f.issue("kind", _NOT_GUARDS[kind])
    common = {
        "on_missing": f.choice("on_missing", ("hold", "fail", "pass"), "hold"),
        "failure_limit": f.integer("failure_limit", 1, minimum=1),
        "inconclusive_limit": f.integer("inconclusive_limit", None, minimum=1),
        "escalate_after": f.parsed("escalate_after", _positive_duration),
        "interval": f.parsed("interval", _positive_duration),
        "timeout": f.parsed("timeout", _positive_duration, 5.0),
        "where": f.where(),
    }
    build = {"metric": _metric_gate, "health": _health_gate, "smoke": _smoke_gate}.get(kind)
    if build is not None:
        specific = build(src, f, env, catalog)
    elif kind == "soak":
        f.require("min")
        specific = {"name": f.text("name", "soak"), "duration": f.parsed("min", parse_duration, 0.0)}
    elif kind == "alarms":
        f.require("none_firing")
        specific = {
            "name": f.text("name", "alarms"),
            "none_firing": tuple(f.texts("none_firing", [], nonempty=True)),
        }
    else:
        f.require("items")
        items = f.texts("items", [], nonempty=True)
        if len(set(items)) < len(items):
            f.issue("items", "checklist items must differ (each is ticked by name)")
        specific = {"name": f.text("name", "checklist"), "items": tuple(items)}
    return GateSpec(kind=kind, **common, **specific)  # type: ignore[arg-type]


def _metric_gate(src: YamlSource, f: Fields, env: str | None, catalog: _Catalog) -> dict[str, object]:
    f.require("name", "query")
    source = f.text("source")
    if source is not None:
        _check_metrics_env(f, "source", source, catalog.environments)
    elif (
        env is not None
        and catalog.environments
        and env in catalog.environments
        and catalog.environments[env].metrics is None
    ):
        f.issue(None, f"environment '{env}' has no metrics source (add metrics: to it, or set source:)")
    lo, hi = f.number("min"), f.number("max")
    increase = f.parsed("max_increase", _fraction)
    if not {"min", "max", "max_increase"} & set(f.keys):
        f.issue(None, "a metric check needs min, max or max_increase")
    if lo is not None and hi is not None and lo > hi:
        f.issue("min", f"min {lo:g} is above max {hi:g}")
    return {
        "name": f.text("name", ""),
        "query": _query(f),
        "source": source,
        "min": lo,
        "max": hi,
        "max_increase": increase,
        "unit": f.choice("unit", ("", "%", "ms", "s"), ""),
    }


def _health_gate(src: YamlSource, f: Fields, env: str | None, catalog: _Catalog) -> dict[str, object]:
    f.require("url")
    return {
        "name": f.text("name", "health"),
        "url": f.parsed("url", _http_url),
        "retries": f.integer("retries", 0, minimum=0),
        "expect_status": f.integer("expect_status", 200, minimum=100, maximum=599),
        "body_contains": f.text("body_contains"),
    }


def _smoke_gate(src: YamlSource, f: Fields, env: str | None, catalog: _Catalog) -> dict[str, object]:
    f.require("command")
    node = f.get("command")
    argv: list[str] = []
    if isinstance(node, SequenceNode):
        argv = src.texts(node, f.path("command"), nonempty=True) or []
    elif node is not None:
        text = src.text(node, f.path("command"))
        try:
            argv = shlex.split(text) if text else []
            if text is not None and not argv:
                f.issue("command", "must not be empty")
        except ValueError as exc:
            f.issue("command", f"cannot split into words: {exc}")
    return {"name": f.text("name", "smoke"), "command": tuple(argv)}
