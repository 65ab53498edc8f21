"""The `blue_green` strategy: start the new colour beside the live one (on its own ports), check its
health and smoke test, switch traffic with the switch command, then keep the old colour for
`keep_old` while the new one is watched; a failure there switches traffic back and removes the new
colour. The old colour goes only when the delay is over. Traffic never moves to a colour that has not
passed its checks.

What the engine adds through `Hooks` (a plan phase's deploy, deploy/aimed.py):
- before the switch (`before_switch`): the phase's checks that can be aimed at the new colour (health
  on its port, smoke commands told its colour and port, metric queries with `{colour}` / `{port}`);
  one failing removes the new colour and traffic stays where it was (`gates-COLOUR` step, exit 4);
- during `keep_old` (`watch`): the phase's guards (metric guards aimed at the new colour or reading
  the live traffic, alarms, health, smoke) on their interval, beside the service's health check
  (`failure_limit` failures in a row); a guard that breaches switches traffic back and removes the new
  colour (exit 4).
The rest (soak, approvals, checklists, and the gates that read the live traffic) the runner checks
once the deploy is done, aimed at the colour that then takes traffic."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

from . import journal as j
from .checks import probe_http, run_command
from .model import (
    LABEL_COLOUR,
    BlueGreenSpec,
    DeployError,
    FlagSwitch,
    GuardWatch,
    Outcome,
    ServiceSpec,
)
from .recreate import Recreate

BG_STARTED = "bg_started"
BG_SWITCHED = "bg_switched"
UNFINISHED = (BG_STARTED, BG_SWITCHED)


class BlueGreen(Recreate):
    @property
    def bg(self) -> BlueGreenSpec:
        if self.spec.blue_green is None:
            raise DeployError(
                f"service {self.spec.name}: blue_green needs a blue_green: section (ports, switch)"
            )
        return self.spec.blue_green

    def coloured(self, colour: str) -> ServiceSpec:
        return replace(
            self.spec, ports=self.bg.ports(colour), labels={**self.spec.labels, LABEL_COLOUR: colour}
        )

    def switch(self, colour: str, name: str) -> tuple[bool, str]:
        t = time.monotonic()
        ports = self.bg.ports(colour)
        how = self.bg.switch
        if isinstance(how, FlagSwitch):
            on = colour == "green"
            where = f"flag {how.environment}/{how.flag} {'on' if on else 'off'}"
            try:
                if self.hooks.set_flag is None:
                    raise DeployError("a flag switch needs the engine (the store and flag files)")
                self.hooks.set_flag(how, on, f"blue-green deploy of {self.spec.name}: traffic to {colour}")
            except Exception as exc:  # noqa: BLE001 - any refusal is the switch failing, said
                detail = f"{where}: {type(exc).__name__}: {exc}"
                self.step(name, t, False, detail)
                return False, detail
            self.step(name, t, True, f"traffic to {colour} ({where})")
            return True, ""
        env = {
            "OPSCONSOLE_SERVICE": self.spec.name,
            "OPSCONSOLE_COLOUR": colour,
            "OPSCONSOLE_PORTS": ",".join(map(str, ports)),
            "OPSCONSOLE_UPSTREAMS": " ".join(f"127.0.0.1:{p}" for p in ports),
        }
        ok, detail = run_command(how, env)
        self.step(name, t, ok, detail or f"traffic to {colour}")
        return ok, detail

    def of_colour(self, colour: str | None) -> list[Any]:
        return [c for c in self.target.managed(self.spec.name) if c.labels.get(LABEL_COLOUR) == colour]

    def remove_all(self, containers: list[Any]) -> None:
        for c in containers:
            self.target.remove(c, self.spec.stop_timeout)

    def begin_colours(self, ref: str, new_id: str, strategy: str) -> tuple[str, str | None, str]:
        """(deploy id, the live colour, the new one) of a deploy beside the live colour (blue_green,
        a Docker canary): the running image kept as the rollback, an earlier attempt's new colour
        (never live) removed, and the journal started."""
        spec, target = self.spec, self.target
        deploy_id = f"{int(time.time())}-{uuid.uuid4().hex[:6]}"
        current = target.managed(spec.name)
        running = [c for c in current if c.status == "running"]
        live = next((c.labels.get(LABEL_COLOUR) for c in running if c.labels.get(LABEL_COLOUR)), None)
        new = "green" if live == "blue" else "blue"
        previous, _ = self.keep_rollback(running[0].image.id if running else None)
        self.remove_all([c for c in current if c.labels.get(LABEL_COLOUR) == new])
        self.journal.write(
            id=deploy_id,
            image=ref,
            new_image_id=new_id,
            previous_image_id=previous,
            strategy=strategy,
            live=live,
            new=new,
            phase=BG_STARTED,
        )
        return deploy_id, live, new

    def run(self, ref: str, new_id: str) -> None:
        spec, target = self.spec, self.target
        self.bg  # noqa: B018 - refuses a service without a blue_green: section before anything moves
        deploy_id, live, new = self.begin_colours(ref, new_id, "blue_green")
        colour_spec = self.coloured(new)
        saved, self.spec = self.spec, colour_spec
        try:
            error = self.start_and_check(ref, deploy_id, f"start-{new}", f"health-{new}", stoppable=True)
            why = self.stop() if error is None else None
            if why:
                error = f"stopped before the switch: {why}"
            if error is None and spec.smoke is not None:
                t = time.monotonic()
                smoke_env = {"OPSCONSOLE_SERVICE": spec.name, "OPSCONSOLE_IMAGE": ref}
                smoke_env["OPSCONSOLE_PORT"] = str(colour_spec.port(0) or "")
                smoke_env["OPSCONSOLE_COLOUR"] = new
                ok, detail = run_command(spec.smoke, smoke_env)
                self.step("smoke", t, ok, detail)
                error = None if ok else f"smoke test failed: {self.scrub(detail)}"
            if error is None and self.hooks.before_switch is not None:
                # The phase's checks, aimed at the new colour, before any traffic moves to it.
                t = time.monotonic()
                ok, detail = self.hooks.before_switch(new, self.bg.ports(new), live)
                self.step(f"gates-{new}", t, ok, detail)
                error = None if ok else f"gates failed on {new} before the switch: {self.scrub(detail)}"
                why = self.stop() if error is None else None  # the checks may have taken a while
                if why:
                    error = f"stopped before the switch: {why}"
        finally:
            self.spec = saved
        if error is not None:
            self.remove_all(self.of_colour(new))
            # The live colour was never touched: a failed check of the new one is the seed's "rolled
            # back" (4); a stop asked for before the switch changed nothing (3).
            stopped = error.startswith("stopped")
            outcome = Outcome.ROLLED_BACK if live and not stopped else Outcome.DEPLOY_FAILED
            self.finish(outcome, f"{error}; traffic stayed on {live or 'nothing'}", live)
            return
        # Written before the switch runs: a deploy cut short inside it is resumed by switching back.
        self.journal.write(phase=BG_SWITCHED, switched_at=time.time())
        ok, detail = self.switch(new, f"switch-{new}")
        if not ok:
            back = self.switch(live, f"switch-{live}")[0] if live else True
            self.remove_all(self.of_colour(new))
            outcome = Outcome.ROLLED_BACK if live and back else Outcome.DEPLOY_FAILED
            self.finish(
                outcome,
                f"switch to {new} failed: {self.scrub(detail)}; traffic on {live or 'nothing'}",
                live if back else None,
            )
            return
        failed = self.watch(new)
        if failed is not None and live:
            t = time.monotonic()
            back, detail = self.switch(live, f"switch-back-{live}")
            self.report.steps[-1].seconds = time.monotonic() - t
            self.remove_all(self.of_colour(new))
            if back:
                self.finish(Outcome.ROLLED_BACK, f"{failed}; traffic switched back to {live}", live)
            else:
                self.finish(
                    Outcome.DEPLOY_FAILED, f"{failed}; SWITCH BACK to {live} FAILED: {self.scrub(detail)}"
                )
            return
        old = [c for c in target.managed(spec.name) if c.labels.get(LABEL_COLOUR) != new]
        t = time.monotonic()
        self.remove_all(old)
        self.step(f"remove-{live or 'old'}", t, True, f"{len(old)} container(s) removed")
        if failed is not None:
            self.finish(Outcome.DEPLOY_FAILED, f"{failed}; no previous colour to switch back to", new)
            return
        self.finish(Outcome.OK, f"{spec.name} runs {ref}, traffic on {new}", new)

    def watch(self, colour: str) -> str | None:
        """Watch the new colour for `keep_old`: its health, and the phase's guards when the engine
        watches them (Hooks.watch). None, or why it failed."""
        ports = self.bg.ports(colour)
        guards = self.hooks.watch(colour, ports) if self.hooks.watch is not None else None
        t = time.monotonic()
        try:
            error = self._watch(colour, ports, guards, t)
        finally:
            if guards is not None:
                guards.close()
        if error is None:
            self.step(f"watch-{colour}", t, True, f"healthy for {self.bg.keep_old:g}s")
        else:
            self.step(f"watch-{colour}", t, False, error)
        return error

    def _watch(self, colour: str, ports: tuple[int, ...], guards: GuardWatch | None, t: float) -> str | None:
        spec, health = self.spec, self.spec.health
        failures = 0
        while time.monotonic() - t < self.bg.keep_old:
            why = self.stop()
            if why:
                return f"stopped while {colour} was watched: {why}"
            errors = []
            if health.url:
                for replica in range(spec.replicas):
                    url = health.url.replace("{port}", str(ports[replica] if replica < len(ports) else ""))
                    problem = probe_http(url, health.timeout)
                    if problem:
                        errors.append(problem)
            else:
                for c in self.of_colour(colour):
                    state = self.target.state(c)
                    if (
                        state.get("Status") != "running"
                        or (state.get("Health") or {}).get("Status") == "unhealthy"
                    ):
                        errors.append(f"{c.name} {state.get('Status')}")
            failures = failures + 1 if errors else 0
            if failures >= health.failure_limit:
                return (
                    f"{colour} failed after the switch: {failures} failed checks in a row, last: {errors[-1]}"
                )
            pause = min(health.interval, max(0.0, self.bg.keep_old - (time.monotonic() - t)))
            if guards is None:
                time.sleep(pause)
                continue
            breached = guards.wait(pause)  # returns at once when a guard breaches
            if breached:
                return f"{colour} failed after the switch: {breached}"
        return None

    def finish(self, outcome: Outcome, message: str, colour: str | None = None) -> None:
        # `serving`: the colour taking traffic at the end (a failure with no old colour to go back to
        # leaves the new one serving), which says what share the new version has.
        self.journal.write(phase=j.DONE, outcome=outcome.name.lower(), serving=colour)
        self.report.outcome = outcome
        self.report.message = message
        self.report.colour = colour


def resume(strategy: BlueGreen, state: dict[str, Any]) -> str:
    """Finish a blue-green deploy cut short: before the switch, remove the new colour; from the moment
    the switch was about to run (the old colour still kept), switch back, then remove the new colour."""
    live, new = state.get("live"), state.get("new")
    strategy.journal.data = dict(state)
    if state.get("phase") == BG_SWITCHED and live:
        ok, detail = strategy.switch(str(live), f"switch-back-{live}")
        if not ok:
            raise DeployError(f"resume: switch back to {live} failed: {detail}")
    strategy.remove_all(strategy.of_colour(str(new)))
    strategy.journal.write(phase=j.DONE, outcome="rolled_back")
    return f"traffic on {live or 'nothing'}, {new} removed"
