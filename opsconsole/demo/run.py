"""`opsconsole demo`: a real rollout on this machine with nothing else installed.

It starts the sample service and a bounded traffic generator on 127.0.0.1, writes the demo's
configuration and its plan (with the service's real port pinned) into the workspace — so later
commands on that workspace (`status`, `gates check`, `kill`, `report`) use it without flags or
variables — starts the demo plan, or resumes the one a crashed demo left active, and runs the
engine's runner until the rollout ends. `--auto-approve` approves as the actor `demo`, recorded so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from ..engine import (
    Actor,
    Engine,
    Rejected,
    Rollout,
    RolloutState,
    Runner,
    current_actor,
    load_config,
    write_atomic,
)
from ..shipped import shipped
from ..textsafe import visible
from .agent import TOKEN_ENV as AGENT_TOKEN_ENV
from .agent import DemoAgent
from .service import DemoService
from .traffic import TrafficGenerator

DEMO_PLAN = "demo"
CANARY_FLAG = "new_checkout"
DEMO_ACTOR = Actor("demo", "demo --auto-approve")
TERMINAL = {RolloutState.COMPLETED, RolloutState.ABORTED, RolloutState.ROLLED_BACK}


def config_dir() -> Path:
    """The shipped config/ directory: the current one when run from a checkout, else the package's."""
    here = Path("config")
    if (here / "demo.yaml").exists():
        return here.absolute()
    return shipped("config")


PORT_VARIABLES = ("DEMO_PORT", "OPSCONSOLE_DEMO_PORT")
"""Variables that name the sample service's port in the demo's config and the shipped plans."""
_PORT_REFERENCE = re.compile(r"\$\{(?:" + "|".join(PORT_VARIABLES) + r")(?::-[^}]*)?\}")
_SHIPPED_PLANS = re.compile(r"\$\{DEMO_CONFIG_DIR\}/plans/([^\"'\s\]]+)")


_AGENT_PORT_REFERENCE = re.compile(r"\$\{DEMO_AGENT_PORT(?::-[^}]*)?\}")


def pin_port(text: str, port: int, agent_port: int | None = None) -> str:
    """`text` with every reference to the service's port (defaults included) replaced by `port`,
    and to the improvement agent's by `agent_port`."""
    text = _PORT_REFERENCE.sub(str(port), text)
    return text if agent_port is None else _AGENT_PORT_REFERENCE.sub(str(agent_port), text)


def write_demo_config(
    workspace: Path, port: int, template: Path | None = None, agent_port: int | None = None
) -> Path:
    """The demo's configuration in the workspace, its ports pinned: `status` or `gates check` from
    another shell, which has no DEMO_PORT, must probe the service this demo started, not a default.
    The shipped plans it names are copied beside it with their ports pinned too."""
    cfg_dir = config_dir()
    text = pin_port((template or cfg_dir / "demo.yaml").read_text(), port, agent_port)
    plans_dir = workspace / "plans"

    def copy_plans(m: re.Match[str]) -> str:
        pattern = m.group(1)
        for plan in sorted((cfg_dir / "plans").glob(pattern)):
            plans_dir.mkdir(parents=True, exist_ok=True)
            # The copy lives elsewhere: its own directory is still the shipped one.
            text = pin_port(plan.read_text(), port).replace("${CONFIG_DIR}", str(plan.parent))
            write_atomic(plans_dir / plan.name, text.encode())
        return f"{plans_dir}/{pattern}"

    text = _SHIPPED_PLANS.sub(copy_plans, text).replace("${DEMO_CONFIG_DIR}", str(cfg_dir))
    header = (
        f"# Written by `opsconsole demo` at {time.strftime('%Y-%m-%d %H:%M:%S')}: the demo's config, "
        f"the service's port ({port}) pinned here and in the plan copies in {plans_dir}"
        + (f", the agent's ({agent_port}) here" if agent_port is not None else "")
        + ".\n"
    )
    path = workspace / "opsconsole.yaml"
    write_atomic(path, (header + text).encode())
    return path


class DemoEnvironment:
    """The sample service, its traffic and its improvement agent, started and stopped together."""

    def __init__(
        self, workspace: Path, port: int = 0, fault: str = "none", rps: float = 40.0, seconds: float = 600
    ):
        self.workspace = workspace
        self.service = DemoService(
            workspace / "flags" / "production.json", flag=CANARY_FLAG, port=port, fault=fault
        )
        self.rps = rps
        self.seconds = seconds
        self.traffic: TrafficGenerator | None = None
        self.agent: DemoAgent | None = None

    def start(self) -> None:
        self.service.start()
        os.environ["DEMO_PORT"] = str(self.service.port)
        # The agent binds its port now and loads the MCP SDK in its own thread: the first frame does
        # not wait for it. Its token is only ever in this process's environment.
        self.agent = DemoAgent(self.service).start()
        os.environ[AGENT_TOKEN_ENV] = self.agent.token
        self.traffic = TrafficGenerator(
            self.service.url, rps=self.rps, concurrency=32, max_seconds=self.seconds
        )
        self.traffic.start()

    @property
    def agent_port(self) -> int | None:
        return self.agent.port if self.agent is not None else None

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
        if self.traffic is not None:
            self.traffic.stop()
        self.service.stop()


def open_demo_engine(
    workspace: Path, port: int, template: Path | None = None, agent_port: int | None = None
) -> Engine:
    path = write_demo_config(workspace, port, template, agent_port)
    config = load_config(path, {"WORKSPACE": str(workspace)})
    return Engine(config, workspace, current_actor())


async def drive(
    engine: Engine, rollout_id: str, *, auto_approve: bool, timeout: float, log: Any
) -> RolloutState | None:
    """Run the runner until the rollout ends (or the timeout); approve as `demo` when asked to."""
    approver = Engine(engine.config, engine.workspace, DEMO_ACTOR, store=engine.store)
    runner = Runner(engine)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    t0 = time.monotonic()
    seen = None
    final = None
    try:
        while time.monotonic() - t0 < timeout and not task.done():
            r = engine.rollout(rollout_id)
            plan = engine.plan(r.plan)
            key = (r.state, r.phase_index, r.step_index)
            if key != seen:
                seen = key
                phase = plan.phases[min(r.phase_index, len(plan.phases) - 1)]
                pct = phase.steps[min(r.step_index, len(phase.steps) - 1)]
                log(f"[{time.monotonic() - t0:6.1f}s] {r.state:<18} {phase.name}@{pct}%  {r.reason}")
            if r.state in TERMINAL:
                final = r.state
                break
            if auto_approve and r.state is RolloutState.AWAITING_APPROVAL:
                try:
                    approver.approve(rollout_id, "auto-approved by `opsconsole demo --auto-approve`")
                except Rejected as exc:
                    log(f"auto-approve refused: {exc}")
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
    return final


def own_active_rollout(engine: Engine) -> Rollout | None:
    """The demo plan's active rollout in this workspace (the newest), left by a demo that died."""
    return next((r for r in engine.rollouts(active_only=True) if r.plan == DEMO_PLAN), None)


def resume_or_start(engine: Engine, reason: str, log: Any) -> Rollout | None:
    """The demo's rollout: the one a crashed demo left active, else a new one (None, said why, when
    the engine refuses: the kill switch is engaged, or another rollout drives the canary flag)."""
    r = own_active_rollout(engine)
    if r is not None:
        log(f"resuming rollout {r.id} ({r.state}, left active by an earlier demo)")
        return r
    try:
        return engine.start_rollout(DEMO_PLAN, reason)
    except Rejected as exc:
        log(f"refused: {exc}")
        return None


def run_demo(args: argparse.Namespace) -> int:
    if not args.headless:
        return run_demo_console(args)
    workspace = Path(args.workspace or ".opsconsole").absolute()
    workspace.mkdir(parents=True, exist_ok=True)
    env = DemoEnvironment(workspace, args.port, args.fault, args.rps, args.timeout + 30)
    env.start()

    def log(line: str) -> None:
        print(visible(line), file=sys.stderr, flush=True)

    try:
        engine = open_demo_engine(
            workspace, env.service.port, Path(args.config) if args.config else None, env.agent_port
        )
        if args.improvements:
            return run_improvements(engine, env, args, log)
        r = resume_or_start(engine, f"demo run, fault {args.fault}", log)
        if r is None:
            return 1
        log(f"demo service on {env.service.url}, workspace {workspace}, rollout {r.id}")
        final = asyncio.run(
            drive(engine, r.id, auto_approve=args.auto_approve, timeout=args.timeout, log=log)
        )
        report = engine.report(r.id).to_dict()
        flag_file = Path(engine.config.environments["production"].flags.path)  # type: ignore[union-attr]
        doc = json.loads(flag_file.read_text()) if flag_file.exists() else {}
        assert env.traffic is not None
        out = {
            **report,
            "fault": args.fault,
            "canary_flag": {
                "name": CANARY_FLAG,
                "file": str(flag_file),
                **doc.get("flags", {}).get(CANARY_FLAG, {}),
            },
            "traffic": {
                "sent": env.traffic.sent,
                "failed": env.traffic.failed,
                "by_version": dict(env.traffic.by_version),
            },
            "workspace": str(workspace),
        }
        del out["timeline"]
        print(json.dumps(out, indent=2, default=str))
    finally:
        env.stop()
    if final is None:
        log(f"timed out after {args.timeout:g}s")
        return 3
    expected = RolloutState.COMPLETED if args.fault == "none" else RolloutState.ROLLED_BACK
    return 0 if final is expected else 1


IMPROVEMENTS_ENV = "production"


def run_improvements(engine: Engine, env: DemoEnvironment, args: argparse.Namespace, log: Any) -> int:
    """`demo --headless --improvements`: the runner syncs the demo agent's proposals, every one is
    approved as `demo` (those the rules refuse stay refused: the demo actor has no override), and it
    ends once one improvement was kept and one rolled back automatically. Prints each improvement's
    record as JSON; exit 0 then, 1 if the queue ended otherwise, 3 on timeout."""
    if IMPROVEMENTS_ENV not in engine.config.improvements:
        log(f"the demo configuration has no improvements: section for {IMPROVEMENTS_ENV}")
        return 2
    if env.agent is not None and not env.agent.wait_ready(30.0):
        log("the demo agent did not start within 30 s")
        return 3
    final = asyncio.run(_drive_improvements(engine, args.auto_approve, args.timeout, log))
    items = engine.improvements(IMPROVEMENTS_ENV)
    print(
        json.dumps(
            {
                "environment": IMPROVEMENTS_ENV,
                "workspace": str(engine.workspace),
                "agent": env.agent.url if env.agent is not None else None,
                "improvements": [
                    {
                        "id": i.id,
                        "title": i.proposal.title,
                        "status": str(i.status),
                        "metric": i.metric,
                        "baseline": i.baseline,
                        "observed": i.observed,
                        "reviewer": i.reviewer,
                        "reason": i.evidence or i.reason or i.error,
                    }
                    for i in items
                ],
            },
            indent=2,
        )
    )
    if final is None:
        log(f"timed out after {args.timeout:g}s")
        return 3
    return 0 if final else 1


def _improvements_done(items: list[Any]) -> bool | None:
    """True once one was kept and one rolled back (nobody but the engine rolls back in this demo:
    a rollback here is the automatic one); None while that may still come."""
    statuses = {str(i.status) for i in items}
    return True if {"kept", "rolled_back"} <= statuses else None


async def _drive_improvements(engine: Engine, auto_approve: bool, timeout: float, log: Any) -> bool | None:
    approver = Engine(engine.config, engine.workspace, DEMO_ACTOR, store=engine.store)
    runner = Runner(engine)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    t0 = time.monotonic()
    seen: dict[str, str] = {}
    refused: set[str] = set()
    try:
        while time.monotonic() - t0 < timeout and not task.done():
            items = await asyncio.to_thread(engine.improvements, IMPROVEMENTS_ENV)
            for i in items:
                if seen.get(i.id) != i.status:
                    seen[i.id] = str(i.status)
                    why = i.evidence or i.error or i.reason
                    log(f"[{time.monotonic() - t0:6.1f}s] {i.id:<28} {i.status:<11} {why}")
            waiting = [i.id for i in items if i.status == "proposed" and i.id not in refused]
            if auto_approve and waiting:
                try:
                    await asyncio.to_thread(
                        approver.approve_improvements,
                        IMPROVEMENTS_ENV,
                        waiting,
                        "auto-approved by `opsconsole demo --auto-approve`",
                    )
                except Rejected as exc:
                    log(f"auto-approve refused: {exc}")
                    refused.update(waiting)
            done = _improvements_done(items)
            if done is not None:
                return done
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await task
    return None


def run_demo_console(args: argparse.Namespace) -> int:
    """The demo in the console: the runner runs inside the console's event loop; you approve."""
    from ..tui.app import OpsConsoleApp
    from ..tui.run import run_app

    workspace = Path(args.workspace or ".opsconsole").absolute()
    workspace.mkdir(parents=True, exist_ok=True)
    env = DemoEnvironment(workspace, args.port, args.fault, args.rps, 24 * 3600)
    env.start()
    try:
        engine = open_demo_engine(
            workspace, env.service.port, Path(args.config) if args.config else None, env.agent_port
        )
        if own_active_rollout(engine) is None and not engine.kill_state().engaged:
            # The demo starts its rollout as `demo`, so the person at the console can be its approver.
            starter = Engine(engine.config, workspace, DEMO_ACTOR, store=engine.store)
            with contextlib.suppress(Rejected):  # another rollout drives the flag: the console shows it
                starter.start_rollout(DEMO_PLAN, f"demo run, fault {args.fault}")
        code = run_app(OpsConsoleApp(engine, theme=args.theme, environment=args.env))
    finally:
        env.stop()
    return code
