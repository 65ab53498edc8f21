"""The `services:` section (Docker services `opsconsole deploy` replaces) and the recreate strategy's
`service`/`image` in plans: defaults, and every mistake reported at its line under its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsconsole.engine.config import ConfigError, load_config


def load(tmp_path: Path, main: str, plan: str | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "opsconsole.yaml"
    if plan is not None:
        (tmp_path / "plan.yaml").write_text(plan)
        main = f'environments: {{production: {{}}}}\nplans: ["{tmp_path}/plan.yaml"]\n' + main
    path.write_text(main)
    return load_config(path, {"WORKSPACE": str(tmp_path / "ws")})


def messages(tmp_path: Path, main: str, plan: str | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, main, plan)
    return [str(i) for i in info.value.issues]


def test_a_service_with_its_defaults_and_everything_set(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """\
backups: {appdata: {kind: files, paths: [data]}}
services:
  web: {image: registry.local/web}
  api:
    image: registry.local/api
    replicas: 2
    ports: [8081, 8082]
    environment: {LOG_LEVEL: info}
    secrets: {DB_PASSWORD: API_DB_PASSWORD}
    labels: {team: payments}
    health: {url: "http://127.0.0.1:{port}/health", interval: 2s, failure_limit: 5, start_period: 10s}
    smoke: {command: "curl -fsS http://127.0.0.1:8081/ready", timeout: 30s}
    test: [{name: unit, command: "make test", timeout: 10m}]
    build: [{name: image, command: "make image"}]
    backup: appdata
    docker: {host: "unix:///run/docker.sock", timeout: 10s}
    stop_timeout: 5s
""",
    )
    web, api = cfg.services["web"], cfg.services["api"]
    assert (web.replicas, web.network, web.health.url, web.smoke, web.strategy) == (
        1,
        "host",
        None,
        None,
        "recreate",
    )
    assert (
        web.reference("v2") == "registry.local/web:v2" and web.rollback_ref == "registry.local/web:rollback"
    )
    assert api.ports == (8081, 8082) and api.port(1) == 8082
    assert api.secrets == {"DB_PASSWORD": "API_DB_PASSWORD"} and api.environment == {"LOG_LEVEL": "info"}
    assert (api.health.interval, api.health.failure_limit, api.health.start_period) == (2.0, 5, 10.0)
    assert api.smoke is not None and api.smoke.timeout == 30.0
    assert [s.name for s in api.test] == ["unit"] and api.build[0].timeout == 600.0
    assert (api.backup, api.docker_host, api.docker_timeout, api.stop_timeout) == (
        "appdata",
        "unix:///run/docker.sock",
        10.0,
        5.0,
    )


def test_mistakes_are_named_where_they_are(tmp_path: Path) -> None:
    issues = messages(
        tmp_path,
        """\
services:
  web:
    image: registry.local/web:v1
    replicas: 2
    ports: [8081]
    environment: {API_TOKEN: abc}
    secrets: {X: "not a name"}
    backup: nowhere
    strategy: blue_green
    docker: {host: "/var/run/docker.sock"}
    health: {url: "http://x/health", docker: true}
  Bad Name: {image: x}
  noimage: {replicas: 1}
""",
    )
    text = "\n".join(issues)
    assert "services.web.image" in text and "without a tag" in text
    assert "each of the 2 replicas needs a port of its own" in text
    assert "API_TOKEN looks like a secret" in text and "secrets: {API_TOKEN: ENV_VAR}" in text
    assert "X: expected the name of an environment variable" in text
    assert "no backups: target named 'nowhere'" in text
    assert "services.web.blue_green" in text and "each colour's ports and the switch command" in text
    assert "host: expected unix:///path" in text
    assert "either url or docker: true, not both" in text
    assert "service name 'Bad Name'" in text
    assert "services.noimage.image" in text and "'image' is required" in text
    assert all(":" in i.split(" ")[0] for i in issues), issues  # file:line first


def test_a_recreate_phase_names_a_service_that_exists_and_an_image(tmp_path: Path) -> None:
    main = "services: {web: {image: registry.local/web}}\n"
    plan = """\
name: ship
phases:
  - name: deploy
    environment: production
    strategy: {kind: recreate, service: web, image: v2}
"""
    cfg = load(tmp_path, main, plan)
    strategy = cfg.plans["ship"].phases[0].strategy
    assert strategy is not None and (strategy.service, strategy.image) == ("web", "v2")
    issues = "\n".join(messages(tmp_path, main, plan.replace("service: web, image: v2", "service: wbe")))
    assert "unknown service 'wbe'" in issues and "did you mean 'web'" in issues.lower()
    assert "'image' is required (the tag to deploy)" in issues
    issues = "\n".join(messages(tmp_path, main, plan.replace("recreate", "canary")))
    assert "the percentage flag the canary moves" in issues  # a canary of a service moves a flag too


def test_a_blue_green_switch_is_a_command_or_a_flag(tmp_path: Path) -> None:
    ports = "ports: {blue: [8081], green: [8091]}"
    ok = load(
        tmp_path,
        f"""\
services:
  web:
    image: registry.local/web
    ports: [8081]
    blue_green: {{{ports}, switch: {{flag: green_live, environment: production}}}}
""",
    )
    from opsconsole.engine.deploy.model import FlagSwitch

    assert ok.services["web"].blue_green.switch == FlagSwitch("green_live", "production")
    text = "\n".join(
        messages(
            tmp_path,
            f"""\
services:
  a:
    image: registry.local/a
    ports: [8081]
    blue_green: {{{ports}, switch: {{flag: g, command: "true"}}}}
  b:
    image: registry.local/b
    ports: [8081]
    blue_green: {{{ports}, switch: {{flag: g}}}}
  c:
    image: registry.local/c
    ports: [8081]
    blue_green: {{{ports}, switch: {{timeout: 5s}}}}
""",
        )
    )
    assert "a command or a flag, not both" in text
    assert "the environment whose flag the application reads" in text
    assert "the command that moves traffic (or `flag` and `environment`)" in text


def test_a_target_on_an_environment_points_to_services(tmp_path: Path) -> None:
    """Deployments are built: the environment-level `target:` no longer says "not available yet"
    but where a Docker service is declared."""
    got = messages(tmp_path, "environments:\n  production:\n    target: {kind: docker}\n")
    assert any("environments.production.target" in m and "top-level services:" in m for m in got), got
    assert not any("not available yet" in m for m in got), got


def test_a_canary_needs_only_the_colours_ports_blue_green_needs_the_switch(tmp_path: Path) -> None:
    """`switch` may be left out of `blue_green:` (a canary's flag moves the traffic), and `canary:`
    says the same; a blue_green strategy of such a service, at the service or in a plan's phase, is
    refused where it is written."""
    cfg = load(
        tmp_path,
        """\
services:
  web:
    image: registry.local/web
    blue_green: {ports: {blue: [8081], green: [8091]}}
  api:
    image: registry.local/api
    canary:
      ports: {blue: [8082], green: [8092]}
""",
    )
    web, api = cfg.services["web"].blue_green, cfg.services["api"].blue_green
    assert web is not None and (web.blue, web.green, web.traffic_switch) == ((8081,), (8091,), None)
    assert api is not None and (api.blue, api.green, api.traffic_switch) == ((8082,), (8092,), None)
    assert "opsconsole.yaml:8 services.api.canary" in api.where

    from opsconsole.engine.deploy.model import DeployError

    with pytest.raises(DeployError, match="has no switch"):
        web.switch  # noqa: B018 - the blue_green strategy's way to it refuses

    text = "\n".join(
        messages(
            tmp_path,
            """\
services:
  a:
    image: registry.local/a
    strategy: blue_green
    blue_green: {ports: {blue: [8081], green: [8091]}}
  b:
    image: registry.local/b
    canary: {ports: {blue: [8081], green: [8091]}, switch: {command: "true"}}
  c:
    image: registry.local/c
    canary: {ports: {blue: [8081], green: [8091]}}
    blue_green: {ports: {blue: [8081], green: [8091]}, switch: {command: "true"}}
  d:
    image: registry.local/d
    strategy: blue_green
    canary: {ports: {blue: [8081], green: [8091]}}
""",
        )
    )
    assert "opsconsole.yaml:5: services.a.blue_green.switch: 'switch' is required" in text, text
    assert "a blue_green deploy moves traffic with it" in text
    assert "opsconsole.yaml:8: services.b.canary.switch" in text and "a canary never switches" in text
    assert "opsconsole.yaml:11: services.c.canary" in text and "not both" in text
    assert "services.d.strategy" in text and "instead of canary:" in text


def test_a_phase_is_refused_when_its_service_cannot_run_its_strategy(tmp_path: Path) -> None:
    main = """\
services:
  ported: {image: registry.local/p, blue_green: {ports: {blue: [8081], green: [8091]}}}
  plain: {image: registry.local/q}
"""
    plan = """\
name: ship
phases:
  - name: deploy
    environment: production
    strategy: {kind: KIND, service: SERVICE, image: v2, flag: f}
"""
    flags = 'flags: {f: {type: percentage, default: 0}}\nenvironments: {production: {flags: {kind: file, path: "f.json"}}}\n'

    def check(kind: str, service: str) -> str:
        text = plan.replace("KIND", kind).replace("SERVICE", service)
        if kind != "canary":
            text = text.replace(", flag: f", "")
        (tmp_path / "plan.yaml").write_text(text)
        path = tmp_path / "opsconsole.yaml"
        path.write_text(f'{flags}plans: ["{tmp_path}/plan.yaml"]\n' + main)
        try:
            load_config(path, {"WORKSPACE": str(tmp_path / "ws")})
        except ConfigError as exc:
            return "\n".join(str(i) for i in exc.issues)
        return ""

    got = check("blue_green", "ported")
    assert f"{tmp_path}/plan.yaml:5: phases[0].strategy.service" in got, got
    assert "service 'ported' has no switch" in got and "opsconsole.yaml:5 services.ported.blue_green" in got
    got = check("blue_green", "plain")
    assert "plan.yaml:5" in got and "service 'plain'" in got and "has no blue_green: section" in got, got
    got = check("canary", "plain")
    assert "plan.yaml:5" in got and "has no colours' ports" in got, got
    assert check("canary", "ported") == ""
    assert check("recreate", "plain") == "" and check("rolling", "ported") == ""
