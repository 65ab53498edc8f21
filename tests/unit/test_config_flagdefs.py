"""Flag definitions in depth: variants and their weights, targeting, environment scoping and
per-environment defaults, kinds and creation dates; every bad input a file:line:key error."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsconsole.engine.model import Targeting
from tests.unit.test_config import CONFIG, MAIN, issues_of, load, only_issue

FLAGS_AT = MAIN.index("flags:\n")


def with_flags(body: str) -> str:
    """MAIN with its flags section replaced by `body` (indented two spaces under `flags:`)."""
    rest = MAIN[MAIN.index("kill_switch:") :]
    keep = "  enable_new_checkout: {}\n  new_checkout: {type: percentage}\n  emergency_shutdown: {}\n"
    return MAIN[:FLAGS_AT] + "flags:\n" + body + keep + rest


def test_variant_targeting_scope_kind_and_created(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        main=with_flags(
            "  button:\n"
            "    type: variant\n"
            "    default: true\n"
            "    variants: {control: 50, short: 30, long: 20}\n"
            "    targeting: {users: [u1, u2], tenants: [acme], regions: [eu-west-1]}\n"
            "    environments: [production]\n"
            "    kind: experiment\n"
            "    created: 2026-10-01\n"
            "  auto:\n"
            "    default: {staging: true, production: false}\n"
        ),
    )
    button = cfg.flags["button"]
    assert button.type == "variant" and button.default is True
    assert button.variants == (("control", 50), ("short", 30), ("long", 20))
    assert button.targeting == Targeting(
        frozenset({"u1", "u2"}), frozenset({"acme"}), frozenset({"eu-west-1"})
    )
    assert button.environments == ("production",)
    assert button.in_environment("production") and not button.in_environment("staging")
    assert button.kind == "experiment"
    assert button.created == 1790812800.0  # 2026-10-01T00:00:00Z
    auto = cfg.flags["auto"]
    assert auto.default_for("staging") is True and auto.default_for("production") is False
    assert auto.default_for("development") is False  # not listed: the type's off value


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        (
            "  b: {type: variant, variants: {a: 50, b: 40}}\n",
            "flags.b.variants",
            "variant weights sum to 90, not 100",
        ),
        ("  b: {type: variant}\n", "flags.b.variants", "'variants' is required"),
        ("  b: {type: variant, variants: {a: 100}}\n", "flags.b.variants", "at least two variants"),
        ("  b: {variants: {a: 50, b: 50}}\n", "flags.b.variants", "only variant flags have variants"),
        ("  b: {type: variant, variants: {a: 150, b: 50}}\n", "flags.b.variants.a", "must be 0..100"),
        ("  b: {type: percentage, default: 101}\n", "flags.b.default", "must be 0..100, got 101"),
        ("  b: {default: {producton: true}}\n", "flags.b.default.producton", "did you mean 'production'"),
        ("  b: {environments: [stagin]}\n", "flags.b.environments[0]", "did you mean 'staging'"),
        ("  b: {kind: forever}\n", "flags.b.kind", "expected one of"),
        ("  b: {created: yesterday}\n", "flags.b.created", "expected a date like 2026-10-01"),
        ("  b: {targeting: {groups: [x]}}\n", "flags.b.targeting.groups", "unknown key"),
        ("  b: {type: colour}\n", "flags.b.type", "expected one of boolean, percentage, variant"),
    ],
)
def test_bad_flag_definitions_name_file_line_and_key(
    tmp_path: Path, body: str, key: str, message: str
) -> None:
    issue = only_issue(issues_of(tmp_path, main=with_flags(body)))
    assert issue.key == key
    assert message in issue.message
    assert issue.line == MAIN[:FLAGS_AT].count("\n") + 2  # the line of `b:` in the main file


def test_an_environment_another_configuration_uses_is_no_error(tmp_path: Path) -> None:
    """config/flags.yaml names `development`, which the demo's configuration does not have."""
    cfg = load(
        tmp_path, main=with_flags("  b: {default: {development: true}, environments: [development]}\n")
    )
    assert not cfg.flags["b"].in_environment("production")


def test_shipped_flags_reproduce_the_seeds(tmp_path: Path) -> None:
    main = MAIN[:FLAGS_AT] + f"flags: {CONFIG / 'flags.yaml'}\n" + MAIN[MAIN.index("kill_switch:") :]
    flags = load(tmp_path, main=main).flags
    # seed 002: the hierarchy and risk levels
    assert flags["llm_integration_enabled"].depends_on == "phase_4_deployment"
    assert flags["aatc_system_enabled"].depends_on == "phase_4_deployment"
    assert flags["aatc_system_enabled"].risk == flags["phase_4_deployment"].risk == "high"
    assert flags["emergency_shutdown"].kind == "kill-switch"
    # seed 000: the ENABLE_* settings per environment (development all on, staging observation mode)
    auto = flags["enable_autonomous_improvements"]
    assert auto.default_for("development") is True and auto.default_for("staging") is False
    assert flags["enable_improvement_rollback"].default_for("staging") is True
    assert flags["checkout_button_copy"].type == "variant"
