"""The `services:` section: Docker services `opsconsole deploy` replaces, each with its strategy.

    services:
      checkout:
        image: registry.local/checkout       # the repository; `deploy checkout --image TAG` picks the tag
        replicas: 2
        network: host                        # the container's network mode (host: loopback ports)
        ports: [8081, 8082]                  # with host networking one per replica: PORT=<port> in its env
        environment: {LOG_LEVEL: info}
        secrets: {DB_PASSWORD: CHECKOUT_DB_PASSWORD}   # container variable -> the console's env variable
        labels: {team: payments}
        health: {url: "http://127.0.0.1:{port}/health", interval: 1s, failure_limit: 3, timeout: 1s}
        #  or   {docker: true}               # the image's own HEALTHCHECK
        smoke: {command: "curl -fsS http://127.0.0.1:8081/ready", timeout: 30s}
        test:  [{name: unit, command: "make test", timeout: 10m}]
        build: [{name: image, command: "docker build -t registry.local/checkout:$TAG .", timeout: 10m}]
        backup: orders-db                    # a backups: target, taken before anything is stopped
        docker: {host: "unix:///var/run/docker.sock", timeout: 30s}
        stop_timeout: 10s
        strategy: recreate                   # or rolling: max_unavailable replicas at a time
        max_unavailable: 1
        blue_green:                          # for strategy blue_green (or --strategy blue_green)
          ports: {blue: [8081, 8082], green: [8091, 8092]}
          switch: {command: "sh /etc/opsconsole/switch-nginx.sh", timeout: 10s}   # gets OPSCONSOLE_COLOUR,
          keep_old: 5m                       # OPSCONSOLE_PORTS, OPSCONSOLE_UPSTREAMS (127.0.0.1:port ...)
          # or  switch: {flag: green_live, environment: production}: a boolean flag the application
          #     reads (on: green is live, off: blue), set by the console (audited, flag files at once)

A canary phase of a service runs the new version on the other colour's ports and its flag moves the
traffic: it needs only the ports. `switch` may be left out of `blue_green:` when no blue_green
strategy deploys the service (one that does is refused, here or at the plan's phase), and a service
only canaries deploy may say so with `canary:` instead (the same ports, nothing else):

        canary:
          ports: {blue: [8081], green: [8091]}

Secret values never go in the configuration: an `environment:` entry whose name says it is one is
refused with the way to pass it by reference.
"""

from __future__ import annotations

import re

from ..deploy.model import STRATEGIES, BlueGreenSpec, CommandStep, FlagSwitch, HealthSpec, ServiceSpec
from .fields import Fields
from .values import positive_duration
from .yamlsrc import YamlSource

_KEYS = (
    "image",
    "replicas",
    "network",
    "ports",
    "command",
    "environment",
    "secrets",
    "labels",
    "health",
    "smoke",
    "test",
    "build",
    "backup",
    "docker",
    "stop_timeout",
    "strategy",
    "max_unavailable",
    "blue_green",
    "canary",
)
_LATER: set[str] = set()
_SECRETISH = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL)", re.IGNORECASE)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def read_services(src: YamlSource, main: Fields, backups: frozenset[str]) -> dict[str, ServiceSpec]:
    f = main.mapping("services")
    out: dict[str, ServiceSpec] = {}
    for name, node in f or ():
        path = f.path(name) if f else name
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
            src.issue(node, path, f"service name {name!r}: use lower-case letters, digits, '-', '_' and '.'")
            continue
        s = src.mapping(node, path, _KEYS, required=("image",))
        if s is None or "image" not in s:
            continue
        spec = _service(src, s, name, backups)
        if spec is not None:
            out[name] = spec
    return out


def _service(src: YamlSource, s: Fields, name: str, backups: frozenset[str]) -> ServiceSpec | None:
    image = s.text("image", "")
    if ":" in image.rsplit("/", 1)[-1] or "@" in image:
        s.issue(
            "image", f"expected the image repository without a tag ({image!r}); deploy --image picks the tag"
        )
    replicas = s.integer("replicas", 1, minimum=1, maximum=100)
    ports: list[int] = []
    for ipath, inode in s.sequence("ports"):
        port = src.integer(inode, ipath, minimum=1, maximum=65535)
        if port is not None:
            ports.append(port)
    network = s.text("network", "host")
    if network == "host" and ports and len(ports) < replicas:
        s.issue("ports", f"with host networking each of the {replicas} replicas needs a port of its own")
    environment = _strings(src, s, "environment")
    for var in environment:
        if _SECRETISH.search(var):
            s.issue(
                "environment",
                f"{var} looks like a secret: its value would be stored and shown; use secrets: {{{var}: ENV_VAR}}",
            )
    secrets = _strings(src, s, "secrets")
    for var, env in secrets.items():
        if not _ENV_NAME.match(env):
            s.issue("secrets", f"{var}: expected the name of an environment variable, got {env!r}")
    backup = s.text("backup")
    if backup is not None and backup not in backups:
        s.issue(
            "backup",
            f"no backups: target named {backup!r}"
            + (f" (known: {', '.join(sorted(backups))})" if backups else ""),
        )
    strategy = s.text("strategy", "recreate")
    if strategy in _LATER:
        s.issue("strategy", f"the {strategy} strategy is not available for Docker services yet; use recreate")
    elif strategy not in STRATEGIES:
        s.issue("strategy", f"expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    docker = s.mapping("docker", ("host", "timeout"))
    host = docker.text("host") if docker else None
    if host is not None and not re.match(r"(unix|tcp|ssh)://", host):
        s.issue("docker", f"host: expected unix:///path, tcp://host:port or ssh://host, got {host!r}")
    command = s.texts("command") if "command" in s else None
    return ServiceSpec(
        name=name,
        image=image,
        replicas=replicas,
        network=network,
        ports=tuple(ports),
        environment=environment,
        secrets=secrets,
        labels=_strings(src, s, "labels"),
        command=tuple(command) if command else None,
        health=_health(s),
        smoke=_command(s.mapping("smoke", ("command", "timeout"), required=("command",)), "smoke", 60.0),
        test=_steps(src, s, "test"),
        build=_steps(src, s, "build"),
        backup=backup,
        docker_host=host,
        docker_timeout=docker.parsed("timeout", positive_duration, 30.0) if docker else 30.0,
        stop_timeout=s.parsed("stop_timeout", positive_duration, 10.0),
        strategy=strategy,
        max_unavailable=s.integer("max_unavailable", 1, minimum=1, maximum=100),
        blue_green=_blue_green(src, s, replicas, strategy),
        where=s.where(),
    )


def _blue_green(src: YamlSource, s: Fields, replicas: int, strategy: str) -> BlueGreenSpec | None:
    """The colours' ports (and the switch) from `blue_green:`, or from `canary:` for a service only
    canaries deploy."""
    if "canary" in s and "blue_green" in s:
        s.issue("canary", "the colours' ports go in blue_green: or in canary:, not both")
    if "canary" in s and "blue_green" not in s:
        b = s.mapping(
            "canary",
            ("ports",),
            required=("ports",),
            unavailable={
                name: f"a canary never switches (its flag moves the traffic): {name} goes in blue_green:"
                for name in ("switch", "keep_old")
            },
        )
        if b is not None and strategy == "blue_green":
            s.issue(
                "strategy",
                "blue_green moves traffic with a switch: give the service a blue_green: section "
                "(ports and switch) instead of canary:",
            )
    else:
        b = s.mapping("blue_green", ("ports", "switch", "keep_old"), required=("ports",))
    if b is None:
        if strategy == "blue_green":
            s.missing("blue_green", "each colour's ports and the switch command")
        return None
    p = b.mapping("ports", ("blue", "green"), required=("blue", "green"))
    colours: dict[str, tuple[int, ...]] = {}
    for colour in ("blue", "green"):
        found = []
        for ipath, inode in p.sequence(colour) if p else ():
            port = src.integer(inode, ipath, minimum=1, maximum=65535)
            if port is not None:
                found.append(port)
        if p and colour in p and len(found) < replicas:
            p.issue(colour, f"{colour} needs a port for each of the {replicas} replicas")
        colours[colour] = tuple(found)
    if set(colours["blue"]) & set(colours["green"]):
        b.issue("ports", "blue and green must not share a port: both run at once")
    switch = _switch(b)
    if switch is None and "switch" not in b and strategy == "blue_green":
        b.missing("switch", SWITCH_NEEDED)
    return BlueGreenSpec(
        blue=colours["blue"],
        green=colours["green"],
        traffic_switch=switch,
        keep_old=b.parsed("keep_old", positive_duration, 30.0),
        where=f"{b.where()} {b.key}",
    )


SWITCH_NEEDED = (
    "a blue_green deploy moves traffic with it: {command: ...} or {flag: ..., environment: ...}; "
    "only a canary does without"
)


def _switch(b: Fields) -> CommandStep | FlagSwitch | None:
    sw = b.mapping("switch", ("command", "timeout", "flag", "environment"))
    if sw is not None and "flag" in sw:
        if "command" in sw:
            sw.issue("flag", "a switch is a command or a flag, not both")
        if "environment" not in sw:
            sw.missing("environment", "the environment whose flag the application reads")
            return None
        return FlagSwitch(sw.text("flag", ""), sw.text("environment", ""))
    if sw is not None and "command" not in sw:
        sw.missing("command", "the command that moves traffic (or `flag` and `environment`)")
        return None
    return _command(sw, "switch", 30.0)


def _strings(src: YamlSource, s: Fields, key: str) -> dict[str, str]:
    m = s.mapping(key)
    out: dict[str, str] = {}
    for var, vnode in m or ():
        value = src.text(vnode, m.path(var) if m else var, allow_empty=True)
        if value is not None:
            out[var] = value
    return out


def _health(s: Fields) -> HealthSpec:
    h = s.mapping(
        "health", ("url", "docker", "interval", "timeout", "failure_limit", "start_period", "max_wait")
    )
    if h is None:
        return HealthSpec()
    url = h.text("url")
    docker = h.boolean("docker", False)
    if url and docker:
        h.issue(None, "either url or docker: true, not both")
    if url is not None and not re.match(r"https?://", url):
        h.issue("url", f"expected an http:// or https:// URL, got {url!r}")
    return HealthSpec(
        url=url,
        docker=docker,
        interval=h.parsed("interval", positive_duration, 1.0),
        timeout=h.parsed("timeout", positive_duration, 1.0),
        failure_limit=h.integer("failure_limit", 3, minimum=1, maximum=1000),
        start_period=h.parsed("start_period", positive_duration, 0.0),
        max_wait=h.parsed("max_wait", positive_duration, 120.0),
    )


def _command(c: Fields | None, name: str, timeout: float) -> CommandStep | None:
    if c is None or "command" not in c:
        return None
    return CommandStep(
        name=c.text("name", name),
        command=c.text("command", ""),
        timeout=c.parsed("timeout", positive_duration, timeout),
    )


def _steps(src: YamlSource, s: Fields, key: str) -> tuple[CommandStep, ...]:
    out: list[CommandStep] = []
    for ipath, inode in s.sequence(key):
        c = src.mapping(inode, ipath, ("name", "command", "timeout"), required=("name", "command"))
        step = _command(c, key, 600.0)
        if step is not None:
            out.append(step)
    return tuple(out)


__all__ = ["SWITCH_NEEDED", "read_services"]
