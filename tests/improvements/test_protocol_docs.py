"""README's "Improvement agent protocol" is what the console accepts: its examples parse."""

from __future__ import annotations

import json
import re
from pathlib import Path

from opsconsole.engine.improvements import protocol

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Improvement agent protocol")
    return text[start : text.index("\n## ", start + 1)]


def test_the_documented_proposal_parses() -> None:
    block = re.search(r"```json\n(.*?)```", section(), re.S)
    assert block is not None
    p = protocol.parse_proposal(json.loads(block.group(1)))
    assert p.kind == "tuning" and p.impact.expected_change == -0.2 and p.agent_status == "proposed"


def test_every_tool_is_documented_with_arguments_and_a_result_that_parses() -> None:
    proposal = re.search(r"```json\n(.*?)```", section(), re.S)
    assert proposal is not None
    rows = {
        m.group(1): m
        for m in re.finditer(r"^\| `(\w+)` \| `([^`]*)`(?: or `[^`]*`)? \| `([^`]*)`", section(), re.M)
    }
    assert set(rows) == set(protocol.TOOLS)
    parsers = {
        protocol.GET_SYSTEM_STATUS: protocol.parse_system_status,
        protocol.QUERY_TELEMETRY_INSIGHTS: protocol.parse_insights,
        protocol.TRIGGER_IMPROVEMENT_CYCLE: protocol.parse_cycle,
        protocol.LIST_IMPROVEMENTS: protocol.parse_list,
    }
    for tool, m in rows.items():
        args = json.loads(m.group(2))
        result = json.loads(m.group(3).replace("<proposal>, ...", proposal.group(1)))
        if tool in parsers:
            parsers[tool](result)
        else:
            action = protocol.parse_action(result, tool, args["improvement_id"])
            assert action.ok
        # The arguments are the ones the typed argument shapes name.
        shape = {
            protocol.GET_SYSTEM_STATUS: protocol.GetSystemStatusArgs,
            protocol.QUERY_TELEMETRY_INSIGHTS: protocol.QueryTelemetryInsightsArgs,
            protocol.TRIGGER_IMPROVEMENT_CYCLE: protocol.TriggerImprovementCycleArgs,
            protocol.LIST_IMPROVEMENTS: protocol.ListImprovementsArgs,
            protocol.DEPLOY_IMPROVEMENT: protocol.DeployImprovementArgs,
            protocol.ROLLBACK_IMPROVEMENT: protocol.RollbackImprovementArgs,
        }[tool]
        assert set(args) <= set(shape.__annotations__), tool
