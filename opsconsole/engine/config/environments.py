"""The `environments:` section: where each environment's metrics come from and its flags go to.

Integrations name a `kind`; kinds planned for a later release are told apart from typos, so the
message says "not available yet" rather than suggesting a near miss.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from yaml.nodes import MappingNode, ScalarNode

from ..flags import env_var_name, parse_env_value
from ..model import AlarmSource, CloudWatchAlarms, Environment, FlagDef, FlagTarget, MetricSource
from .cloudwatch import ALARM_KEYS, METRIC_KEYS, cloudwatch_alarms, cloudwatch_metrics
from .fields import Fields
from .issues import suggest
from .values import NAME, http_url, positive_duration, resolve_path
from .yamlsrc import YamlSource

_ENV_KEYS = ("production", "metrics", "alarms", "flags", "theme_accent", "overrides")
_ENV_LATER = {
    "target": "an environment has no deployment target: Docker services go in the top-level services: section",
}


def checked_kind(f: Fields, available: Sequence[str], later: Sequence[str] = ()) -> str | None:
    """The `kind` entry of `f` when it is one of `available`, else None with an issue recorded."""
    kind: str | None = f.text("kind")
    if kind is None or kind in available:
        return kind
    if kind in later:
        f.issue("kind", f"kind '{kind}' is not available yet (available: {', '.join(available)})")
    else:
        f.issue("kind", f"unknown kind '{kind}'{suggest(kind, available)}")
    return None


def read_environments(src: YamlSource, main: Fields, base: Path) -> dict[str, Environment]:
    f = main.mapping("environments")
    envs: dict[str, Environment] = {}
    for name, enode in f or ():
        path = f.path(name) if f else name
        if not NAME.fullmatch(name):
            src.issue(enode, path, f"environment names use letters, digits, '_', '.', '-', got {name!r}")
        e = src.mapping(enode, path, _ENV_KEYS, unavailable=_ENV_LATER)
        if e is None:
            continue
        envs[name] = Environment(
            name=name,
            metrics=_metric_source(src, e),
            alarms=_alarm_source(e),
            flags=_flag_target(src, e, base),
            production=e.boolean("production", name == "production" or name.startswith("prod")),
            theme_accent=e.text("theme_accent"),
        )
    return envs


def _kind_of(env: Fields, name: str) -> str | None:
    """The plain `kind:` written in mapping `name`, read without reporting anything (the mapping is
    checked once, by the reader of that kind)."""
    node = env.get(name)
    if not isinstance(node, MappingNode):
        return None
    for knode, vnode in node.value:
        if isinstance(knode, ScalarNode) and knode.value == "kind" and isinstance(vnode, ScalarNode):
            return str(vnode.value)
    return None


_VAR = re.compile(r"[A-Z_][A-Z0-9_]*")
_NOT_CLOUDWATCH = {
    "url": "kind: cloudwatch has no url: the region (or boto3's chain) says where; endpoint: overrides it",
    "window": "window is for kind: scrape; a CloudWatch query's statistic has its period",
    "token_env": "kind: cloudwatch takes AWS credentials from boto3's usual chain, not a token",
    "basic_auth_env": "kind: cloudwatch takes AWS credentials from boto3's usual chain",
}


def read_overrides(
    src: YamlSource, main: Fields, envs: dict[str, Environment], flags: Mapping[str, FlagDef]
) -> dict[str, Environment]:
    """Each environment's `overrides:`, the variables its services are declared to run with
    (`PHASE_4_DEPLOYMENT: "false"`), checked against the flags: for display only, since a service's
    own environment decides for that service and the exported files never carry it."""
    f = main.mapping("environments")
    by_var = {env_var_name(name): d for name, d in flags.items()}
    out = dict(envs)
    for name, enode in f or ():
        if name not in envs:
            continue
        e = src.mapping(enode, f.path(name) if f else name)
        o = e.mapping("overrides") if e is not None else None
        if o is None:
            continue
        overrides: dict[str, str] = {}
        for var, vnode in o:
            key = o.path(var)
            defn = by_var.get(var)
            if not _VAR.fullmatch(var):
                src.issue(vnode, key, f"{var!r} is not an environment variable name (A-Z, 0-9, '_')")
                continue
            if defn is None:
                src.issue(vnode, key, f"{var} overrides no flag{suggest(var, sorted(by_var))}")
                continue
            if defn.environments and name not in defn.environments:
                src.issue(vnode, key, f"flag {defn.name} is not used in {name}")
                continue
            ok, value = src.scalar(vnode, key, "a value", typed=False)
            if not ok:
                continue
            text = str(value).lower() if isinstance(value, bool) else "" if value is None else str(value)
            try:
                parse_env_value(defn.type, text)
            except ValueError as exc:
                src.issue(vnode, key, f"{exc} for flag {defn.name}")
                continue
            overrides[var] = text
        out[name] = replace(envs[name], overrides=tuple(overrides.items()))
    return out


def _metric_source(src: YamlSource, env: Fields) -> MetricSource | None:
    if _kind_of(env, "metrics") == "cloudwatch":
        c = env.mapping("metrics", METRIC_KEYS, unavailable=_NOT_CLOUDWATCH)
        return cloudwatch_metrics(c) if c is not None else None
    keys = ("kind", "url", "timeout", "window", "token_env", "basic_auth_env")
    m = env.mapping("metrics", keys, required=("kind", "url"))
    if m is None:
        return None
    kind = checked_kind(m, ("scrape", "prometheus", "cloudwatch"))
    url = m.parsed("url", http_url)
    timeout = m.parsed("timeout", positive_duration, 2.0)
    window = m.parsed("window", positive_duration, 10.0)
    if kind == "prometheus" and "window" in m:
        m.issue("window", "window is for kind: scrape; PromQL gives its own ranges (rate(x[1m]))")
    secrets: dict[str, str | None] = {}
    for key in ("token_env", "basic_auth_env"):
        var = m.text(key)
        if var is not None and kind == "scrape":
            m.issue(key, f"{key} is for kind: prometheus (a scrape source reads the URL as given)")
            var = None
        elif var is not None and not _VAR.fullmatch(var):
            m.issue(key, f"{key} names an environment variable (A-Z, 0-9, '_'), got {var!r}")
            var = None
        secrets[key] = var
    if secrets["token_env"] and secrets["basic_auth_env"]:
        m.issue("basic_auth_env", "set either token_env or basic_auth_env, not both")
    if kind is None or url is None:
        return None
    return MetricSource(
        kind=kind,
        url=url,
        timeout=timeout,
        window=window,
        token_env=secrets["token_env"],
        basic_auth_env=secrets["basic_auth_env"],
    )


_ALARM_KEYS = ("kind", "url", "timeout", "bearer_token_env", "basic_auth_env", "matchers")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


_ALARM_KINDS = ("alertmanager", "cloudwatch")


def _alarm_source(env: Fields) -> AlarmSource | CloudWatchAlarms | None:
    """`alarms:`, read by the reader of its `kind`; any other kind is named as unknown, and nothing
    else of the mapping is judged (its keys are that kind's)."""
    if "alarms" not in env:
        return None
    kind = _kind_of(env, "alarms")
    if kind == "cloudwatch":
        c = env.mapping("alarms", ALARM_KEYS)
        return cloudwatch_alarms(c) if c is not None else None
    if kind == "alertmanager":
        return _alertmanager(env)
    a = env.mapping("alarms", None, required=("kind",))
    if a is not None:
        checked_kind(a, _ALARM_KINDS)
    return None


def _alertmanager(env: Fields) -> AlarmSource | None:
    """`alarms: {kind: alertmanager, url, timeout, bearer_token_env | basic_auth_env, matchers}`.
    Credentials are named by variable, never written in the file: a config is shared and shown."""
    a = env.mapping("alarms", _ALARM_KEYS, required=("kind", "url"))
    if a is None:
        return None
    kind = checked_kind(a, ("alertmanager",))
    url = a.parsed("url", http_url)
    timeout = a.parsed("timeout", positive_duration, 2.0)
    auth: dict[str, str] = {}
    for key in ("bearer_token_env", "basic_auth_env"):
        var = a.text(key)
        if var is None:
            continue
        if not _VAR.fullmatch(var):
            a.issue(key, f"{key} names an environment variable (A-Z, 0-9, '_'), got {var!r}")
            continue
        auth[key] = var
    if len(auth) > 1:
        a.issue("basic_auth_env", "use bearer_token_env or basic_auth_env, not both")
    matchers: list[tuple[str, str]] = []
    m = a.mapping("matchers")
    for label, vnode in m or ():
        if not _LABEL.fullmatch(label):
            a.src.issue(vnode, m.path(label) if m else label, f"{label!r} is not a label name")
            continue
        value = a.src.text(vnode, m.path(label) if m else label)
        if value is not None:
            matchers.append((label, value))
    if kind is None or url is None or len(auth) > 1:
        return None
    return AlarmSource(
        kind=kind,
        url=url.rstrip("/"),
        timeout=timeout,
        bearer_token_env=auth.get("bearer_token_env"),
        basic_auth_env=auth.get("basic_auth_env"),
        matchers=tuple(matchers),
    )


def _flag_target(src: YamlSource, env: Fields, base: Path) -> FlagTarget | None:
    t = env.mapping("flags", ("kind", "path", "flagd", "dotenv"), required=("kind", "path"))
    if t is None:
        return None
    kind = t.text("kind")
    if kind in _ALSO_WRITTEN:
        # Not kinds of their own: they are written next to the JSON file on every change.
        t.issue("kind", _ALSO_WRITTEN[kind])
        return None
    if kind is not None and kind != "file":
        t.issue("kind", f"unknown kind '{kind}'{suggest(kind, ('file',))}")
        return None
    path = t.text("path")
    if kind is None or path is None:
        return None
    paths = {"path": str(resolve_path(base, path))}
    for key in ("flagd", "dotenv"):
        text = t.text(key)
        if text is None:
            continue
        paths[key] = str(resolve_path(base, text))
        same = [other for other, p in paths.items() if other != key and p == paths[key]]
        if same:
            t.issue(key, f"'{key}' names the same file as '{same[0]}'; each format needs a file of its own")
            return None
    return FlagTarget(kind=kind, path=paths["path"], flagd=paths.get("flagd"), dotenv=paths.get("dotenv"))


_ALSO_WRITTEN = {
    "flagd": "the flagd file is written next to the JSON file: use kind: file with path, and flagd: PATH",
    "dotenv": "the .env file is written next to the JSON file: use kind: file with path, and dotenv: PATH",
    "env": "the .env file is written next to the JSON file: use kind: file with path, and dotenv: PATH",
}
