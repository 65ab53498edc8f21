"""The flagd and .env flag exports: what they render, what flagd-core makes of the flagd file, and the
kill switch's store-free patch over good, missing and garbage files. Real files in a temporary directory."""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from opsconsole.engine.config import ConfigError, load_config
from opsconsole.engine.flags import VARIANT, EvalContext, FlagState, flagd_evaluate, resolve
from opsconsole.engine.fsutil import write_atomic
from opsconsole.engine.model import FlagDef, KillSwitchSpec, Targeting
from opsconsole.engine.targets import dotenv, flagd


def patch_for_kill(target: Any, path: Path, *args: Any, **kwargs: Any) -> None:
    """What the kill switch does to one file: `target`'s kill_patch written atomically."""
    write_atomic(Path(path), target.kill_patch(path, *args, **kwargs))


AT = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z
WHO = Targeting(frozenset({"u1", "u2"}), frozenset({"acme"}), frozenset({"eu"}))
SPLIT = (("control", 50), ("blue", 30), ("green", 20))

DEFS = {
    d.name: d
    for d in [
        FlagDef("phase_4_deployment", "boolean", False, risk="high"),
        FlagDef("aatc_system_enabled", "boolean", True, depends_on="phase_4_deployment"),
        FlagDef("aatc_fast_path", "percentage", 50, depends_on="aatc_system_enabled"),
        FlagDef("emergency_shutdown", "boolean", False),
        FlagDef("new_checkout", "percentage", 0),
        FlagDef("beta_search", "boolean", False, targeting=WHO),
        FlagDef("ranking", "percentage", 10, targeting=Targeting(users=frozenset({"u9"}))),
        FlagDef("checkout_theme", "variant", False, variants=SPLIT, targeting=WHO),
        FlagDef("banner", "variant", True, variants=SPLIT),
        FlagDef("eu_only", "boolean", True, environments=("production",)),
    ]
}
KILL = KillSwitchSpec(flags_off=("phase_4_deployment", "checkout_theme"), flags_on=("emergency_shutdown",))


@pytest.fixture(autouse=True)
def _quiet_flagd() -> Iterator[None]:
    # flagd-core logs an error for each fractional evaluation without a targetingKey; those are cases
    # the tests ask about on purpose.
    log = logging.getLogger("openfeature.contrib")
    level = log.level
    log.setLevel(logging.CRITICAL)
    yield
    log.setLevel(level)


def states_for(
    stored: dict | None = None, environ: dict | None = None, kill: KillSwitchSpec | None = None
) -> dict[str, FlagState]:
    return resolve(DEFS, stored or {}, kill=kill, environ=environ or {}, environment="production")


def flagd_doc(**kw: object) -> dict:
    return flagd.render("production", states_for(**kw), DEFS, emergency=False, at=AT)  # type: ignore[arg-type]


def provider_for(document: dict) -> FlagdCore:
    core = FlagdCore()
    core.set_flags(flagd.encode(document).decode("ascii"))
    return core


def answer(core: FlagdCore, name: str, ctx: EvalContext) -> bool | str:
    attrs = {k: v for k, v in (("tenant", ctx.tenant), ("region", ctx.region)) if v is not None}
    ec = EvaluationContext(targeting_key=ctx.user, attributes=attrs)
    if DEFS[name].type == VARIANT:
        return core.resolve_string_value(name, "CALLER-DEFAULT", ec).value
    return core.resolve_boolean_value(name, None, ec).value  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ flagd render


def test_render_maps_each_kind_of_flag() -> None:
    doc = flagd_doc(stored={"phase_4_deployment": True, "new_checkout": 25})
    assert doc["$schema"] == "https://flagd.dev/schema/v0/flags.json"
    assert doc["metadata"] == {
        "generatedBy": "opsconsole",
        "generatedAt": "2023-11-14T22:13:20.250Z",
        "environment": "production",
        "emergencyShutdown": False,
    }
    f = doc["flags"]
    assert list(f) == sorted(f)
    assert f["phase_4_deployment"] == {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "on",
        "metadata": {"decidedBy": "stored"},
    }
    assert f["new_checkout"]["targeting"] == {"fractional": [["on", 25], ["off", 75]]}
    assert f["new_checkout"]["defaultVariant"] == "off"
    assert f["new_checkout"]["metadata"] == {"decidedBy": "stored", "percentage": 25}
    assert f["banner"] == {
        "state": "ENABLED",
        "variants": {"control": "control", "blue": "blue", "green": "green"},
        "defaultVariant": "control",
        "targeting": {"fractional": [["control", 50], ["blue", 30], ["green", 20]]},
        "metadata": {"decidedBy": "default"},
    }


def test_percentages_0_and_100_are_static() -> None:
    f = flagd_doc(stored={"new_checkout": 0, "aatc_fast_path": 100, "phase_4_deployment": True})["flags"]
    assert "targeting" not in f["new_checkout"] and f["new_checkout"]["defaultVariant"] == "off"
    assert "targeting" not in f["aatc_fast_path"] and f["aatc_fast_path"]["defaultVariant"] == "on"


def test_targeting_lists_come_before_the_rest() -> None:
    f = flagd_doc()["flags"]
    who = {
        "or": [
            {"in": [{"var": "targetingKey"}, ["u1", "u2"]]},
            {"in": [{"var": "tenant"}, ["acme"]]},
            {"in": [{"var": "region"}, ["eu"]]},
        ]
    }
    assert f["beta_search"]["targeting"] == {"if": [who, "on", "off"]}
    assert f["ranking"]["targeting"] == {
        "if": [{"in": [{"var": "targetingKey"}, ["u9"]]}, "on", {"fractional": [["on", 10], ["off", 90]]}]
    }
    split = {"fractional": [["control", 50], ["blue", 30], ["green", 20]]}
    assert f["checkout_theme"]["targeting"] == {"if": [who, split, "control"]}


def test_targeting_is_left_out_when_an_env_var_kill_switch_or_parent_decided() -> None:
    f = flagd_doc(environ={"BETA_SEARCH": "false", "RANKING": "40"})["flags"]
    assert "targeting" not in f["beta_search"]
    assert f["beta_search"]["metadata"] == {"decidedBy": "env", "detail": "BETA_SEARCH"}
    assert f["ranking"]["targeting"] == {"fractional": [["on", 40], ["off", 60]]}  # no `if`
    f = flagd_doc(kill=KILL)["flags"]
    assert f["checkout_theme"]["defaultVariant"] == "control" and "targeting" not in f["checkout_theme"]
    assert f["aatc_fast_path"]["metadata"] == {
        "decidedBy": "parent",
        "detail": "phase_4_deployment",
        "percentage": 0,
    }
    assert "targeting" not in f["aatc_fast_path"]


def test_flags_of_other_environments_are_left_out() -> None:
    staging = resolve(DEFS, {}, kill=None, environ={}, environment="staging")
    assert "eu_only" not in flagd.render("staging", staging, DEFS, emergency=False, at=AT)["flags"]
    assert "eu_only" in flagd_doc()["flags"]


def test_document_has_the_shape_flagds_schema_asks_for() -> None:
    """What https://flagd.dev/schema/v0/flags.json requires of each flag (checked by hand: no
    jsonschema here): state ENABLED/DISABLED, non-empty variants of one JSON type, a string default
    that names a variant, and no keys outside the schema's (flagd-core rejects the file for one)."""
    doc = flagd_doc(stored={"new_checkout": 40}, environ={"BANNER": "off"})
    for name, flag in doc["flags"].items():
        assert set(flag) <= {"state", "variants", "defaultVariant", "targeting", "metadata"}, name
        assert flag["state"] == "ENABLED"
        kinds = {type(v) for v in flag["variants"].values()}
        assert len(kinds) == 1 and kinds <= {bool, str}, name
        assert flag["defaultVariant"] in flag["variants"]
        assert all(isinstance(v, (str, int, bool)) for v in flag["metadata"].values())


def test_encode_is_one_flag_per_line_ascii_json(tmp_path: Path) -> None:
    defs = {
        "caf\u00e9_flag": FlagDef(
            "caf\u00e9_flag", "boolean", True, targeting=Targeting(frozenset({"\u00fcser"}))
        )
    }
    states = resolve(defs, {}, kill=None, environ={})
    data = flagd.encode(flagd.render("e", states, defs, emergency=True, at=AT))
    data.decode("ascii")  # any consumer's locale reads the same bytes
    lines = data.decode().splitlines()
    assert lines[1].startswith('  "$schema": ') and lines[-2] == "  }" and lines[-1] == "}"
    assert json.loads(data)["flags"]["caf\u00e9_flag"]["defaultVariant"] == "on"
    empty = flagd.encode(flagd.render("e", {}, {}, emergency=False, at=AT))
    assert json.loads(empty)["flags"] == {}
    flagd.write(tmp_path / "x" / "f.flagd.json", flagd.render("e", states, defs, emergency=True, at=AT))
    assert json.loads((tmp_path / "x" / "f.flagd.json").read_bytes())["metadata"]["emergencyShutdown"] is True


# ------------------------------------------------------------------------------------------ flagd contract


CONTEXTS = [
    EvalContext(),
    EvalContext("u1"),
    EvalContext("u9"),
    EvalContext(None, "acme"),
    EvalContext(None, None, "eu"),
    EvalContext("someone", "other", "us"),
    *[EvalContext(f"user-{i}", random.Random(i).choice([None, "acme", "zeta"])) for i in range(150)],
]


@pytest.mark.parametrize(
    "case",
    [
        {},
        {"stored": {"phase_4_deployment": True, "new_checkout": 25, "checkout_theme": True, "ranking": 0}},
        {"stored": {"phase_4_deployment": True, "banner": False, "ranking": 100}},
        {"environ": {"NEW_CHECKOUT": "7", "BETA_SEARCH": "false", "CHECKOUT_THEME": "on", "RANKING": "40"}},
        {"environ": {"BETA_SEARCH": "true", "CHECKOUT_THEME": "off", "RANKING": "x", "BANNER": "no"}},
        {"kill": KILL, "stored": {"new_checkout": 60}},
    ],
    ids=["defaults", "stored", "stored-off", "env", "env-2", "kill"],
)
def test_flagd_core_answers_what_flagd_evaluate_says(case: dict) -> None:
    states = states_for(**case)
    core = provider_for(flagd.render("production", states, DEFS, emergency=False, at=AT))
    for name, state in states.items():
        for ctx in CONTEXTS:
            assert answer(core, name, ctx) == flagd_evaluate(state, DEFS[name], ctx).value, (name, ctx)


# ------------------------------------------------------------------------------------------ flagd kill patch


def kill_patch(path: Path, zero: set[str] | None = None) -> dict:
    patch_for_kill(
        flagd, path, KILL.flags_off, KILL.flags_on, zero or set(), AT, defs=DEFS, environment="production"
    )
    return json.loads(path.read_bytes())


def test_patch_for_kill_sets_the_safe_state_and_keeps_other_flags(tmp_path: Path) -> None:
    path = tmp_path / "production.flagd.json"
    flagd.write(path, flagd_doc(stored={"phase_4_deployment": True, "new_checkout": 25}))
    doc = kill_patch(path, zero={"new_checkout"})
    f = doc["flags"]
    assert f["phase_4_deployment"]["defaultVariant"] == "off"
    assert f["emergency_shutdown"]["defaultVariant"] == "on"
    assert f["new_checkout"]["defaultVariant"] == "off" and "targeting" not in f["new_checkout"]
    assert f["checkout_theme"]["defaultVariant"] == "control" and "targeting" not in f["checkout_theme"]
    # Children of an off flag are off, as resolve() would say; the rest is kept.
    assert f["aatc_system_enabled"]["metadata"] == {"decidedBy": "parent", "detail": "phase_4_deployment"}
    assert f["aatc_fast_path"]["defaultVariant"] == "off"
    assert f["beta_search"] == flagd_doc()["flags"]["beta_search"]
    assert doc["metadata"]["emergencyShutdown"] is True and doc["metadata"]["environment"] == "production"
    # And what a consumer gets is what the engine decides once the kill switch is engaged.
    engaged = states_for(kill=KILL, stored={"phase_4_deployment": True, "new_checkout": 0})
    core = provider_for(doc)
    for name in ("phase_4_deployment", "aatc_system_enabled", "aatc_fast_path", "emergency_shutdown"):
        for ctx in CONTEXTS[:20]:
            assert answer(core, name, ctx) == flagd_evaluate(engaged[name], DEFS[name], ctx).value


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\xff\xfe not utf-8",
        b"{not json",
        b"[1, 2]",
        b'{"flags": []}',
        b'{"flags": {"x": 1}, "$evaluators": 7, "metadata": {"bad": null}}',
    ],
    ids=["empty", "binary", "broken", "array", "flags-array", "bad-parts"],
)
def test_patch_for_kill_on_a_garbage_file_writes_a_loadable_safe_state(
    tmp_path: Path, garbage: bytes
) -> None:
    path = tmp_path / "f.flagd.json"
    path.write_bytes(garbage)
    doc = kill_patch(path)
    assert doc["$schema"] == flagd.SCHEMA
    assert "x" not in doc["flags"] and "$evaluators" not in doc
    core = provider_for(doc)
    assert answer(core, "phase_4_deployment", EvalContext("u1")) is False
    assert answer(core, "emergency_shutdown", EvalContext("u1")) is True


def test_patch_for_kill_on_a_missing_file(tmp_path: Path) -> None:
    doc = kill_patch(tmp_path / "new" / "f.flagd.json")
    assert set(doc["flags"]) == {
        "phase_4_deployment",
        "checkout_theme",
        "emergency_shutdown",
        "aatc_system_enabled",
        "aatc_fast_path",
    }


def test_patch_for_kill_drops_entries_flagd_would_reject_the_whole_file_for(tmp_path: Path) -> None:
    """flagd-core refuses a file with one bad flag and keeps serving the old state: the patch must not
    leave one behind, or the kill would never reach the consumer."""
    path = tmp_path / "f.flagd.json"
    good = {"state": "ENABLED", "variants": {"a": "a"}, "defaultVariant": "a"}
    bad = {
        "extra-key": {**good, "description": "flagd-core takes no such key"},
        "bad-state": {**good, "state": "ON"},
        "no-variants": {"state": "ENABLED", "variants": {}},
        "bad-default": {**good, "defaultVariant": 3},
        "bad-targeting": {**good, "targeting": "always"},
        "bad-meta": {**good, "metadata": {"owner": None}},
    }
    path.write_text(json.dumps({"flags": {"kept": good, "disabled": {**good, "state": "DISABLED"}, **bad}}))
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever flagd-core raises, it refuses the file
        provider_for(json.loads(path.read_text()))
    doc = kill_patch(path)
    assert set(bad).isdisjoint(doc["flags"]) and {"kept", "disabled"} <= set(doc["flags"])
    assert answer(provider_for(doc), "phase_4_deployment", EvalContext()) is False


def test_patch_for_kill_is_idempotent_and_leaves_other_environments_flags_out(tmp_path: Path) -> None:
    path = tmp_path / "f.flagd.json"
    defs = {**DEFS, "phase_4_deployment": FlagDef("phase_4_deployment", environments=("staging",))}
    patch_for_kill(flagd, path, KILL.flags_off, KILL.flags_on, (), AT, defs=defs, environment="production")
    first = path.read_bytes()
    patch_for_kill(flagd, path, KILL.flags_off, KILL.flags_on, (), AT, defs=defs, environment="production")
    assert path.read_bytes() == first
    assert "phase_4_deployment" not in json.loads(first)["flags"]


def test_kill_states_off_wins_and_reaches_descendants() -> None:
    states = flagd.kill_states(
        ["a"],
        ["a", "b", "c"],
        ["z"],
        {
            "a": FlagDef("a"),
            "b": FlagDef("b"),
            "c": FlagDef("c", depends_on="z"),
            "z": FlagDef("z", "percentage"),
            "d": FlagDef("d", depends_on="c"),
        },
    )
    assert {n: (s.value, s.decided_by, s.detail) for n, s in states.items()} == {
        "a": (False, "kill_switch", ""),
        "b": (True, "kill_switch", ""),
        "z": (0, "kill_switch", ""),
        "c": (False, "parent", "z"),
        "d": (False, "parent", "z"),
    }


# ------------------------------------------------------------------------------------------ .env


def test_dotenv_render() -> None:
    states = states_for(stored={"phase_4_deployment": True, "new_checkout": 25, "checkout_theme": True})
    text = dotenv.render("production", states, emergency=False, at=AT)
    lines = text.splitlines()
    assert lines[:2] == [
        "# opsconsole flags: environment production, generated 2023-11-14T22:13:20.250Z",
        "# generated by opsconsole; edits are overwritten",
    ]
    assert lines[2:] == [
        "AATC_FAST_PATH=50",
        "AATC_SYSTEM_ENABLED=true",
        "BANNER=true",
        "BETA_SEARCH=false",
        "CHECKOUT_THEME=true",
        "EMERGENCY_SHUTDOWN=false",
        "EU_ONLY=true",
        "NEW_CHECKOUT=25",
        "PHASE_4_DEPLOYMENT=true",
        "RANKING=10",
    ]
    assert text.endswith("\n")
    engaged = dotenv.render("production", states_for(kill=KILL), emergency=True, at=AT)
    assert "# EMERGENCY: the kill switch is engaged" in engaged
    assert "PHASE_4_DEPLOYMENT=false" in engaged and "AATC_FAST_PATH=0" in engaged


def test_dotenv_values_read_back_as_the_same_overrides() -> None:
    """A service that loads the file into its environment and resolves again gets the same values."""
    states = states_for(stored={"phase_4_deployment": True, "new_checkout": 25})
    _, values = dotenv.parse(dotenv.render("production", states, emergency=False, at=AT))
    again = resolve(DEFS, {}, kill=None, environ=values, environment="production")
    assert {n: s.value for n, s in again.items()} == {n: s.value for n, s in states.items()}


def test_dotenv_write(tmp_path: Path) -> None:
    path = tmp_path / "d" / "production.env"
    dotenv.write(path, dotenv.render("production", states_for(), emergency=False, at=AT))
    assert path.read_text().count("\n") == 2 + len(states_for())


def test_dotenv_patch_for_kill_keeps_other_lines(tmp_path: Path) -> None:
    path = tmp_path / "production.env"
    dotenv.write(
        path,
        dotenv.render("production", states_for(stored={"phase_4_deployment": True}), emergency=False, at=AT),
    )
    patch_for_kill(dotenv, path, KILL.flags_off, KILL.flags_on, {"new_checkout"}, AT + 1, defs=DEFS)
    env, values = dotenv.parse(path.read_text())
    assert env == "production"  # taken from the header it replaced
    assert values["PHASE_4_DEPLOYMENT"] == "false" and values["AATC_SYSTEM_ENABLED"] == "false"
    assert values["AATC_FAST_PATH"] == "0" and values["NEW_CHECKOUT"] == "0"
    assert values["EMERGENCY_SHUTDOWN"] == "true" and values["CHECKOUT_THEME"] == "false"
    assert values["BANNER"] == "true" and values["RANKING"] == "10"
    text = path.read_text()
    assert "# EMERGENCY: the kill switch is engaged" in text and text.splitlines()[0].startswith(
        "# opsconsole flags: environment production, generated 2023-11-14T22:13:21.250Z"
    )
    before = path.read_bytes()
    patch_for_kill(dotenv, path, KILL.flags_off, KILL.flags_on, {"new_checkout"}, AT + 1, defs=DEFS)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "garbage",
    [None, b"", b"\xff\xfe\x00binary\x00", b"not an assignment\n=nothing\n1BAD=x\n", b"export KEEP=1\r\n"],
    ids=["missing", "empty", "binary", "junk-lines", "export-crlf"],
)
def test_dotenv_patch_for_kill_on_bad_files(tmp_path: Path, garbage: bytes | None) -> None:
    path = tmp_path / "production.env"
    if garbage is not None:
        path.write_bytes(garbage)
    patch_for_kill(dotenv, path, KILL.flags_off, KILL.flags_on, (), AT, defs=DEFS, environment="production")
    text = path.read_text()
    _, values = dotenv.parse(text)
    assert values["PHASE_4_DEPLOYMENT"] == "false" and values["EMERGENCY_SHUTDOWN"] == "true"
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert all("=" in line and line.split("=", 1)[0].isidentifier() for line in body), body
    assert ("KEEP=1" in body) == (garbage == b"export KEEP=1\r\n")


# ------------------------------------------------------------------------------------------ configuration

CONFIG = """\
environments:
  production:
    flags: {kind: file, path: flags/production.json, FLAGS_EXTRA}
flags:
  emergency_shutdown: {default: false}
"""


def load_with(tmp_path: Path, extra: str) -> object:
    path = tmp_path / "opsconsole.yaml"
    path.write_text(CONFIG.replace("FLAGS_EXTRA", extra))
    return load_config(path, {"WORKSPACE": str(tmp_path / "ws")})


def config_issues(tmp_path: Path, extra: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_with(tmp_path, extra)
    return [str(issue) for issue in info.value.issues]


def test_config_takes_flagd_and_dotenv_paths_resolved_like_path(tmp_path: Path) -> None:
    config = load_with(tmp_path, 'flagd: "${WORKSPACE}/p.flagd.json", dotenv: out/p.env')
    target = config.environments["production"].flags  # type: ignore[attr-defined]
    assert target.path == str(tmp_path / "flags" / "production.json")
    assert target.flagd == str(tmp_path / "ws" / "p.flagd.json")
    assert target.dotenv == str(tmp_path / "out" / "p.env")
    plain = load_with(tmp_path, "").environments["production"].flags  # type: ignore[attr-defined]
    assert plain.flagd is None and plain.dotenv is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "flagd: flags/production.json",
            "'flagd' names the same file as 'path'; each format needs a file of its own",
        ),
        ("flagd: a.json, dotenv: a.json", "'dotenv' names the same file as 'flagd'"),
        ("flagd_path: x.json", "unknown key 'flagd_path'"),
        ("dotenv: [a, b]", "environments.production.flags.dotenv"),
    ],
)
def test_config_reports_bad_export_settings(tmp_path: Path, extra: str, message: str) -> None:
    issues = config_issues(tmp_path, extra)
    assert len(issues) == 1 and message in issues[0], issues
    assert "opsconsole.yaml:3" in issues[0]


def test_config_flagd_is_not_a_kind_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "opsconsole.yaml"
    path.write_text(CONFIG.replace("kind: file", "kind: flagd").replace(", FLAGS_EXTRA", ""))
    with pytest.raises(ConfigError) as info:
        load_config(path, {"WORKSPACE": str(tmp_path)})
    (issue,) = info.value.issues
    assert "use kind: file with path, and flagd: PATH" in str(issue) and issue.key.endswith("flags.kind")


def test_shipped_configs_write_all_three_formats(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    config = load_config(repo / "config" / "opsconsole.yaml", {"WORKSPACE": str(tmp_path)})
    for name, env in config.environments.items():
        assert env.flags is not None
        assert env.flags.flagd == str(tmp_path / "flags" / f"{name}.flagd.json")
        assert env.flags.dotenv == str(tmp_path / "flags" / f"{name}.env")
    demo = (repo / "config" / "demo.yaml").read_text()
    # `kind: file` flag targets, not the `kind: files` backup target
    assert demo.count('flagd: "${WORKSPACE}/flags/') == len(re.findall(r"kind: file\b", demo)) > 0
