"""Per-user evaluation: which rule decided, the user's bucket and threshold, under both the
console's own (Unleash) bucketing and flagd's `fractional`."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st
from openfeature.contrib.tools.flagd.core.targeting.custom_ops import fractional

from opsconsole.engine.flags import (
    EvalContext,
    evaluate,
    flagd_bucket,
    flagd_evaluate,
    resolve,
    unleash_bucket,
    unleash_variant,
)
from opsconsole.engine.model import FlagDef, KillSwitchSpec, Targeting

PARENT = FlagDef("phase_4_deployment")
CHILD = FlagDef("aatc_system_enabled", depends_on="phase_4_deployment", default=True)
PCT = FlagDef("phase_4_rollout", type="percentage", targeting=Targeting(users=frozenset({"vip"})))
VARIANT = FlagDef(
    "button", type="variant", default=True, variants=(("control", 50), ("short", 30), ("long", 20))
)
DEFS = {d.name: d for d in (PARENT, CHILD, PCT, VARIANT)}
BOTH = (evaluate, flagd_evaluate)


def states(stored=None, environ=None, kill=None, environment=None):
    return resolve(DEFS, stored or {}, kill=kill, environ=environ or {}, environment=environment)


def test_child_of_a_disabled_parent_is_off_naming_the_parent() -> None:
    s = states()
    for how in BOTH:
        e = how(s["aatc_system_enabled"], CHILD, EvalContext("u1"))
        assert e.value is False and e.rule == "parent"
        assert "phase_4_deployment" in e.detail
    on = states({"phase_4_deployment": True})
    assert evaluate(on["aatc_system_enabled"], CHILD, EvalContext("u1")).rule == "default"


def test_percentage_reports_bucket_and_threshold() -> None:
    s = states({"phase_4_rollout": 25})
    e = evaluate(s["phase_4_rollout"], PCT, EvalContext("user-7"))
    assert e.rule == "stored" and e.threshold == 25
    assert e.bucket == unleash_bucket("phase_4_rollout", "user-7")
    assert e.value is (e.bucket <= 25)
    f = flagd_evaluate(s["phase_4_rollout"], PCT, EvalContext("user-7"))
    assert f.bucket == flagd_bucket("phase_4_rollout", "user-7") and f.value is (f.bucket < 25)


def test_targeted_users_are_on_first_but_env_and_kill_switch_win() -> None:
    s = states({"phase_4_rollout": 0})
    assert evaluate(s["phase_4_rollout"], PCT, EvalContext("vip")).rule == "targeting"
    assert evaluate(s["phase_4_rollout"], PCT, EvalContext("vip")).value is True
    assert evaluate(s["phase_4_rollout"], PCT, EvalContext("other")).value is False
    env = states({"phase_4_rollout": 50}, environ={"PHASE_4_ROLLOUT": "0"})
    e = evaluate(env["phase_4_rollout"], PCT, EvalContext("vip"))
    assert (e.value, e.rule, e.detail) == (False, "env", "PHASE_4_ROLLOUT is set: 0%")
    kill = KillSwitchSpec(flags_off=("phase_4_rollout",))
    k = states({"phase_4_rollout": 50}, kill=kill)
    assert evaluate(k["phase_4_rollout"], PCT, EvalContext("vip")).rule == "kill_switch"


@given(st.text(min_size=1, max_size=20), st.integers(0, 100), st.integers(0, 100))
def test_raising_a_percentage_keeps_everyone_on_under_both(user: str, a: int, b: int) -> None:
    low, high = sorted((a, b))
    for how in BOTH:
        before = how(states({"phase_4_rollout": low})["phase_4_rollout"], PCT, EvalContext(user)).value
        after = how(states({"phase_4_rollout": high})["phase_4_rollout"], PCT, EvalContext(user)).value
        assert not before or after


def test_flagd_bucket_is_what_the_flagd_evaluator_computes() -> None:
    rng = random.Random(4)
    for _ in range(2000):
        flag = rng.choice(["phase_4_rollout", "x" * 30, "ü" * 130])
        user = "".join(rng.choice("abc019-é") for _ in range(rng.randint(1, 300)))
        p = rng.randint(1, 99)
        want = fractional({"targetingKey": user, "$flagd": {"flagKey": flag}}, ["on", p], ["off", 100 - p])
        assert want == ("on" if flagd_bucket(flag, user) < p else "off"), (flag, user, p)


def test_the_two_bucketings_place_users_differently() -> None:
    users = [f"user-{i}" for i in range(1000)]
    unleash = {u for u in users if unleash_bucket("phase_4_rollout", u) <= 25}
    flagd = {u for u in users if flagd_bucket("phase_4_rollout", u) < 25}
    assert 200 < len(unleash) < 300 and 200 < len(flagd) < 300
    assert unleash != flagd


def test_variants_are_stable_weighted_and_control_when_off() -> None:
    s = states()
    seen = Counter(evaluate(s["button"], VARIANT, EvalContext(f"u{i}")).value for i in range(4000))
    assert set(seen) == {"control", "short", "long"}
    assert abs(seen["control"] / 4000 - 0.5) < 0.05 and abs(seen["long"] / 4000 - 0.2) < 0.04
    assert (
        evaluate(s["button"], VARIANT, EvalContext("u1")).value
        == unleash_variant("button", "u1", VARIANT.variants)[0]
    )
    off = states({"button": False})
    for how in BOTH:
        assert how(off["button"], VARIANT, EvalContext("u1")).value == "control"


def test_environment_scoping_and_defaults() -> None:
    scoped = FlagDef("only_prod", environments=("production",))
    per_env = FlagDef("auto", env_defaults=(("development", True),))
    defs = {"only_prod": scoped, "auto": per_env}
    dev = resolve(defs, {}, kill=None, environ={}, environment="development")
    assert "only_prod" not in dev and dev["auto"].value is True
    prod = resolve(defs, {}, kill=None, environ={}, environment="production")
    assert "only_prod" in prod and prod["auto"].value is False


def test_no_user_means_no_bucket() -> None:
    s = states({"phase_4_rollout": 50})
    e = evaluate(s["phase_4_rollout"], PCT, EvalContext())
    assert e.value is False and e.bucket is None and "no user id" in e.detail
