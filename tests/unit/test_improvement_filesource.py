"""A proposals file as a source: YAML or JSON, a list or {improvements: [...]}; broken files are
protocol errors naming the entry; deploy and rollback only through configured commands."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from opsconsole.engine.improvements.filesource import FileSource
from opsconsole.engine.improvements.model import ImprovementSettings
from opsconsole.engine.improvements.source import AgentError

ONE = {
    "id": "p1",
    "title": "Raise the cache TTL",
    "kind": "tuning",
    "predicted_impact": {"metric": "m", "expected_change": -0.1},
    "quality_score": 0.9,
    "risk": 0.02,
}


def source(path: Path, **kw: object) -> FileSource:
    return FileSource(ImprovementSettings("staging", proposals_file=str(path), **kw))  # type: ignore[arg-type]


def test_yaml_list_and_json_object(tmp_path: Path) -> None:
    y = tmp_path / "p.yaml"
    y.write_text("- id: p1\n  title: t\n  quality_score: 0.9\n  risk: 0.1\n")
    j = tmp_path / "p.json"
    j.write_text(json.dumps({"improvements": [ONE, {**ONE, "id": "p2"}]}))
    assert [p.id for p in asyncio.run(source(y).list_improvements()).improvements] == ["p1"]
    assert [p.id for p in asyncio.run(source(j).list_improvements()).improvements] == ["p1", "p2"]
    assert source(j).name == "file p.json"


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        (None, "unreachable", "No such file"),
        ("[", "protocol", "not valid"),
        (
            '[{"id": "a", "title": "t", "quality_score": "high", "risk": 0}]',
            "protocol",
            "p.json[0].quality_score",
        ),
        (json.dumps([ONE, ONE]), "protocol", "repeats"),
        ('{"other": 1}', "protocol", "expected a list"),
    ],
)
def test_broken_files_say_what(tmp_path: Path, text: str | None, kind: str, message: str) -> None:
    path = tmp_path / "p.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(AgentError) as info:
        asyncio.run(source(path).list_improvements())
    assert info.value.kind == kind and message in str(info.value)


def test_deploy_without_a_command_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(AgentError) as info:
        asyncio.run(source(tmp_path / "p.json").deploy("p1"))
    assert info.value.kind == "unsupported"


def test_commands_get_the_id_and_reason(tmp_path: Path) -> None:
    log = tmp_path / "log"
    script = f"import sys; open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')"
    src = source(
        tmp_path / "p.json",
        deploy_command=(sys.executable, "-c", script, "deploy"),
        rollback_command=(sys.executable, "-c", script + "; sys.exit(3)", "rollback"),
    )
    assert asyncio.run(src.deploy("p1")).ok
    refused = asyncio.run(src.rollback("p1", "too slow"))
    assert not refused.ok and "exited 3" in refused.message
    assert log.read_text().splitlines() == ["deploy p1", "rollback p1 too slow"]


def test_a_command_past_its_timeout_is_a_timeout(tmp_path: Path) -> None:
    src = source(
        tmp_path / "p.json",
        deploy_command=(sys.executable, "-c", "import time; time.sleep(5)"),
        command_timeout=0.3,
    )
    with pytest.raises(AgentError) as info:
        asyncio.run(src.deploy("p1"))
    assert info.value.kind == "timeout"
