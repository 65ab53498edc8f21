"""Stale flags: age from the config's created date, else the first recorded change, else unknown."""

from __future__ import annotations

import pytest

from opsconsole.engine import stale
from opsconsole.engine.model import FLAG_LIFETIMES, FlagDef

DAY = 86400.0
NOW = 1_800_000_000.0


def test_release_flag_older_than_forty_days_is_stale_and_says_why() -> None:
    age = stale.flag_age(FlagDef("new_checkout", created=NOW - 52 * DAY), None, NOW)
    assert age.stale and age.source == stale.CREATED and age.age == 52 * DAY
    assert age.detail == "52d old, release flags live 40d"


def test_exactly_the_lifetime_is_not_yet_stale() -> None:
    assert not stale.flag_age(FlagDef("f", created=NOW - 40 * DAY), None, NOW).stale
    assert stale.flag_age(FlagDef("f", created=NOW - 40 * DAY - 1), None, NOW).stale


@pytest.mark.parametrize(("kind", "days"), [("operational", 8), ("experiment", 41), ("release", 41)])
def test_each_kind_has_its_own_lifetime(kind: str, days: int) -> None:
    lifetime = FLAG_LIFETIMES[kind]
    assert lifetime is not None
    assert stale.flag_age(FlagDef("f", kind=kind, created=NOW - days * DAY), None, NOW).stale
    assert not stale.flag_age(FlagDef("f", kind=kind, created=NOW - lifetime + DAY), None, NOW).stale


@pytest.mark.parametrize("kind", ["kill-switch", "permission"])
def test_kill_switches_and_permissions_never_go_stale(kind: str) -> None:
    age = stale.flag_age(FlagDef("f", kind=kind, created=NOW - 3000 * DAY), None, NOW)
    assert not age.stale and age.lifetime is None
    assert age.detail == f"{kind} flags never go stale"


def test_without_a_created_date_age_counts_from_the_first_recorded_change() -> None:
    age = stale.flag_age(FlagDef("f"), NOW - 60 * DAY, NOW)
    assert age.stale and age.source == stale.FIRST_CHANGE and age.since == NOW - 60 * DAY
    assert "first recorded change" in age.detail
    # A created date in config wins over the store's history.
    assert not stale.flag_age(FlagDef("f", created=NOW - DAY), NOW - 60 * DAY, NOW).stale


def test_no_created_date_and_no_history_is_age_unknown_not_stale() -> None:
    age = stale.flag_age(FlagDef("f"), None, NOW)
    assert not age.stale and age.age is None and age.source == stale.UNKNOWN
    assert age.detail == "age unknown"


def test_a_created_date_in_the_future_is_age_zero() -> None:
    assert stale.flag_age(FlagDef("f", created=NOW + DAY), None, NOW).age == 0


def test_stale_only_lists_the_most_overdue_first() -> None:
    defs = [
        FlagDef("a", created=NOW - 45 * DAY),
        FlagDef("b", kind="operational", created=NOW - 30 * DAY),  # 23 days over
        FlagDef("c", created=NOW - DAY),
        FlagDef("d"),
    ]
    ages = stale.flag_ages(defs, {"d": NOW - 41 * DAY}, NOW)
    assert [a.name for a in stale.stale_only(ages.values())] == ["b", "a", "d"]
