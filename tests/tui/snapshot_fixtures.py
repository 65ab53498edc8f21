"""A deterministic console world for the snapshot tests: the same pixels on every run, on any machine.

Everything that would otherwise move is pinned:
- time: one fixed clock (`NOW`) for every engine, so ids, ages, countdowns and audit times repeat;
- ids: rollouts are created the way `Engine.start_rollout` creates them, but with fixed ids;
- paths: the workspace is the relative directory `ws` under the test's working directory, so the
  paths the Backups pane prints do not contain pytest's numbered temporary directory;
- environment: engines get a fixed `environ`, so no variable of the machine decides a flag;
- metrics: the scrape history is recorded straight into the session's real sources and the alarm
  rules are evaluated over it, as the runner's read side does; nothing is downloaded (the metrics URL
  is a closed port that is never contacted because the test switches the session's poll off).

The rollouts move through the real state machine and the real gate evaluator; only the observations
are made up. The story: an earlier `cart` release completed two hours ago; a `pay` canary rolled back
when its error rate breached; a `search` release waits for a second approver; the current `cart`
canary sits at 25% with its error-rate guard failing (1 of 3) while the HighErrorRate alarm fires.
Flags: phase_4_deployment is stale (a release flag created 75 days ago), checkout_copy is a variant
flag that exists only in production, debug_toolbar only in staging; production has two scheduled
changes pending (dark_mode_ui on in 45 minutes, new_pay ramping 0 -> 50% from 10 minutes on).
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from opsconsole.engine import gates as gate_logic
from opsconsole.engine.config import load_config
from opsconsole.engine.core import Engine
from opsconsole.engine.model import Actor, Config, GateMemory, GateSpec, Observation, Rollout, RolloutState
from opsconsole.engine.rollout import Evaluate, current_phase, decide, new_rollout
from opsconsole.engine.schedules import ramp
from opsconsole.engine.session import Session
from opsconsole.engine.sources.promtext import Sample
from opsconsole.engine.store import Store, open_store

T0 = 1_700_000_000.0
"""2023-11-14 22:13:20 UTC."""
NOW = T0 + 7200
"""What every clock says while the console runs: 2023-11-15 00:13:20 UTC."""
WORKSPACE = Path("ws")
METRICS_URL = "http://127.0.0.1:9/metrics"
"""Port 9 (discard) is closed here; nothing connects to it, the session's poll is switched off."""
ENVIRON = {"OTEL_ENABLED": "false"}
"""The engines' own environment: never shown (the flags pane shows only declared overrides)."""
SCRAPES = 60
"""One scrape a second for the last minute: full sparklines."""

MAIN = """
interval: 1s
roles:
  default: viewer
  users: {alice: approver, bob: operator, carol: viewer, root: admin}
environments:
  staging:
    metrics: {kind: scrape, url: "URL", timeout: 1s, window: 10s}
    flags: {kind: file, path: flags/staging.json}
    overrides: {OTEL_ENABLED: "false"}  # so the Flags pane shows an `env` decision too
  production:
    metrics: {kind: scrape, url: "URL", timeout: 1s, window: 10s}
    flags: {kind: file, path: flags/production.json}
    overrides: {OTEL_ENABLED: "false"}
plans: ["plans/*.yaml"]
flags: flags.yaml
alarms:
  rules:
    - {name: HighErrorRate, environment: production, query: 'ratio(errors_total, requests_total)', max: 0.015, for: 10s, severity: critical}
    - {name: QueueBacklog, environment: production, query: queue_depth, max: 100, for: 30s, severity: warning}
    - {name: LowCacheHit, environment: production, query: cache_hit_ratio, min: 0.8, severity: warning}
    - {name: StagingLatency, environment: staging, query: 'latency_seconds * 1000', max: 120, for: 2m, severity: info}
kill_switch:
  flags_off: [phase_4_deployment, enable_autonomous_improvements]
  flags_on: [emergency_shutdown]
"""

FLAGS = """
flags:
  new_cart: {type: percentage, default: 0, risk: high, owner: payments, description: Share of checkout traffic on the new cart (moved by the cart canary)}
  enable_new_cart: {default: false, risk: medium, owner: payments, description: New cart code path available}
  new_pay: {type: percentage, default: 0, risk: high, owner: payments, description: Share of payments on the v2 gateway}
  search_v2: {type: percentage, default: 0, risk: medium, owner: search, description: Share of queries on the v2 ranker}
  dark_mode_ui: {default: false, risk: low, owner: web, description: Dark theme for the storefront}
  phase_4_deployment: {default: false, risk: high, created: 2023-09-01, description: Production deployment flag (master rollout flag)}
  llm_integration_enabled: {default: true, risk: medium, depends_on: phase_4_deployment, description: LLM-based decisions (vs heuristic)}
  otel_enabled: {default: true, risk: low, description: OpenTelemetry tracing (always on)}
  enable_self_building: {default: false, risk: high, owner: agents, description: The self-building agent proposes improvements}
  enable_autonomous_improvements: {default: false, risk: high, owner: agents, description: Deploy improvements without a human approval}
  emergency_shutdown: {default: false, risk: high, kind: kill-switch, description: Kill switch (nuclear option); raised by the console's kill switch}
  checkout_copy: {type: variant, default: true, risk: low, owner: web, kind: experiment, created: 2023-11-01, environments: [production], variants: {control: 50, short: 25, long: 25}, description: Checkout button text experiment}
  debug_toolbar: {default: true, risk: low, owner: web, environments: [staging], description: Debug toolbar (staging only)}
"""

ERROR_RATE = (
    "{kind: metric, name: error_rate, query: 'ratio(errors_total, requests_total)', max: 0.01, unit: '%'"
)
LATENCY = "{kind: metric, name: latency_ms, query: 'latency_seconds * 1000', unit: ms"

PLANS = {
    "cart": f"""
name: cart
description: New cart - staging soak and approval, then a canary in production
phases:
  - name: staging
    environment: staging
    flags: {{enable_new_cart: true}}
    gates:
      - {{kind: soak, min: 10m}}
      - {ERROR_RATE}}}
    approval: {{required: true, role: approver}}
  - name: canary
    environment: production
    strategy: {{kind: canary, flag: new_cart, steps: [0, 5, 25, 50, 100], step_wait: 5m}}
    guards:
      - {ERROR_RATE}, failure_limit: 3}}
      - {LATENCY}, max: 500, failure_limit: 3}}
      - {{kind: alarms, none_firing: ["Cart*"]}}
""",
    "pay": f"""
name: pay
description: Payments v2 gateway canary
phases:
  - name: canary
    environment: production
    strategy: {{kind: canary, flag: new_pay, steps: [0, 10, 50, 100], step_wait: 2m}}
    guards:
      - {ERROR_RATE}, failure_limit: 2}}
      - {LATENCY}, max: 400, failure_limit: 2}}
""",
    "search": f"""
name: search
description: Search v2 ranker - staging, two approvers, then production
phases:
  - name: staging
    environment: staging
    gates:
      - {{kind: soak, min: 10m}}
      - {LATENCY}, max: 300}}
    approval: {{required: true, role: approver, distinct_approvers: 2}}
  - name: production
    environment: production
    strategy: {{kind: canary, flag: search_v2, steps: [0, 50, 100], step_wait: 5m}}
    guards:
      - {LATENCY}, max: 300, failure_limit: 2}}
""",
}

HEALTHY = {"error_rate": 0.002, "latency_ms": 181.0}


class Clock:
    """The engines' clock: moved by the builder while it writes history, then left at NOW."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rollout_id(plan: str, at: float, suffix: str) -> str:
    """An id in the shape Engine.start_rollout gives, with a fixed suffix instead of a random one."""
    return f"{plan}-{time.strftime('%m%d-%H%M%S', time.gmtime(at))}-{suffix}"


CART_DONE = rollout_id("cart", T0, "7c1e")
PAY = rollout_id("pay", T0 + 2400, "19ad")
SEARCH = rollout_id("search", T0 + 4500, "b40f")
CART = rollout_id("cart", T0 + 5400, "e2d5")
ROLLOUTS_NEWEST_FIRST = (CART, SEARCH, PAY, CART_DONE)
"""The order of the Rollouts table; the cursor starts on the first."""


@dataclass
class World:
    """A seeded workspace: open engines on it as any user, all sharing one store and one clock."""

    workspace: Path
    config: Config
    store: Store
    clock: Clock = field(default_factory=Clock)

    def engine(self, user: str = "alice", *, read_only: bool = False) -> Engine:
        return Engine(
            self.config,
            self.workspace,
            Actor(user, "local"),
            read_only=read_only,
            environ=dict(ENVIRON),
            clock=self.clock,
            store=self.store,
        )

    def close(self) -> None:
        self.store.close()


def write_workspace(workspace: Path = WORKSPACE) -> Config:
    """The configuration files, under `workspace` (relative: the caller chdirs to a temporary dir)."""
    (workspace / "plans").mkdir(parents=True, exist_ok=True)
    (workspace / "opsconsole.yaml").write_text(textwrap.dedent(MAIN).replace("URL", METRICS_URL))
    (workspace / "flags.yaml").write_text(textwrap.dedent(FLAGS))
    for name, text in PLANS.items():
        (workspace / "plans" / f"{name}.yaml").write_text(text)
    return load_config(workspace / "opsconsole.yaml", {"WORKSPACE": str(workspace)})


def build_world(workspace: Path = WORKSPACE) -> World:
    """Write the workspace and its history; every clock reads NOW afterwards."""
    config = write_workspace(workspace)
    world = World(workspace, config, open_store(config.store))
    seed(world)
    world.clock.now = NOW
    return world


# ---------------------------------------------------------------------------------------- rollouts


class Driver:
    """Moves rollouts as the runner and the people around it would, at chosen instants."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.engines = {user: world.engine(user) for user in ("alice", "bob", "root")}

    def at(self, when: float) -> Driver:
        self.world.clock.now = when
        return self

    def start(self, rid: str, plan_name: str, user: str, reason: str) -> None:
        """Engine.start_rollout, minus the random id suffix."""
        engine = self.engines[user]
        now = engine.clock()
        d = new_rollout(engine.plan(plan_name), rid, engine.actor, now, reason)
        with engine.store.transaction() as tx:
            tx.insert_rollout(d.rollout)
            for rec in d.records:
                tx.append_audit(now, rec.actor, rec.action, f"rollout:{rid}", rec.data)
        self.evaluate(rid)  # the runner's first tick starts the first phase

    def evaluate(self, rid: str, **metrics: float) -> Rollout:
        """One runner tick for this rollout, observing `metrics` (gate name -> value) for its metric
        gates and guards: the real evaluator judges, the real state machine decides, Engine.commit
        writes it (audit, verdict history, flag changes and files)."""
        engine = self.engines["alice"]
        now = engine.clock()
        r = engine.rollout(rid)
        plan = engine.plan(r.plan)
        if r.state is RolloutState.PENDING:
            return engine.commit(plan, r, decide(plan, r, Evaluate(), now), now)
        phase = current_phase(plan, r)
        seen = {**HEALTHY, **metrics}
        memory = dict(r.memory)
        judged: dict[str, list] = {"gate": [], "guard": []}
        for role, specs in (("gate", phase.gates), ("guard", phase.guards)):
            for spec in specs:
                key = f"{role}:{spec.name}"
                obs = observation(spec, r, now, seen)
                verdict, mem = gate_logic.evaluate(spec, obs, memory.get(key, GateMemory()), now)
                memory[key] = replace(mem, last_checked=now)
                judged[role].append(verdict)
        event = Evaluate(tuple(judged["gate"]), tuple(judged["guard"]))
        return engine.commit(plan, r, decide(plan, replace(r, memory=memory), event, now), now)

    def approve(self, rid: str, user: str, reason: str) -> None:
        self.engines[user].approve(rid, reason)

    def set_flag(self, user: str, env: str, name: str, value: bool | int, reason: str) -> None:
        self.engines[user].set_flag(env, name, value, reason)


def observation(spec: GateSpec, r: Rollout, now: float, metrics: Mapping[str, float]) -> Observation:
    """What the observer would have seen for `spec` (Observer.observe's shapes, made-up numbers)."""
    if spec.kind == "metric":
        return Observation(value=metrics[spec.name], source=METRICS_URL, at=now)
    if spec.kind == "soak":
        return Observation(value=max(0.0, now - r.phase_started_at), source="clock", at=now)
    if spec.kind == "alarms":
        return Observation(value=0.0, source="alarms", at=now)
    raise AssertionError(f"the snapshot world has no {spec.kind} gates")


def seed(world: World) -> None:
    go = Driver(world)

    # Two hours ago: a cart release went all the way.
    s = T0
    go.at(s).start(CART_DONE, "cart", "bob", "release 42")
    go.at(s + 60).evaluate(CART_DONE)
    go.at(s + 601).evaluate(CART_DONE)  # soak over, gates pass: awaiting approval
    go.at(s + 900).approve(CART_DONE, "alice", "staging soak clean")
    for minutes in (5, 10, 15, 20, 25):  # 0 -> 5 -> 25 -> 50 -> 100, then complete
        go.at(s + 901 + minutes * 60).evaluate(CART_DONE)

    # Manual flag changes, with history.
    go.at(T0 + 1200).set_flag("bob", "production", "dark_mode_ui", True, "beta cohort asked for it")
    go.at(T0 + 1500).set_flag("bob", "staging", "phase_4_deployment", True, "staging soak of phase 4")
    go.at(T0 + 2000).set_flag("alice", "production", "dark_mode_ui", False, "contrast bug in checkout")
    go.at(T0 + 2100).set_flag("alice", "production", "llm_integration_enabled", False, "cost spike")

    # The pay canary breached its error-rate guard twice in a row at 10%: rolled back.
    p = T0 + 2400
    go.at(p).start(PAY, "pay", "bob", "gateway v2")
    go.at(p + 121).evaluate(PAY)  # 0 -> 10
    go.at(p + 150).evaluate(PAY, error_rate=0.034)
    go.at(p + 160).evaluate(PAY, error_rate=0.041)

    # The search release passed staging and has one of its two approvals.
    q = T0 + 4500
    go.at(q).start(SEARCH, "search", "bob", "ranker v2")
    go.at(q + 601).evaluate(SEARCH, latency_ms=142.0)
    go.at(q + 700).approve(SEARCH, "root", "latency fine in staging")

    # The current cart canary: approved by alice, now at 25% with its error-rate guard failing.
    c = T0 + 5400
    go.at(c).start(CART, "cart", "bob", "release 43")
    go.at(c + 601).evaluate(CART)
    go.at(c + 700).approve(CART, "alice", "soak clean, error rate 0.2%")
    go.at(c + 1001).evaluate(CART)  # 0 -> 5
    go.at(c + 1301).evaluate(CART)  # 5 -> 25
    go.at(NOW - 5).evaluate(CART, error_rate=0.022)

    # Bob acknowledged the queue alarm a few seconds ago (it fires from NOW - 9, see scrape()).
    go.at(NOW - 5).engines["bob"].ack_alarm("QueueBacklog", "draining: consumer restarted")

    # Planned flag changes: dark mode back on this evening, the payments gateway retried as a slow
    # ramp, and one in staging (not listed on production's schedule screen).
    go.at(NOW - 600).engines["bob"].schedule_flag(
        "production", "dark_mode_ui", [(NOW + 2700, True)], "contrast fix shipped; back on after peak"
    )
    go.at(NOW - 300).engines["alice"].schedule_flag(
        "production", "new_pay", ramp(NOW + 600, 0, 50, 7200, 4), "retry gateway v2 slowly after the fix"
    )
    go.at(NOW - 120).engines["bob"].schedule_flag(
        "staging", "dark_mode_ui", [(NOW + 900, True)], "staging first"
    )


# ---------------------------------------------------------------------------------------- metrics

LATENCY_WAVE = (0.172, 0.181, 0.190, 0.184, 0.176, 0.169, 0.175, 0.188)


def production_samples(i: int) -> list[Sample]:
    """Scrape `i` of the last minute: 0.4% errors, 2.2% over the last 20 s; the queue backs up over
    the last 40 s. Integer counters so every rate is exact."""
    errors = 2 * min(i, 40) + 11 * max(0, i - 40)
    return [
        Sample("requests_total", (), 50_000.0 + 500.0 * i),
        Sample("errors_total", (), 200.0 + errors),
        Sample("latency_seconds", (), LATENCY_WAVE[i % len(LATENCY_WAVE)]),
        Sample("queue_depth", (), 40.0 if i < 20 else 140.0 + i),
        Sample("cache_hit_ratio", (), 0.93 - 0.01 * (i % 3)),
    ]


def staging_samples(i: int) -> list[Sample]:
    return [
        Sample("requests_total", (), 9_000.0 + 50.0 * i),
        Sample("errors_total", (), 3.0),
        Sample("latency_seconds", (), 0.138 + 0.002 * (i % 4)),
    ]


def record_scrapes(session: Session, clock: Clock) -> None:
    """The runner's read side for the last minute, ending at NOW: record each scrape into the session's
    own ScrapeSources (as ScrapeSource.refresh does after a download) and evaluate the alarm rules."""
    observer = session.observer
    sources = {"production": production_samples, "staging": staging_samples}
    for i in range(SCRAPES):
        at = NOW - (SCRAPES - 1) + i
        for env, samples in sources.items():
            src = observer.source(env)
            assert src is not None, env
            src.record(samples(i), at)
            src.last_refresh, src.last_error = at, None
        observer.evaluate_alarms(at)
    clock.now = NOW
