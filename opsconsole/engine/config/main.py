"""The main configuration file: its sections read in dependency order, and who may do what.

Flags and environments are read first because everything after names them: alarm rules name
environments, the kill switch names flags, and plans name both.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from yaml.nodes import Node

from ..model import Config, Role
from ..redact import redact_url
from .alarmrules import read_alarm_rules
from .backups import read_backups
from .bounds import collector_paused
from .cloudwatch import read_publish
from .environments import read_environments, read_overrides
from .fields import Fields
from .flagdefs import read_flags
from .improvements import read_improvements
from .interpolation import interpolate
from .issues import ConfigIssue, raise_if_any
from .killswitch import read_kill_switch
from .notifications import read_notifications
from .plans import read_plans
from .references import Catalog
from .services import read_services
from .values import positive_duration
from .yamlsrc import YamlSource

DEFAULT_STORE = "sqlite:///${WORKSPACE:-.opsconsole}/state.db"
_ROLES = ("viewer", "operator", "approver", "admin")
_MAIN_KEYS = (
    "store",
    "store_password_env",
    "interval",
    "roles",
    "environments",
    "plans",
    "flags",
    "alarms",
    "notifications",
    "kill_switch",
    "improvements",
    "backups",
    "publish",
    "services",
)


def load_config(path: str | Path, variables: Mapping[str, str] | None = None) -> Config:
    """Read and check the main file, its flags and its plans. Raises ConfigError listing every issue."""
    path = Path(path)
    started = time.time()
    issues: list[ConfigIssue] = []
    with collector_paused():
        src, root = YamlSource.open(path, str(path), dict(variables or {}), issues)
        config = _main(src, root, path) if root is not None else None
    raise_if_any(issues, src.file)
    assert config is not None
    return replace(config, loaded_at=started)


def _main(src: YamlSource, root: Node, path: Path) -> Config | None:
    f = src.mapping(root, "", _MAIN_KEYS)
    if f is None:
        return None
    base = path.parent
    store = f.text("store") if "store" in f else interpolate(DEFAULT_STORE, src.lookup)[0]
    if store and not re.match(r"(sqlite:///|postgres(ql)?://)", store):
        f.issue("store", f"expected sqlite:///path or postgresql://user@host/db, got {redact_url(store)!r}")
    elif store and _url_password(store):
        f.issue(
            "store",
            "a password in the store URL would be shown and logged; use store_password_env or a pgpass file",
        )
    store_password_env = f.text("store_password_env")
    if store_password_env is not None and not store_password_env.replace("_", "A").isalnum():
        f.issue(
            "store_password_env", f"expected the name of an environment variable, got {store_password_env!r}"
        )
    interval = f.parsed("interval", positive_duration, 1.0)
    default_role, users, logins = _roles(src, f)
    environments = read_environments(src, f, base)
    flags = read_flags(src, f, base, environments)
    environments = read_overrides(src, f, environments, flags)
    improvements = read_improvements(src, f, base, environments)
    backups = read_backups(src, f, base)
    services = read_services(src, f, frozenset(backups))
    catalog = Catalog(environments, flags, frozenset(improvements), frozenset(backups), services)
    alarm_rules = read_alarm_rules(src, f, environments)
    notifications = read_notifications(src, f)
    kill_switch, kill_key = read_kill_switch(src, f, flags)
    plans = read_plans(src, f, base, catalog)
    publish = read_publish(f)
    return Config(
        path=str(path),
        store=store or DEFAULT_STORE,
        store_password_env=store_password_env,
        default_role=default_role,
        users=users,
        logins=logins,
        environments=environments,
        plans=plans,
        flags=flags,
        alarm_rules=alarm_rules,
        notifications=notifications,
        kill_switch=kill_switch,
        interval=interval,
        kill_key=kill_key,
        improvements=improvements,
        backups=backups,
        publish=publish,
        services=services,
    )


def _roles(src: YamlSource, main: Fields) -> tuple[Role, dict[str, Role], dict[str, str]]:
    f = main.mapping("roles", ("default", "users", "logins"))
    if f is None:
        return Role.VIEWER, {}, {}
    default = Role.parse(f.choice("default", _ROLES, "viewer"))
    users: dict[str, Role] = {}
    u = f.mapping("users")
    for user, rnode in u or ():
        role = src.choice(rnode, f.path("users") + "." + user, _ROLES)
        if role is not None:
            users[user] = Role.parse(role)
    # PostgreSQL login -> the person's name in `users` and the audit log (team mode; see identity.py).
    logins: dict[str, str] = {}
    lg = f.mapping("logins")
    if lg is not None:
        for login, _ in lg:
            name = lg.text(login)
            if name is not None and not str(name).strip():
                lg.issue(login, "expected the name of the person this login is, got an empty name")
            elif name is not None:
                logins[login] = str(name).strip()
    return default, users, logins


def _url_password(url: str) -> bool:
    """Whether a postgresql:// store URL carries a password (in its userinfo or as a parameter)."""
    scheme, _, rest = url.partition("://")
    if not scheme.lower().startswith("postgres"):
        return False
    userinfo, at, _host = rest.partition("@")
    in_userinfo = bool(at) and "/" not in userinfo and ":" in userinfo
    return in_userinfo or "password=" in rest.lower()
