"""The improvement queue's words and chart (tui/improvement_text.py): pure, so tested without a screen."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from opsconsole.engine import ImprovementsPause, QueueMode, Sample
from opsconsole.tui.improvement_text import (
    DESCRIPTION_LIMIT,
    agent_text,
    chart,
    description,
    duration,
    mode_text,
    sync_text,
)

MODE = QueueMode(
    environment="production",
    source="agent http://127.0.0.1:9/mcp",
    autonomous=False,
    configured_autonomous=False,
    autonomous_suspended=False,
    paused=ImprovementsPause(False),
    self_building=True,
    component_generation=False,
    rollback_enabled=True,
    last_sync_at=1000.0,
    next_sync_at=4600.0,
    agent_state="ok",
    agent_error="",
    live=0,
    max_concurrent=2,
)


def test_the_mode_in_words() -> None:
    assert mode_text(MODE)[0] == "observation"
    assert mode_text(replace(MODE, autonomous=True, configured_autonomous=True))[0] == "autonomous"
    suspended = replace(MODE, configured_autonomous=True, autonomous_suspended=True)
    assert mode_text(suspended)[0] == "autonomous suspended by the kill switch"
    assert mode_text(replace(MODE, autonomous_suspended=True))[0] == "observation"


def test_the_agent_state_in_words_with_its_error_escaped() -> None:
    assert agent_text(MODE, None)[0] == "ok"
    down = replace(MODE, agent_state="unreachable", agent_error="connect refused \x1b[2J")
    words = agent_text(down, 1_700_000_000.0)[0]
    assert words == "unreachable since 22:13:20 UTC: connect refused \\x1b[2J"
    assert agent_text(replace(MODE, agent_state="auth"), None)[0] == "auth refused"


def test_sync_times() -> None:
    assert sync_text(MODE, 1180.0) == "last sync 3m ago · next in 57m"
    assert sync_text(replace(MODE, last_sync_at=None), 5000.0) == "never synced · next due"
    assert duration(3900) == "1h05m" and duration(59) == "59s"


def test_a_description_is_escaped_and_cut_never_interpreted() -> None:
    raw = "[red]x[/red] \x1b]0;title\x07\n" + "y" * 1000 + "\n" + "z" * 20_000
    text = description(raw).plain
    assert text.startswith("[red]x[/red] \\x1b]0;title\\x07\n")
    assert "\x1b" not in text and "\x07" not in text
    assert "(600 more characters)" in text  # the long line, cut
    assert text.endswith(f"({len(raw) - DESCRIPTION_LIMIT} more characters not shown)")
    assert len(text) < DESCRIPTION_LIMIT


def test_the_chart_draws_the_baseline_where_no_bar_covers_it() -> None:
    samples = [Sample(float(t), v) for t, v in enumerate([100.0, 50.0, None, 150.0])]
    lines = chart(samples, 100.0, 8, height=4)
    assert [len(line) for line in lines] == [8, 8, 8, 8]
    # Two columns a sample (8 columns, 4 samples); the lowest value still shows; None is a dot.
    assert lines[-1] == "██▁▁··██"
    assert lines[1] == "──────██"  # the baseline (100, half way up) where no bar covers it
    assert lines[0] == "      ██"  # 150 is the top


@given(
    st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), max_size=300),
    st.one_of(st.none(), st.floats(-1e6, 1e6)),
    st.integers(1, 200),
    st.integers(2, 12),
)
def test_the_chart_is_always_its_size(
    values: list[float | None], baseline: float | None, width: int, height: int
) -> None:
    lines = chart([Sample(float(i), v) for i, v in enumerate(values)], baseline, width, height)
    assert len(lines) == height and all(len(line) == width for line in lines)
