"""The flagd export read by the real OpenFeature flagd provider (openfeature-provider-flagd 0.6.1 on
flagd-core 2.0.0, FILE resolver): it answers what `flags.flagd_evaluate` says, and pulling the kill
switch reaches it within a second.

The engine writes the files from a workspace configured as a user would (`flagd:` next to `path:`);
the provider polls the file's mtime every `deadline_ms` (in 0.6.1 the FILE watcher sleeps
`deadline_ms`, not `offline_poll_interval_ms`, between checks), so the tests set 50 ms.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagEvaluationDetails

from opsconsole.engine.core import Engine
from opsconsole.engine.flags import VARIANT, EvalContext, flagd_evaluate
from opsconsole.engine.model import Actor

from .conftest import load_ws, write_workspace

PERCENTAGES = (1, 10, 25, 50, 99)
USERS = 1_000
POLL_MS = 50

FLAGS_YAML = """
flags:
  phase_4_deployment: {default: true, risk: high}
  enable_autonomous_improvements: {default: true}
  enable_component_generation: {default: false}
  aatc_system_enabled: {default: true, depends_on: phase_4_deployment}
  emergency_shutdown: {default: false, kind: kill-switch}
  gradual: {type: percentage, default: 0}
  beta_search:
    default: false
    targeting: {users: [u-vip], tenants: [acme], regions: [eu-west]}
  ranking:
    type: percentage
    default: 30
    targeting: {users: [u-vip]}
    depends_on: phase_4_deployment
  checkout_theme:
    type: variant
    default: false
    variants: {control: 50, blue: 30, green: 20}
    targeting: {tenants: [acme]}
  banner:
    type: variant
    default: true
    variants: {none: 10, small: 60, large: 30}
"""

PLAN = """
name: gradual
phases:
  - name: production
    environment: production
    flags: {gradual: 50}
"""


@pytest.fixture(autouse=True)
def _quiet_flagd() -> Iterator[None]:
    # flagd-core logs an error for every fractional evaluation without a targetingKey (asked on purpose).
    log = logging.getLogger("openfeature.contrib")
    level = log.level
    log.setLevel(logging.CRITICAL)
    yield
    log.setLevel(level)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace whose production environment also writes a flagd file and a .env file."""
    (tmp_path / "flags.yaml").write_text(FLAGS_YAML)
    ws = write_workspace(tmp_path, port=9, plan=PLAN)
    main = ws / "opsconsole.yaml"
    text = main.read_text()
    old = 'flags: {kind: file, path: "${WORKSPACE}/flags/production.json"}'
    new = (
        'flags: {kind: file, path: "${WORKSPACE}/flags/production.json", '
        'flagd: "${WORKSPACE}/flags/production.flagd.json", dotenv: "${WORKSPACE}/flags/production.env"}'
    )
    assert old in text
    text = text.replace(old, new)
    text = "\n".join(
        f'flags: "{tmp_path / "flags.yaml"}"' if line.startswith("flags: ") else line
        for line in text.splitlines()
    )
    main.write_text(text + "\n")
    return ws


@pytest.fixture
def engine(ws: Path) -> Iterator[Engine]:
    eng = Engine(load_ws(ws), ws, Actor("root", "test"), environ={})  # no overrides from the shell
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def client(engine: Engine, ws: Path) -> Iterator[object]:
    engine.export_flags()
    provider = FlagdProvider(
        resolver_type=ResolverType.FILE,
        offline_flag_source_path=str(ws / "flags" / "production.flagd.json"),
        deadline_ms=POLL_MS,
    )
    domain = f"opsconsole-test-{id(provider)}"
    api.set_provider_and_wait(provider, domain)
    try:
        yield api.get_client(domain)
    finally:
        api.clear_providers()


def ask(client: object, name: str, kind: str, ctx: EvalContext) -> FlagEvaluationDetails:
    attrs = {k: v for k, v in (("tenant", ctx.tenant), ("region", ctx.region)) if v is not None}
    ec = EvaluationContext(targeting_key=ctx.user, attributes=attrs)
    if kind == VARIANT:
        details = client.get_string_details(name, "CALLER-DEFAULT", ec)  # type: ignore[attr-defined]
    else:
        details = client.get_boolean_details(name, None, ec)  # type: ignore[attr-defined]
    assert details.error_code is None, (name, details.error_code, details.error_message)
    return details


def set_gradual(engine: Engine, client: object, pct: int) -> None:
    """Set the percentage and wait until the provider has loaded the new file (the export puts the
    percentage in the flag's metadata, which the provider hands back)."""
    engine.set_flag("production", "gradual", pct, f"provider check at {pct}%")
    deadline = time.monotonic() + 2.0
    while ask(client, "gradual", "percentage", EvalContext("x")).flag_metadata.get("percentage") != pct:
        assert time.monotonic() < deadline, f"the provider did not load the {pct}% export"
        time.sleep(0.01)


def test_provider_answers_what_flagd_evaluate_says(engine: Engine, client: object, ws: Path) -> None:
    defs = engine.config.flags
    users = [EvalContext(f"user-{i:04d}") for i in range(USERS)]
    for pct in PERCENTAGES:
        set_gradual(engine, client, pct)
        state = engine.flag_states("production")["gradual"]
        assert state.value == pct
        on = 0
        for ctx in users:
            got = ask(client, "gradual", "percentage", ctx).value
            assert got == flagd_evaluate(state, defs["gradual"], ctx).value, (pct, ctx)
            on += got
        assert abs(on - pct * USERS / 100) < max(25, pct * USERS / 100 * 0.3), (pct, on)

    # Targeting lists, a percentage with a targeted user and a parent, and variant flags, on and off.
    rng = random.Random(7)
    contexts = [
        EvalContext(),
        EvalContext("u-vip"),
        EvalContext(None, "acme"),
        EvalContext("u-1", None, "eu-west"),
        *[
            EvalContext(f"u-{i}", rng.choice([None, "acme", "other"]), rng.choice([None, "eu-west"]))
            for i in range(300)
        ],
    ]
    states = engine.flag_states("production")
    for name in ("beta_search", "ranking", "checkout_theme", "banner", "aatc_system_enabled"):
        kind = defs[name].type
        answers = set()
        for ctx in contexts:
            got = ask(client, name, kind, ctx).value
            assert got == flagd_evaluate(states[name], defs[name], ctx).value, (name, ctx)
            answers.add(got)
        assert len(answers) > 1 or name == "aatc_system_enabled", (name, answers)  # the cases differ


def test_kill_switch_reaches_the_provider_within_a_second(engine: Engine, client: object, ws: Path) -> None:
    set_gradual(engine, client, 50)
    vip, someone = EvalContext("u-vip"), EvalContext(None, "acme")
    assert ask(client, "phase_4_deployment", "boolean", vip).value is True
    assert ask(client, "emergency_shutdown", "boolean", vip).value is False

    t0 = time.perf_counter()
    result = engine.kill("provider check")
    while True:
        killed = ask(client, "phase_4_deployment", "boolean", vip).value is False
        raised = ask(client, "emergency_shutdown", "boolean", vip).value is True
        if killed and raised:
            break
        assert time.perf_counter() - t0 < 1.0, "the provider still serves the state from before the kill"
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"{elapsed:.3f} s"
    # The safe state went into the flagd and .env files before the store, not only with the re-export.
    flags_dir = ws / "flags"
    assert {str(flags_dir / f"production.{ext}") for ext in ("json", "flagd.json", "env")} <= set(
        result.files
    )

    # Everything the provider serves now is what the engine says, children of killed flags included.
    states = engine.flag_states("production")
    defs = engine.config.flags
    for name, state in states.items():
        for ctx in (vip, someone, EvalContext("u-2", "acme", "eu-west")):
            assert (
                ask(client, name, defs[name].type, ctx).value == flagd_evaluate(state, defs[name], ctx).value
            )
    assert "PHASE_4_DEPLOYMENT=false" in (ws / "flags" / "production.env").read_text()
