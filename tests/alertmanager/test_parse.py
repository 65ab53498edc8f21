"""The pure half of the Alertmanager source: `/api/v2/alerts` answers to statuses, severities to the
seed's P0-P3, and anything not shaped like Alertmanager's answer refused as garbage (no server here)."""

from __future__ import annotations

from typing import Any

import pytest

from opsconsole.engine.alarms import FIRING, INHIBITED, SILENCED
from opsconsole.engine.sources.alertmanager import AlarmSourceError, parse_alerts, severity_of


def item(
    state: str = "active", silenced: list[str] | None = None, inhibited: list[str] | None = None
) -> dict[str, Any]:
    return {
        "labels": {"alertname": "OpsX", "severity": "high"},
        "annotations": {"description": "line one\n  line two"},
        "fingerprint": "abc123",
        "startsAt": "2026-11-29T23:00:00.123456789Z",
        "status": {"state": state, "silencedBy": silenced or [], "inhibitedBy": inhibited or []},
    }


@pytest.mark.parametrize(
    ("labels", "level"),
    [
        ({"severity": "critical"}, "P0"),
        ({"severity": "P0"}, "P0"),
        ({"severity": "High"}, "P1"),
        ({"priority": "p1"}, "P1"),
        ({"severity": "warning"}, "P2"),
        ({"severity": "sev3"}, "P3"),
        ({"severity": "info"}, "P3"),
        ({"severity": "low"}, "P3"),
        ({"severity": "bizarre"}, "P2"),
        ({}, "P2"),
    ],
)
def test_severities_map_to_the_seeds_levels(labels: dict[str, str], level: str) -> None:
    assert severity_of(labels) == level


def test_states_labels_annotations_and_times() -> None:
    active, silenced, inhibited, unprocessed, both = parse_alerts(
        "production",
        [
            item(),
            item("suppressed", silenced=["s1"]),
            item("suppressed", inhibited=["f9"]),
            item("unprocessed"),
            item("suppressed", silenced=["s2"], inhibited=["f9"]),
        ],
    )
    assert active.state == FIRING and active.severity == "P1" and active.source == "alertmanager"
    assert active.reason == "line one line two"  # one line: a newline in remote text cannot forge a row
    assert active.key == "alertmanager:production:abc123" and active.ident == active.key
    assert active.since == pytest.approx(1795993200.123456)
    assert (silenced.state, silenced.silenced_by, silenced.reason) == (
        SILENCED,
        ("s1",),
        "line one line two; silenced by s1",
    )
    assert (inhibited.state, inhibited.reason) == (INHIBITED, "line one line two; inhibited by f9")
    assert unprocessed.state == FIRING  # not yet judged is not cleared
    assert both.state == SILENCED


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"alerts": []}, "alerts are not a list (got dict)"),
        ("oops", "alerts are not a list (got str)"),
        ([{"labels": {}}], "an alert without labels, status or fingerprint"),
        ([1], "an alert without labels, status or fingerprint"),
        ([item()] * 5001, "5001 alerts (more than 5000)"),
    ],
)
def test_garbage_is_an_error_not_an_empty_list(body: Any, said: str) -> None:
    with pytest.raises(
        AlarmSourceError, match=r"alertmanager: " + said.replace("(", r"\(").replace(")", r"\)")
    ):
        parse_alerts("production", body)
