"""The console's text helpers say what the engine says: one wording for flag values and times."""

from __future__ import annotations

from opsconsole.engine import flag_value_text, iso_utc
from opsconsole.tui.format import ago, format_flag_value, utc_time


def test_flag_values_and_times_read_as_the_engine_writes_them() -> None:
    for value, kind in ((True, "boolean"), (25, "percentage"), (False, "variant"), (None, "boolean")):
        assert format_flag_value(value, kind) == flag_value_text(value, kind)
    t = 1_772_373_600.25  # 2026-03-01 14:00:00.250 UTC
    assert utc_time(t) == "2026-03-01 14:00:00" == iso_utc(t, "seconds")[:19].replace("T", " ")
    assert (ago(5), ago(125), ago(7300)) == ("5s ago", "2m ago", "2h1m ago")
