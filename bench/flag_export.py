"""Flag export: one environment's 10,000 flags from the store to all three files (seed-schema JSON, flagd,
.env), as every flag change does. Target: median <= 200 ms.

The flags mix boolean, percentage and variant flags; one in ten has targeting lists, one in ten
depends on a group leader, and a third have a stored value. The figure is `Engine.export_flags` for
production after one stored value changed (what a flag change costs): the export lock, the kill
switch's state, the stored values, resolve(), then render and encode (the engine keeps each flag's
encoded lines and encodes again only the flags whose state or definition changed) and write (atomic,
fsynced) each file. `export_cold_ms` is a newly opened engine's first export, every flag encoded. The
split comes from the same steps run on their own (the render + encode steps without reuse, and
`render_encode_reused`: all three files from the exporter with nothing changed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from common import ACTOR, KILL_FLAGS_OFF, KILL_FLAGS_ON, emit, summary, temp_dir

from opsconsole.engine.config import load_config
from opsconsole.engine.core import Engine
from opsconsole.engine.flags import resolve
from opsconsole.engine.fsutil import write_atomic
from opsconsole.engine.model import Config
from opsconsole.engine.targets import dotenv, flagd, flagfile
from opsconsole.engine.targets.exporter import Exporter

FLAGS = 10_000
RUNS = 30
TARGET_MEDIAN_MS = 200.0
TEAMS = ("checkout", "payments", "search", "growth", "platform", "mobile", "data", "infra")


def flags_yaml() -> str:
    """The kill switch's own flags, then generated ones: six in ten boolean, a quarter percentages,
    the rest variant flags; targeting on one in ten, a parent on one in ten."""
    lines = ["flags:"]
    for name in KILL_FLAGS_ON + KILL_FLAGS_OFF:
        lines += [f"  {name}:", "    default: false", "    risk: high"]
    for i in range(FLAGS - len(KILL_FLAGS_ON + KILL_FLAGS_OFF)):
        team = TEAMS[i % len(TEAMS)]
        lines += [
            f"  {team}_flag_{i:05d}:",
            f"    description: {team} flag {i} (generated)",
            f"    owner: {team}",
        ]
        kind = i % 20
        if kind < 12:
            lines += [f"    default: {'true' if i % 3 else 'false'}"]
        elif kind < 17:
            lines += ["    type: percentage", f"    default: {i % 101}"]
        else:
            lines += ["    type: variant", f"    default: {'true' if i % 2 else 'false'}"]
            lines += ["    variants: {control: 50, blue: 30, green: 20}"]
        if i % 10 == 7:
            users = ", ".join(f"user-{i + k}" for k in range(5))
            lines += [f"    targeting: {{users: [{users}], tenants: [acme, t-{i % 13}], regions: [eu-west]}}"]
        if i % 10 == 3 and i >= 50:
            leader = i - i % 50
            lines += [f"    depends_on: {TEAMS[leader % len(TEAMS)]}_flag_{leader:05d}"]
    return "\n".join(lines) + "\n"


def build(root: Path) -> tuple[Path, Config]:
    ws = root / "ws"
    ws.mkdir(parents=True)
    (root / "flags.yaml").write_text(flags_yaml())
    envs = "".join(
        f"  {env}:\n"
        f'    flags: {{kind: file, path: "${{WORKSPACE}}/flags/{env}.json",\n'
        f'            flagd: "${{WORKSPACE}}/flags/{env}.flagd.json", dotenv: "${{WORKSPACE}}/flags/{env}.env"}}\n'
        for env in ("staging", "production")
    )
    (ws / "opsconsole.yaml").write_text(
        f"roles:\n  default: viewer\n  users: {{{ACTOR.user}: admin}}\n"
        f"environments:\n{envs}"
        f'flags: "{root / "flags.yaml"}"\n'
        f"kill_switch:\n  flags_off: [{', '.join(KILL_FLAGS_OFF)}]\n  flags_on: [{', '.join(KILL_FLAGS_ON)}]\n"
    )
    config = load_config(ws / "opsconsole.yaml", {"WORKSPACE": str(ws)})
    assert len(config.flags) == FLAGS, len(config.flags)
    return ws, config


def store_values(engine: Engine) -> None:
    now = time.time()
    with engine.store.transaction() as tx:
        for env in engine.config.environments:
            for i, (name, defn) in enumerate(engine.config.flags.items()):
                if i % 3 == 0:
                    value = (i * 7) % 101 if defn.type == "percentage" else not defn.default
                    tx.set_flag(env, name, value, ACTOR, "benchmark setup", now)


def read_stored(engine: Engine) -> dict[str, object]:
    with engine.store.read() as tx:
        return {f.name: f.value for f in tx.list_flags("production")}


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    with temp_dir("opsconsole-bench-export-") as root:
        ws, config = build(root)
        engine = Engine(config, ws, ACTOR, environ={})
        store_values(engine)
        # Cold: a newly opened engine's first export encodes every flag (the console's first export).
        cold = []
        for _ in range(5):
            fresh = Engine(config, ws, ACTOR, environ={})
            cold += timed(lambda: fresh.export_flags(["production"]), 1)  # noqa: B023 - called at once
            fresh.close()
        engine.export_flags(["production"])  # warm: first-use imports and caches are not the figure
        # The figure: what a flag change costs. Each run follows a change of one stored value
        # (untimed), so the export encodes that flag again and reuses the rest.
        names = [n for n, d in config.flags.items() if d.type == "boolean"][:RUNS]
        export = []
        for i, name in enumerate(names):
            with engine.store.transaction() as tx:
                tx.set_flag("production", name, bool(i % 2), ACTOR, "benchmark change", time.time())
            export += timed(lambda: engine.export_flags(["production"]), 1)

        flags_dir = ws / "flags"
        sizes = {p.name: p.stat().st_size for p in sorted(flags_dir.glob("production.*"))}
        doc = json.loads((flags_dir / "production.flagd.json").read_bytes())
        env_lines = (flags_dir / "production.env").read_text().count("\n")
        assert len(doc["flags"]) == FLAGS and env_lines == FLAGS + 2, (len(doc["flags"]), env_lines)

        # The split: each step on its own, same inputs.
        defs = config.flags
        stored = read_stored(engine)
        states = resolve(defs, stored, kill=None, environ={}, environment="production")
        seed = flagfile.encode(flagfile.render("production", states, defs, emergency=False, at=0.0))
        flagd_bytes = flagd.encode(flagd.render("production", states, defs, emergency=False, at=0.0))
        env_bytes = dotenv.render("production", states, emergency=False, at=0.0).encode()
        reuse = Exporter()
        reuse.render("production", states, defs, emergency=False, at=0.0, with_flagd=True, with_dotenv=True)
        split = {
            "store_read": timed(lambda: read_stored(engine), 10),
            "resolve": timed(
                lambda: resolve(defs, stored, kill=None, environ={}, environment="production"), 10
            ),
            "seed_json_render_encode": timed(
                lambda: flagfile.encode(flagfile.render("production", states, defs, emergency=False, at=0.0)),
                10,
            ),
            "flagd_render_encode": timed(
                lambda: flagd.encode(flagd.render("production", states, defs, emergency=False, at=0.0)), 10
            ),
            "render_encode_reused": timed(
                lambda: reuse.render(
                    "production", states, defs, emergency=False, at=0.0, with_flagd=True, with_dotenv=True
                ),
                10,
            ),
            "dotenv_render": timed(lambda: dotenv.render("production", states, emergency=False, at=0.0), 10),
            "write_three_files": timed(  # already encoded: atomic replace, file and directory fsynced
                lambda: (
                    write_atomic(root / "w.json", seed),
                    write_atomic(root / "w.flagd.json", flagd_bytes),
                    write_atomic(root / "w.env", env_bytes),
                ),
                10,
            ),
        }
        engine.close()
    figures = {"export_ms": summary(export), "export_cold_ms": summary(cold)} | {
        f"{k}_ms": summary(v) for k, v in split.items()
    }
    median = figures["export_ms"]["p50"]
    emit(
        "flag_export",
        target=f"median <= {TARGET_MEDIAN_MS:g} ms",
        ok=median <= TARGET_MEDIAN_MS,
        figures=figures,
        setup={
            "runs": RUNS,
            "flags": FLAGS,
            "mix": "60% boolean, 25% percentage, 15% variant; 10% with targeting, 10% with a parent; "
            "a third stored",
            "file_bytes": sizes,
            "figure": "Engine.export_flags(['production']) after one stored value changed: lock, kill "
            "state, stored values, resolve, render + encode (the changed flag; the rest reused) + atomic "
            "fsynced write of the seed JSON, flagd and .env files; export_cold_ms: a newly opened "
            "engine's first export, every flag encoded (no target)",
        },
    )


if __name__ == "__main__":
    main()
